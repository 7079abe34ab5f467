// AgentEndToEndTests.swift: the whole pipeline on the real kernel. kube-test-server holds a Pod on this node whose
// container id names a cgroup the test creates in the kubelet's layout; the operator (a child process) renders the
// agent configuration from a ProfilingTarget; `hearth-agent run` (a child process, under exactly the capabilities
// the operator renders) reads it from files laid out as the kubelet mounts a ConfigMap, and pushes to the
// Pyroscope test receiver, which applies the server's validation.

import Foundation
import HearthAPI
import HearthOperator
import HearthTestSupport
import PyroscopeTestServer
import Testing

@testable import HearthAgent

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A mounted ConfigMap as the kubelet lays it out: `FILE -> ..data/FILE`, `..data -> ..TIMESTAMP/`, swapped
/// atomically by renaming a new `..data` symlink over the old one.
struct KubeletVolume {
    let directory: String
    private(set) var version = 0

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    mutating func write(_ files: [String: String]) throws {
        self.version += 1
        let folder = "..2026_11_30_00_00_\(self.version)"
        try FileManager.default.createDirectory(
            atPath: "\(self.directory)/\(folder)",
            withIntermediateDirectories: true
        )
        for (name, content) in files {
            try Data(content.utf8).write(to: URL(fileURLWithPath: "\(self.directory)/\(folder)/\(name)"))
            let link = "\(self.directory)/\(name)"
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == nil {
                try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "..data/\(name)")
            }
        }
        let temporary = "\(self.directory)/..data_tmp"
        try? FileManager.default.removeItem(atPath: temporary)
        try FileManager.default.createSymbolicLink(atPath: temporary, withDestinationPath: folder)
        guard rename(temporary, "\(self.directory)/..data") == 0 else { throw POSIXError(.EIO) }
    }
}

@Suite("hearth-agent run end to end", .serialized, .enabled(if: BPFRequirement.enabled, "needs root for eBPF"))
struct AgentEndToEndTests {
    static let node = "hearth-e2e-node"

    @Test(
        "a ProfilingTarget ends as labelled profiles in Pyroscope; an edit reaches the running agent without a restart"
    )
    func endToEnd() async throws {
        let cgroupRoot = try #require(CgroupMount.unifiedRoot(), "no cgroup2 mount on this host")
        try await withTemporaryDirectory { directory in
            let cluster = try await KubeTestServerProcess.start(in: directory)
            defer { cluster.server.stop() }
            try await PyroscopeTestServer.withRunning { pyroscope in
                try await Self.run(cluster: cluster, pyroscope: pyroscope, cgroupRoot: cgroupRoot)
            }
        }
    }

