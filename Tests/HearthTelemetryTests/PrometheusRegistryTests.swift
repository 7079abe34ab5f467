// PrometheusRegistryTests.swift: the /metrics text format of the built-in swift-metrics backend.

import CoreMetrics
import Testing

@testable import HearthTelemetry

@Suite("Prometheus text format")
struct PrometheusRegistryTests {
    @Test("counters, gauges and timers render with one TYPE line per name and sorted, escaped labels")
    func rendering() {
        let registry = PrometheusRegistry()
        let success = Counter(
            label: "controller_runtime_reconcile_total",
            dimensions: [("result", "success"), ("controller", "profilingtarget")],
            factory: registry
        )
        success.increment(by: 3)
        success.increment()
        Counter(
            label: "controller_runtime_reconcile_total",
            dimensions: [("controller", "profilingtarget"), ("result", "error")],
            factory: registry
        ).increment()
        let depth = Gauge(label: "workqueue_depth", dimensions: [("name", "profilingtarget")], factory: registry)
        depth.record(7)
        depth.record(2)
        let time = Timer(label: "reconcile.time-seconds", dimensions: [("path", "a\"b\\c\nd")], factory: registry)
        time.recordNanoseconds(1_500_000_000)
        time.recordNanoseconds(500_000_000)

        let expected = """
            # TYPE controller_runtime_reconcile_total counter
            controller_runtime_reconcile_total{controller="profilingtarget",result="error"} 1
            controller_runtime_reconcile_total{controller="profilingtarget",result="success"} 4
            # TYPE reconcile_time_seconds summary
            reconcile_time_seconds_sum{path="a\\"b\\\\c\\nd"} 2
            reconcile_time_seconds_count{path="a\\"b\\\\c\\nd"} 2
            # TYPE workqueue_depth gauge
            workqueue_depth{name="profilingtarget"} 2

            """
        #expect(registry.render() == expected)
    }

    @Test("a series exists from creation (zero), and reset clears it")
    func zeroAndReset() {
        let registry = PrometheusRegistry()
        let counter = Counter(label: "hearth_events_total", factory: registry)
        #expect(registry.render() == "# TYPE hearth_events_total counter\nhearth_events_total 0\n")
        counter.increment(by: 5)
        #expect(registry.render().hasSuffix("hearth_events_total 5\n"))
        counter.reset()
        #expect(registry.render().hasSuffix("hearth_events_total 0\n"))
        FloatingPointCounter(label: "hearth_seconds_total", factory: registry).increment(by: 0.25)
        #expect(registry.render().contains("hearth_seconds_total 0.25\n"))
    }
}
