// FairShareAgentTests.swift: the node agent gives each ProfilingTarget its own share of the kernel's counts map. Two
// targets on this node, each with a pod whose container has a cgroup in containerd's layout: one floods the map
// with a new key per thread, the other is well-behaved. The agent (in process, with native unwinding as it ships)
// sends the flood's excess as one named frame in the flood's own series, the other series keeps its functions, and
// the metric says so.

import Foundation
import HearthAPI
import HearthTestSupport
import KubeModel
import KubeRuntime
import Logging
import MetricsTestKit
import PyroscopeTestServer
import ServiceLifecycle
import Testing

@testable import HearthAgent

@Suite(
    "Fair share in the node agent",
    .serialized,
    .enabled(if: BPFRequirement.enabled, "needs root for eBPF and cgroup2")
)
struct FairShareAgentTests {
    /// The flood's source lives with the sampler's fair-share tests.
    static let workload = Result {
        try CFixture.build(
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("HearthSamplerTests/Fixtures/fair_share_workload.c").path,
            name: "fair_share_workload",
            flags: ["-O0", "-g", "-fno-omit-frame-pointer", "-fno-inline", "-pthread"]
        )
    }
    static let frame = "[over this target's stack share]"

    @Test(
        "a flooding target's excess is one named frame in its own series; the other target keeps its stacks",
        .timeLimit(.minutes(3))
    )
    func floodStaysInItsShare() async throws {
        let unified = try #require(CgroupMount.unifiedRoot(), "no cgroup2 mount")
        let base = "\(unified)/hearth-fair-agent-\(UUID().uuidString.prefix(8))"
        let floodID = Self.containerID()
        let steadyID = Self.containerID()
        let floodCgroup = "\(base)/cri-containerd-\(floodID).scope"
        let steadyCgroup = "\(base)/cri-containerd-\(steadyID).scope"
        for folder in [base, floodCgroup, steadyCgroup] {
            try #require(mkdir(folder, 0o755) == 0, "mkdir \(folder): errno \(errno)")
        }
        defer { CgroupProcess.remove([floodCgroup, steadyCgroup, base]) }
        let binary = try Self.workload.get()
        let flood = try CgroupProcess.start(in: floodCgroup, binary, ["flood", "48"])
        let steady = try CgroupProcess.start(in: steadyCgroup, binary, ["steady"])
        defer {
            flood.stop()
            steady.stop()
        }

        try await PyroscopeTestServer.withRunning { server in
            let pods = Store<Pod>()
            pods.apply(.apply(Self.pod("flood-1", app: "flood", container: floodID)))
            pods.apply(.apply(Self.pod("steady-1", app: "steady", container: steadyID)))
            let state = AgentState()
            state.load(
                AgentConfiguration(
                    revision: "r1",
                    targets: ["flood", "steady"].map { Self.target($0, pyroscope: server.url) }
                )
            )
            let metrics = TestMetrics()
            let agentMetrics = AgentMetrics(factory: metrics)
            let spool = DeliverySpool(limitBytes: 8 << 20)
            var options = NodeSampler.Options(node: "n1")
            options.drainInterval = .milliseconds(300)
            options.uploadInterval = .seconds(2)
            options.keysPerTarget = 16
            let sampler = NodeSampler(
                options: options,
                state: state,
                pods: pods,
                spool: spool,
                metrics: agentMetrics,
                logger: Logger(label: "test")
            )
            let pusher = PyroscopePusher(
                spool: spool,
                configuration: PyroscopePusher.Configuration(credentialsDirectory: "/nonexistent"),
                metrics: agentMetrics,
                logger: Logger(label: "test")
            )
            let group = ServiceGroup(services: [sampler, pusher], logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                func total(pod: String, _ function: String) -> Int64 {
                    server.receivedSeries.filter { $0.labels["pod"] == pod }
                        .reduce(0) { $0 + $1.profile.inclusiveTotal(of: function) }
                }
                let arrived = await eventually(timeout: .seconds(90), every: .milliseconds(200)) {
                    total(pod: "flood-1", Self.frame) > 0 && total(pod: "steady-1", "steady_middle") > 0
                }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()

                #expect(arrived, "\(server.receivedSeries.map { ($0.labels["pod"], $0.profile.inclusiveTotals()) })")
                // The flood's own series carries its excess; its first keys keep their stacks.
                #expect(total(pod: "flood-1", Self.frame) > 0)
                #expect(total(pod: "flood-1", "flood_leaf") > 0)
                // The well-behaved target keeps whole stacks and never gets the frame.
                #expect(total(pod: "steady-1", "steady_middle") > 0)
                #expect(total(pod: "steady-1", Self.frame) == 0)
                #expect(
                    try metrics.expectCounter("hearth_agent_hostile_input_total", [("reason", "over_target_share")])
                        .totalValue > 0
                )
                #expect(
                    try metrics.expectCounter("hearth_agent_samples_lost_total", [("reason", "counts_map_full")])
                        .totalValue == 0
                )
            }
        }
    }

    static func containerID() -> String {
        (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
    }

    static func pod(_ name: String, app: String, container: String) -> Pod {
        var pod = Pod(name: name, namespace: "shop")
        pod.metadata.labels = ["app": app]
        pod.status.phase = "Running"
        var status = ContainerStatus()
        status.name = "main"
        status.containerID = "containerd://" + container
        pod.status.containerStatuses = [status]
        return pod
    }

    static func target(_ app: String, pyroscope: String) -> AgentConfiguration.Target {
        AgentConfiguration.Target(
            namespace: "shop",
            name: app,
            selector: AgentConfiguration.Selector(matchLabels: ["app": app]),
            sampleRate: 499,
            pyroscope: AgentConfiguration.Backend(url: pyroscope)
        )
    }
}
