// EventRecorderTests.swift: events.k8s.io/v1 Events with repeats aggregated into a series.

import HearthTestSupport
import KubeClient
import KubeModel
import KubeRuntime
import Testing

@Suite("EventRecorder", .timeLimit(.minutes(1)))
struct EventRecorderTests {
    @Test("repeated events update one Event's series; different reasons create new Events")
    func aggregation() async throws {
        try await withServerAndClient { _, client in
            let configMaps = client.resource(ConfigMap.self, namespace: "default")
            let subject = try await configMaps.create(ConfigMap(name: "subject", namespace: "default"))
            let recorder = EventRecorder(
                client: client,
                controller: "hearth.dev/operator",
                instance: "pod-1",
                logger: testLogger()
            )
            for _ in 0..<3 {
                await recorder.record(
                    subject,
                    type: .normal,
                    reason: "Applied",
                    action: "Apply",
                    note: "applied the agent"
                )
            }
            await recorder.record(subject, type: .warning, reason: "Failed", action: "Apply", note: "boom")
            let events = try await client.resource(Event.self, namespace: "default").list().items
            #expect(events.count == 2)
            let applied = try #require(events.first { $0.reason == "Applied" })
            #expect(applied.series?.count == 3)
            #expect(applied.regarding?.name == "subject")
            #expect(applied.regarding?.kind == "ConfigMap")
            #expect(applied.reportingController == "hearth.dev/operator")
            #expect(applied.eventTime?.contains(".") == true)
            #expect(events.first { $0.reason == "Failed" }?.type == "Warning")
        }
    }
}
