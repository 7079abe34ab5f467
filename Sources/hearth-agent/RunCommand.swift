// RunCommand.swift: `hearth-agent run`, the node agent: checks its flags, then runs the configuration watcher, the
// pod informer, the node Lease, the sampler, the Pyroscope pusher and the /metrics, /healthz and /readyz endpoint
// in one ServiceGroup. The options the operator sets are the contract's (`AgentCommandLine`): `commandLine` is what
// this command parsed, as that type.

import ArgumentParser
import Foundation
import HearthAPI
import HearthAgent
import HearthSampler
import HearthTelemetry
import KubeClient
import Logging
import Metrics
import ServiceLifecycle
import UnixSignals

// Log levels by name, so a typo is an error instead of silently meaning `info`.
extension Logger.Level: @retroactive ExpressibleByArgument {}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run as the node agent: profile the targeted pods of this node and push to Pyroscope.",
        discussion: """
            Reads the agent configuration the operator renders (--config) and applies every change to the file \
            within seconds, without a restart; reads credentials from files in --credentials at every push, so \
            rotated Secrets apply too. Watches the pods of this node (in-cluster service account, or $KUBECONFIG \
            outside a cluster) and renews the node Lease hearth-agent-NODE in --namespace with the configuration \
            revision it runs. Serves /metrics, /healthz and /readyz on --listen. Needs root, or the capabilities \
            BPF, PERFMON, SYS_PTRACE, DAC_READ_SEARCH, CHECKPOINT_RESTORE and SYSLOG, in the host PID namespace.
            """
    )

    @Option(
        name: .customLong(AgentCommandLine.Option.config.name),
        help: "The agent configuration file (the operator's targets.json)."
    )
    var config: String

    @Option(
        name: .customLong(AgentCommandLine.Option.credentials.name),
        help: "The folder holding the credential files the configuration names."
    )
    var credentials: String

    @Option(help: "Where to serve /metrics, /healthz and /readyz (HOST:PORT; :PORT for every address).")
    var listen: String = ":\(AgentCommandLine.listenPort)"

    @Option(help: "How often profiles are sent to Pyroscope (e.g. 15s, 1m).")
    var uploadInterval: DurationArgument = DurationArgument(argument: "15s")!

    @Option(help: "This node's name (default: $NODE_NAME).")
    var nodeName: String?

    @Option(help: "The namespace of the node Lease (default: $POD_NAMESPACE, else the service account's).")
    var namespace: String?

    @Option(
        name: .customLong(AgentCommandLine.Option.cgroupRoot.name),
        help: "The host's cgroup file system (its cgroup2 part is found there or in unified/)."
    )
    var cgroupRoot: String = AgentCommandLine.defaultCgroupRoot

    @Option(help: "The most compressed profile bytes kept while Pyroscope is unreachable; the oldest go first.")
    var spoolBytes: Int = 8 << 20

    @OptionGroup var unwinding: UnwindOptions
    @OptionGroup var memory: MemoryOptions

    @Option(help: "Log level.")
    var logLevel: Logger.Level = .info

    var resolvedNodeName: String? {
        self.nodeName ?? ProcessInfo.processInfo.environment[AgentCommandLine.Environment.nodeName]
    }

    /// The options the operator sets, as the contract's type.
    var commandLine: AgentCommandLine {
        AgentCommandLine(
            config: self.config,
            credentials: self.credentials,
            cgroupRoot: self.cgroupRoot,
            unwind: self.unwinding.unwind,
            unwindTableMiB: self.unwinding.unwindTableMib,
            memoryBudgetMiB: self.memory.memoryBudgetMib
        )
    }

    /// The values on their own; what they name on this machine is checked by ``checkEnvironment()``.
    func validate() throws {
        _ = try Self.split(self.listen)
        guard self.uploadInterval.duration >= .seconds(1), self.uploadInterval.duration <= .seconds(3600) else {
            throw ValidationError("--upload-interval must be between 1s and 1h, got \(self.uploadInterval.duration)")
        }
        guard self.spoolBytes >= 64 << 10 else {
            throw ValidationError("--spool-bytes must be at least 65536, got \(self.spoolBytes)")
        }
    }

    /// The files, folders and node name the options name, before anything starts.
    func checkEnvironment() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: self.config, isDirectory: &isDirectory), !isDirectory.boolValue
        else {
            throw ValidationError("--config \(self.config): no such file (mount the agent ConfigMap there)")
        }
        guard FileManager.default.fileExists(atPath: self.credentials, isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            throw ValidationError("--credentials \(self.credentials): no such folder (mount the agent Secret there)")
        }
        guard let node = self.resolvedNodeName, !node.isEmpty else {
            throw ValidationError("--node-name is not set and $NODE_NAME is empty: pass the name of this node")
        }
        guard FileManager.default.fileExists(atPath: self.cgroupRoot) else {
            throw ValidationError("--cgroup-root \(self.cgroupRoot): no such folder (mount the host's /sys/fs/cgroup)")
        }
    }

    static func split(_ address: String) throws -> (host: String, port: Int) {
        guard let parsed = HTTPEndpoint.address(address) else {
            throw ValidationError("--listen \(address): expected HOST:PORT or :PORT")
        }
        return parsed
    }

    func run() async throws {
        try self.checkEnvironment()
        let level = self.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "hearth-agent")
        let registry = PrometheusRegistry()
        MetricsSystem.bootstrap(registry)

        let findings = SelfCheck().findings()
        for finding in findings { logger.log(level: finding.severity == .fatal ? .critical : .warning, "\(finding)") }
        if findings.contains(where: { $0.severity == .fatal }) {
            printError("hearth-agent cannot sample on this node: fix the errors above.")
            throw ExitCode(2)
        }

        let node = self.resolvedNodeName ?? ""
        var client = try ClientConfiguration.automatic()
        client.userAgent = "hearth-agent/0.1"
        let namespace =
            self.namespace ?? ProcessInfo.processInfo.environment[AgentCommandLine.Environment.podNamespace]
            ?? (client.source == "in-cluster" ? client.namespace : "hearth-system")
        let (host, port) = try Self.split(self.listen)
        let state = AgentState()
        let metrics = AgentMetrics(factory: registry)
        // The first read happens before anything starts, so a broken file is reported at once.
        let firstRead = ConfigurationWatcher(path: self.config, state: state, metrics: metrics, logger: logger)
            .check(previous: nil)
        let watcher = ConfigurationWatcher(
            path: self.config,
            state: state,
            metrics: metrics,
            logger: logger,
            initial: firstRead
        )
        let spool = DeliverySpool(limitBytes: self.spoolBytes)
        var options = NodeSampler.Options(node: node)
        options.cgroupRoot = self.cgroupRoot
        options.uploadInterval = self.uploadInterval.duration
        options.nativeUnwinding = self.unwinding.nativeUnwinding
        options.memoryBudget = self.memory.memoryBudget
        let credentials = self.credentials
        let configPath = self.config

        try await withKubeClient(configuration: client, logger: logger) { kube in
            let informer = NodePodInformer(client: kube, node: node, state: state, logger: logger)
            let sampler = NodeSampler(
                options: options,
                state: state,
                pods: informer.store,
                spool: spool,
                metrics: metrics,
                logger: logger
            )
            let pusher = PyroscopePusher(
                spool: spool,
                configuration: .init(credentialsDirectory: credentials),
                metrics: metrics,
                logger: logger
            )
            let lease = NodeLeaseReporter(client: kube, namespace: namespace, node: node, state: state, logger: logger)
            let endpoint = HTTPEndpoint(name: "agent", host: host, port: port, logger: logger) { path in
                switch path {
                case "/metrics":
                    return .init(status: 200, contentType: "text/plain; version=0.0.4", body: registry.render())
                case "/healthz":
                    let (alive, message) = state.liveness(stallAfter: .seconds(60))
                    return .init(status: alive ? 200 : 503, body: message + "\n")
                case "/readyz":
                    let (ready, message) = state.readiness()
                    return .init(status: ready ? 200 : 503, body: message + "\n")
                default:
                    return .init(status: 404, body: "not found\n")
                }
            }
            // Graceful shutdown runs in reverse order: the sampler spools its last interval, then the pusher
            // sends what it can, then the rest stop.
            let services: [any Service] = [endpoint, lease, informer, watcher, pusher, sampler]
            let group = ServiceGroup(
                configuration: .init(
                    services: services.map { .init(service: $0) },
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            logger.info(
                "starting",
                metadata: [
                    "agent.node": "\(node)", "agent.config": "\(configPath)", "agent.leaseNamespace": "\(namespace)",
                    "agent.listen": "\(host):\(port)", "kube.source": "\(client.source)",
                ]
            )
            try await group.run()
        }
    }
}
