// OperatorBenchmark.swift: 1,000 targets in 100 namespaces reconciled from a cold start, then steady-state writes.
// Not a timed unit test: runs only with HEARTH_BENCH=1 and prints figures for BENCHMARKS-operator.md.

import Foundation
import HearthAPI
import HearthOperator
import HearthTestSupport
import KubeClient
import KubeModel
import KubeRuntime
import KubeTestServer
import Testing

@Suite("Operator benchmark", .enabled(if: ProcessInfo.processInfo.environment["HEARTH_BENCH"] == "1"))
struct OperatorBenchmark {
    static func peakRSSKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    @Test("1,000 targets in 100 namespaces from a cold start", .timeLimit(.minutes(5)))
    func coldStart() async throws {
        let targetCount = Int(ProcessInfo.processInfo.environment["HEARTH_BENCH_TARGETS"] ?? "") ?? 1000
        let namespaces = 100
        let steadySeconds = Int(ProcessInfo.processInfo.environment["HEARTH_BENCH_STEADY_SECONDS"] ?? "") ?? 60
        let rssBefore = Self.peakRSSKiB()
        try await KubeTestServer.withRunning(logger: quietLogger) { server in
            try await withKubeClient(
                configuration: clientConfiguration(server.url, userAgent: "tests/1.0"),
                logger: quietLogger
            ) { client in
                _ = try await client.resource(CustomResourceDefinition.self).create(
                    ProfilingTarget.customResourceDefinition
                )
                var namespaceObjects: [JSONObject] = [Namespace(name: "hearth-system").object]
                for index in 0..<namespaces { namespaceObjects.append(Namespace(name: "team-\(index)").object) }
                try server.seed(group: "", plural: "namespaces", objects: namespaceObjects)
                var targets: [JSONObject] = []
                for index in 0..<targetCount {
                    var target = makeTarget(
                        "app-\(index)",
                        namespace: "team-\(index % namespaces)",
                        app: "app-\(index)"
                    )
                    target.metadata.generation = 1
                    targets.append(target.object)
                }
                try server.seed(group: "profiling.hearth.dev", plural: "profilingtargets", objects: targets)
                server.clearRequestLog()
                let rssSeeded = Self.peakRSSKiB()

                try await withKubeClient(
                    configuration: clientConfiguration(server.url, userAgent: OperatorHarness.operatorUserAgent),
                    logger: quietLogger
                ) { operatorClient in
                    try await withKubeClient(
                        configuration: clientConfiguration(server.url, userAgent: OperatorHarness.operatorUserAgent),
                        logger: quietLogger
                    ) { ownedClient in
                        var configuration = OperatorConfiguration()
                        configuration.workers = 4
                        let (controller, reconciler) = ProfilingTargetController.make(
                            client: operatorClient,
                            ownedClient: ownedClient,
                            configuration: configuration,
                            prober: StubProber(),
                            recorder: nil,
                            logger: quietLogger
                        )
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            let start = ContinuousClock.now
                            group.addTask { try await controller.run() }
                            defer { group.cancelAll() }
                            // Done: every target has a status for its generation and is in the agent configuration.
                            let allDone = await eventually(timeout: .seconds(120), every: .milliseconds(20)) {
                                let stored = server.objects(group: "profiling.hearth.dev", plural: "profilingtargets")
                                let withStatus = stored.filter {
                                    $0["status"]?["observedGeneration"] == 1
                                        && ($0["metadata"]?["finalizers"]?.arrayValue?.isEmpty == false)
                                }.count
                                return withStatus == targetCount
                            }
                            let elapsed = ContinuousClock.now - start
                            let configMaps = server.objects(group: "", plural: "configmaps")
                            let config = configMaps.first { $0["metadata"]?["name"] == "hearth-agent-config" }
                            let configured =
                                config?["data"]?[AgentRenderer.configKey]?.stringValue
                                .map { $0.components(separatedBy: "\"sampleRate\"").count - 1 } ?? 0
                            let log = server.requestLog.filter {
                                $0.userAgent.hasPrefix(OperatorHarness.operatorUserAgent)
                            }
                            var byVerb: [String: Int] = [:]
                            for record in log { byVerb[record.verb, default: 0] += 1 }
                            let rssCold = Self.peakRSSKiB()
                            print(
                                "BENCH cold-start targets=\(targetCount) namespaces=\(namespaces) done=\(allDone) elapsed=\(elapsed) configured=\(configured) requests=\(log.count) byVerb=\(byVerb.sorted { $0.key < $1.key }) agentSyncs=\(reconciler.agentSyncs) reconciles=\(reconciler.reconciles)"
                            )
                            print(
                                "BENCH rss-peak-kib before=\(rssBefore) seeded=\(rssSeeded) afterColdStart=\(rssCold)"
                            )
                            #expect(allDone)
                            #expect(configured == targetCount)

                            // Steady state: requeues keep reconciling; count writes.
                            try await Task.sleep(for: .seconds(2))
                            server.clearRequestLog()
                            let reconcilesBefore = reconciler.reconciles
                            try await Task.sleep(for: .seconds(steadySeconds))
                            let steady = server.requestLog.filter {
                                $0.userAgent.hasPrefix(OperatorHarness.operatorUserAgent)
                            }
                            let writes = steady.filter(\.isWrite)
                            print(
                                "BENCH steady seconds=\(steadySeconds) requests=\(steady.count) writes=\(writes.count) reconciles=\(reconciler.reconciles - reconcilesBefore) rss-peak-kib=\(Self.peakRSSKiB())"
                            )
                            #expect(writes.isEmpty)
                        }
                    }
                }
            }
        }
    }
}
