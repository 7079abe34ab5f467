// PrometheusRegistry.swift: a small swift-metrics backend that renders the Prometheus text format (counters,
// gauges, and timers/recorders as summaries with _sum and _count), for `/metrics` on :8080.

import CoreMetrics
import Foundation
import Synchronization

/// Collects metrics and renders them as Prometheus text.
public final class PrometheusRegistry: MetricsFactory, Sendable {
    struct Series: Hashable {
        var name: String
        var labels: [String]
    }
    enum Kind { case counter, gauge, summary }
    struct Value {
        var kind: Kind
        var value: Double = 0
        var sum: Double = 0
        var count: Int64 = 0
    }

    let values = Mutex<[Series: Value]>([:])

    public init() {}

    static func sanitize(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" ? $0 : "_" })
    }

    func series(_ label: String, _ dimensions: [(String, String)]) -> Series {
        Series(
            name: Self.sanitize(label),
            labels: dimensions.sorted { $0.0 < $1.0 }.map { key, value in
                "\(Self.sanitize(key))=\"\(value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n"))\""
            }
        )
    }

    func update(_ series: Series, _ kind: Kind, _ body: (inout Value) -> Void) {
        self.values.withLock { values in
            var value = values[series] ?? Value(kind: kind)
            body(&value)
            values[series] = value
        }
    }

    final class Handler: CounterHandler, FloatingPointCounterHandler, RecorderHandler, TimerHandler, MeterHandler,
        Sendable
    {
        let registry: PrometheusRegistry
        let series: Series
        let kind: Kind
        init(_ registry: PrometheusRegistry, _ series: Series, _ kind: Kind) {
            self.registry = registry
            self.series = series
            self.kind = kind
            registry.update(series, kind) { _ in }
        }
        func increment(by amount: Int64) { self.registry.update(self.series, self.kind) { $0.value += Double(amount) } }
        func increment(by amount: Double) { self.registry.update(self.series, self.kind) { $0.value += amount } }
        func decrement(by amount: Double) { self.registry.update(self.series, self.kind) { $0.value -= amount } }
        func reset() { self.registry.update(self.series, self.kind) { $0 = Value(kind: self.kind) } }
        func record(_ value: Int64) { self.record(Double(value)) }
        func record(_ value: Double) {
            self.registry.update(self.series, self.kind) {
                if self.kind == .gauge {
                    $0.value = value
                } else {
                    $0.sum += value
                    $0.count += 1
                }
            }
        }
        func set(_ value: Int64) { self.set(Double(value)) }
        func set(_ value: Double) { self.registry.update(self.series, self.kind) { $0.value = value } }
        func recordNanoseconds(_ duration: Int64) { self.record(Double(duration) / 1e9) }
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(self, self.series(label, dimensions), .counter)
    }
    public func makeFloatingPointCounter(
        label: String,
        dimensions: [(String, String)]
    ) -> any FloatingPointCounterHandler {
        Handler(self, self.series(label, dimensions), .counter)
    }
    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(self, self.series(label, dimensions), aggregate ? .summary : .gauge)
    }
    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        Handler(self, self.series(label, dimensions), .gauge)
    }
    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(self, self.series(label, dimensions), .summary)
    }
    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyMeter(_ handler: any MeterHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}

    /// The Prometheus text exposition.
    public func render() -> String {
        let snapshot = self.values.withLock { $0 }
        var byName: [String: [(Series, Value)]] = [:]
        for (series, value) in snapshot { byName[series.name, default: []].append((series, value)) }
        var out = ""
        for name in byName.keys.sorted() {
            let entries = byName[name]!.sorted { $0.0.labels.joined() < $1.0.labels.joined() }
            let kind = entries.first!.1.kind
            out += "# TYPE \(name) \(kind == .counter ? "counter" : kind == .gauge ? "gauge" : "summary")\n"
            for (series, value) in entries {
                let labels = series.labels.isEmpty ? "" : "{" + series.labels.joined(separator: ",") + "}"
                switch kind {
                case .counter, .gauge:
                    out += "\(name)\(labels) \(Self.format(value.value))\n"
                case .summary:
                    out += "\(name)_sum\(labels) \(Self.format(value.sum))\n"
                    out += "\(name)_count\(labels) \(value.count)\n"
                }
            }
        }
        return out
    }

    static func format(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
