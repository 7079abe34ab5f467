// PrometheusRegistry.swift: the swift-metrics backend behind `/metrics`: swift-prometheus, with the histogram
// buckets controller-runtime and client-go use, so the `histogram_quantile` queries of every controller dashboard
// work on Hearth's series as they do on a Go operator's.

import CoreMetrics
import Prometheus

/// Collects metrics and renders them in the Prometheus text format.
public final class PrometheusRegistry: MetricsFactory, Sendable {
    /// The underlying registry (for collectors registered directly).
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    /// controller-runtime's `controller_runtime_reconcile_time_seconds` buckets, in seconds.
    public static let reconcileBuckets: [Double] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5,
        1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
    ]
    /// client-go's workqueue buckets: `ExponentialBuckets(10e-9, 10, 12)`, 10 ns to 1,000 s.
    public static let workqueueBuckets: [Double] = (0..<12).map { 1e-8 * pow10($0) }
    /// client-go's `rest_client_request_duration_seconds` buckets.
    public static let requestBuckets: [Double] = [0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0]

    /// Timer (duration histogram) buckets by metric name; other timers get ``requestBuckets``.
    public static let durationBuckets: [String: [Double]] = [
        "controller_runtime_reconcile_time_seconds": reconcileBuckets,
        "workqueue_queue_duration_seconds": workqueueBuckets,
        "workqueue_work_duration_seconds": workqueueBuckets,
        "rest_client_request_duration_seconds": requestBuckets,
    ]

    public init() {
        self.registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: self.registry)
        factory.durationHistogramBuckets = Self.durationBuckets.mapValues { $0.map(Self.duration(seconds:)) }
        factory.defaultDurationHistogramBuckets = Self.requestBuckets.map(Self.duration(seconds:))
        self.factory = factory
    }

    static func duration(seconds: Double) -> Duration {
        .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    private static func pow10(_ exponent: Int) -> Double {
        (0..<exponent).reduce(1.0) { value, _ in value * 10 }
    }

    /// Labels in name order, so one series has one spelling whatever order its dimensions were given in.
    private static func sorted(_ dimensions: [(String, String)]) -> [(String, String)] {
        dimensions.sorted { $0.0 < $1.0 }
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        self.factory.makeCounter(label: label, dimensions: Self.sorted(dimensions))
    }
    public func makeFloatingPointCounter(
        label: String,
        dimensions: [(String, String)]
    ) -> any FloatingPointCounterHandler {
        self.factory.makeFloatingPointCounter(label: label, dimensions: Self.sorted(dimensions))
    }
    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        self.factory.makeRecorder(label: label, dimensions: Self.sorted(dimensions), aggregate: aggregate)
    }
    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        self.factory.makeMeter(label: label, dimensions: Self.sorted(dimensions))
    }
    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        self.factory.makeTimer(label: label, dimensions: Self.sorted(dimensions))
    }
    public func destroyCounter(_ handler: any CounterHandler) { self.factory.destroyCounter(handler) }
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        self.factory.destroyFloatingPointCounter(handler)
    }
    public func destroyRecorder(_ handler: any RecorderHandler) { self.factory.destroyRecorder(handler) }
    public func destroyMeter(_ handler: any MeterHandler) { self.factory.destroyMeter(handler) }
    public func destroyTimer(_ handler: any TimerHandler) { self.factory.destroyTimer(handler) }

    /// The Prometheus text exposition.
    public func render() -> String {
        self.registry.emitToString()
    }
}
