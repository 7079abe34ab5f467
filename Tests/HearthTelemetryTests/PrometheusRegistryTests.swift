// PrometheusRegistryTests.swift: the /metrics text format: counters and gauges, and timers as histograms with
// controller-runtime's and client-go's buckets (what `histogram_quantile` needs).

import CoreMetrics
import Testing

@testable import HearthTelemetry

@Suite("Prometheus text format")
struct PrometheusRegistryTests {
    @Test("counters and gauges render with a TYPE line, labels in name order whatever order they were given")
    func countersAndGauges() {
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
        let depth = Gauge(
            label: "workqueue_depth",
            dimensions: [("name", "q"), ("controller", "c")],
            factory: registry
        )
        depth.record(7)
        depth.record(2)
        let text = registry.render()
        #expect(text.contains("# TYPE controller_runtime_reconcile_total counter\n"))
        #expect(text.contains(#"controller_runtime_reconcile_total{controller="profilingtarget",result="success"} 4"#))
        #expect(text.contains(#"controller_runtime_reconcile_total{controller="profilingtarget",result="error"} 1"#))
        #expect(text.contains("# TYPE workqueue_depth gauge\n"))
        #expect(text.contains(#"workqueue_depth{controller="c",name="q"} 2"#))
    }

    @Test("timers are histograms with controller-runtime's reconcile buckets and client-go's workqueue buckets")
    func histograms() {
        let registry = PrometheusRegistry()
        let reconcile = Timer(
            label: "controller_runtime_reconcile_time_seconds",
            dimensions: [("controller", "profilingtarget")],
            factory: registry
        )
        reconcile.recordNanoseconds(30_000_000)  // 0.03 s
        reconcile.recordNanoseconds(2_000_000_000)  // 2 s
        Timer(label: "workqueue_work_duration_seconds", dimensions: [("name", "q")], factory: registry)
            .recordNanoseconds(50_000)  // 50 µs
        let text = registry.render()
        #expect(text.contains("# TYPE controller_runtime_reconcile_time_seconds histogram\n"))
        let buckets = text.split(separator: "\n").filter {
            $0.hasPrefix("controller_runtime_reconcile_time_seconds_bucket{")
        }
        #expect(buckets.count == PrometheusRegistry.reconcileBuckets.count + 1, "every bound and +Inf")
        #expect(
            text.contains(
                #"controller_runtime_reconcile_time_seconds_bucket{controller="profilingtarget",le="0.025"} 0"#
            )
        )
        #expect(
            text.contains(
                #"controller_runtime_reconcile_time_seconds_bucket{controller="profilingtarget",le="0.05"} 1"#
            )
        )
        #expect(
            text.contains(#"controller_runtime_reconcile_time_seconds_bucket{controller="profilingtarget",le="2.0"} 2"#)
        )
        #expect(
            text.contains(
                #"controller_runtime_reconcile_time_seconds_bucket{controller="profilingtarget",le="+Inf"} 2"#
            )
        )
        #expect(text.contains(#"controller_runtime_reconcile_time_seconds_count{controller="profilingtarget"} 2"#))
        #expect(text.contains(#"controller_runtime_reconcile_time_seconds_sum{controller="profilingtarget"} 2.03"#))
        #expect(text.contains(#"workqueue_work_duration_seconds_bucket{name="q",le="0.0001"} 1"#))
        #expect(text.contains(#"workqueue_work_duration_seconds_bucket{name="q",le="0.00001"} 0"#))
    }

    @Test("a series exists from creation (zero), and reset clears it")
    func zeroAndReset() {
        let registry = PrometheusRegistry()
        let counter = Counter(label: "hearth_events_total", factory: registry)
        #expect(registry.render().contains("hearth_events_total 0\n"))
        counter.increment(by: 5)
        #expect(registry.render().contains("hearth_events_total 5\n"))
        counter.reset()
        #expect(registry.render().contains("hearth_events_total 0\n"))
        FloatingPointCounter(label: "hearth_seconds_total", factory: registry).increment(by: 0.25)
        #expect(registry.render().contains("hearth_seconds_total 0.25\n"))
    }
}