    static func run(cluster: KubeTestServerProcess, pyroscope: PyroscopeTestServer, cgroupRoot: String) async throws {
        func kubectl(_ arguments: String...) async throws -> String {
            let result = try await cluster.kubectl(arguments)
            try #require(result.status == 0, "kubectl \(arguments.joined(separator: " ")): \(result.output)")
            return result.stdout
        }
        func apply(_ json: String) async throws {
            let file = cluster.directory + "/apply-\(UUID().uuidString).json"
            try Data(json.utf8).write(to: URL(fileURLWithPath: file))
            _ = try await kubectl("apply", "--server-side", "--field-manager=test", "-f", file)
        }
        _ = try await kubectl("apply", "-f", repositoryRoot.appendingPathComponent("crds").path)
        _ = try await kubectl("wait", "--for=condition=Established", "crd/profilingtargets.profiling.hearth.dev")
        _ = try await kubectl("create", "namespace", "shop")
        _ = try await kubectl("create", "namespace", "hearth-system")

        // The workload: a container of a pod on this node, in the kubelet's systemd-driver cgroup layout.
        let containerID = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
        let podUID = UUID().uuidString.lowercased()
        let cgroup =
            "\(cgroupRoot)/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
            + podUID.replacingOccurrences(of: "-", with: "_") + ".slice/cri-containerd-\(containerID).scope"
        try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: true)
        let workload = try Workloads.chain("syscalls")
        let outsider = try Workloads.chain("spin")
        defer {
            workload.stop()
            outsider.stop()
            try? FileManager.default.removeItem(atPath: cgroup)
        }
        try Data("\(workload.pid)\n".utf8).write(to: URL(fileURLWithPath: cgroup + "/cgroup.procs"))
        try await apply(
            """
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"writer-1","namespace":"shop","labels":{"app":"writer"}},
             "spec":{"nodeName":"\(node)","containers":[{"name":"main","image":"writer:1"}]}}
            """
        )
        _ = try await kubectl(
            "patch",
            "pod",
            "writer-1",
            "-n",
            "shop",
            "--subresource=status",
            "--type=merge",
            "-p",
            #"{"status":{"phase":"Running","containerStatuses":[{"name":"main","ready":true,"containerID":"containerd://\#(containerID)"}]}}"#
        )
        // Another pod on another node, with the same labels: not this agent's business.
        try await apply(
            """
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"writer-2","namespace":"shop","labels":{"app":"writer"}},
             "spec":{"nodeName":"another-node","containers":[{"name":"main","image":"writer:1"}]}}
            """
        )
        try await apply(
            """
            {"apiVersion":"profiling.hearth.dev/v1alpha1","kind":"ProfilingTarget","metadata":{"name":"writer","namespace":"shop"},
             "spec":{"selector":{"matchLabels":{"app":"writer"}},"sampleRate":49,"labels":{"team":"storage"},
                     "pyroscope":{"url":"\(pyroscope.url)","tenantID":"shop"}}}
            """
        )

        // The operator renders the agent configuration.
        let operatorProcess = try await OperatorProcess.start(
            cluster,
            identity: "e2e",
            extraArguments: ["--no-leader-election"]
        )
        defer { operatorProcess.process.stop() }
        func renderedConfiguration(revisionOtherThan old: String? = nil) async throws -> String {
            var text = ""
            let rendered = await eventually(timeout: .seconds(30)) {
                let result = try? await cluster.kubectl([
                    "get", "configmap", "hearth-agent-config", "-n", "hearth-system", "-o",
                    #"jsonpath={.data.targets\.json}"#,
                ])
                text = result?.stdout ?? ""
                guard let configuration = try? AgentConfiguration.decode(Data(text.utf8)) else { return false }
                return configuration.revision != old
            }
            try #require(
                rendered,
                "the operator did not render the agent configuration: \(operatorProcess.process.output)"
            )
            return text
        }
        let first = try await renderedConfiguration()
        var configVolume = try KubeletVolume(directory: cluster.directory + "/config")
        try configVolume.write([AgentConfiguration.fileName: first])
        let credentials = cluster.directory + "/credentials"
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)

        // The agent, under exactly the capabilities the operator renders for the capabilities-only mode.
        let capabilities = AgentRenderer.agentCapabilities.map { "+" + $0.lowercased() }.joined(separator: ",")
        var environment = ProcessInfo.processInfo.environment
        environment["KUBECONFIG"] = cluster.kubeconfigPath
        environment["NODE_NAME"] = node
        environment.removeValue(forKey: "KUBERNETES_SERVICE_HOST")
        let agent = try BackgroundProcess(
            "/usr/bin/setpriv",
            [
                "--inh-caps=-all", "--bounding-set=-all,\(capabilities)", "--",
                BuildProducts.executable("hearth-agent"), "run", "--config",
                configVolume.directory + "/" + AgentConfiguration.fileName, "--credentials", credentials,
                "--namespace", "hearth-system", "--listen", "127.0.0.1:0", "--upload-interval", "2s",
                "--log-level", "debug",
            ],
            directory: cluster.directory,
            environment: environment
        )
        defer { agent.stop() }

        // Profiles arrive with the right labels and the workload's hot function.
        let series = try await pyroscope.waitForSeries(count: 1, timeout: .seconds(60))
        try #require(agent.isRunning, "the agent exited: \(agent.output)")
        let received = try #require(series.first)
        #expect(
            received.labels == [
                "__name__": "process_cpu", "service_name": "shop/writer-1", "namespace": "shop", "pod": "writer-1",
                "container": "main", "node": node, "team": "storage",
            ]
        )
        #expect(received.tenant == "shop")
        #expect(received.profile.period == 1_000_000_000 / 49)
        // User frames are named: the workload's main. Unwinding from .eh_frame (the default) keeps syscall_loop,
        // the caller of libc's frameless write(), in the stacks of the write path too (frame pointers skip it);
        // only the few samples taken before the agent loaded the process's tables lack it.
        let main = received.profile.inclusiveTotal(of: "main")
        #expect(main > 0, "\(received.profile.inclusiveTotals())")
        #expect(
            Double(received.profile.inclusiveTotal(of: "syscall_loop")) >= 0.85 * Double(main),
            "\(received.profile.inclusiveTotals())"
        )
        // Kernel frames are named too (CAP_SYSLOG is in the rendered set): the write path.
        let kernelWrite = received.profile.inclusiveTotals().keys.filter { $0.contains("sys_write") }
        #expect(
            !kernelWrite.isEmpty,
            "no named kernel write frame: \(received.profile.inclusiveTotals().keys.sorted())"
        )
        // The busy process outside the target is in no profile.
        #expect(pyroscope.receivedSeries.allSatisfy { $0.profile.inclusiveTotal(of: "hot_leaf") == 0 })
        #expect(pyroscope.receivedSeries.allSatisfy { $0.labels["pod"] == "writer-1" })

        // The node Lease reports the loaded revision.
        let firstRevision = try AgentConfiguration.decode(Data(first.utf8)).revision
        #expect(
            await eventually(timeout: .seconds(30)) {
                let result = try? await cluster.kubectl([
                    "get", "lease", AgentLease.name(node: node), "-n", "hearth-system", "-o",
                    #"jsonpath={.metadata.annotations.profiling\.hearth\.dev/config-revision}"#,
                ])
                return result?.stdout == firstRevision
            }
        )

        // Editing the target (sample rate, labels) reaches the running agent through the file, no restart.
        _ = try await kubectl(
            "patch",
            "profilingtarget",
            "writer",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            #"{"spec":{"sampleRate":19,"labels":{"team":"platform"}}}"#
        )
        let second = try await renderedConfiguration(revisionOtherThan: firstRevision)
        try configVolume.write([AgentConfiguration.fileName: second])
        try await pyroscope.waitUntil(timeout: .seconds(30)) { series, _ in
            series.contains { $0.labels["team"] == "platform" }
        }
        let edited = try #require(pyroscope.receivedSeries.last { $0.labels["team"] == "platform" })
        #expect(edited.profile.period == 1_000_000_000 / 19)
        #expect(edited.profile.inclusiveTotal(of: "main") > 0)
        #expect(agent.isRunning, "the agent restarted or exited: \(agent.output)")
        #expect(agent.output.contains("configuration loaded"))

        // A broken file: the last good configuration stays in force and profiles keep flowing.
        try configVolume.write([AgentConfiguration.fileName: "{\"version\": 7}"])
        let before = pyroscope.receivedSeries.count
        try await pyroscope.waitUntil(timeout: .seconds(30)) { series, _ in series.count >= before + 2 }
        #expect(pyroscope.receivedSeries.suffix(2).allSatisfy { $0.labels["team"] == "platform" })
        #expect(agent.output.contains("version 7 is not supported"))

        // SIGTERM: a clean exit.
        agent.terminate()
        let exit = await agent.waitForExit(timeout: .seconds(20))
        #expect(exit == 0, "exit \(String(describing: exit)): \(agent.output.suffix(3000))")
    }
}
