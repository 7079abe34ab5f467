// hearth-operator: `run` the operator, `render -f FILE` a preview of what it would apply, or write `crds`.

import ArgumentParser
import Foundation
import HearthAPI
import HearthOperator
import HearthTelemetry
import KubeClient
import KubeModel
import KubeRuntime
import Logging
import Metrics
import ServiceLifecycle
import UnixSignals

#if canImport(CMalloc)
import CMalloc
#endif

extension OperatorConfiguration.SecurityMode: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
    public static var allValueStrings: [String] { ["privileged", "capabilities"] }
}

extension AgentCommandLine.UnwindMethod: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

@main
struct HearthOperatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hearth-operator",
        abstract: "The Hearth ProfilingTarget operator.",
        subcommands: [Run.self, Render.self, CRDs.self]
    )

    static func main() async {
        #if canImport(CMalloc)
        // One malloc arena, set before any other thread allocates: a per-thread arena keeps the memory its thread
        // freed, and the bursts of a cold start (watch events parsed on several threads) left ~3-5 MiB of free but
        // resident heap behind. Allocation is not contended enough here for more arenas to pay (BENCHMARKS.md).
        _ = CMalloc_limitArenas(1)
        #endif
        await Self.main(nil)
    }
}

/// Flags shared by `run` and `render`: how the agent is deployed (checked by ``AgentDeploymentFlags``).
struct AgentOptions: ParsableArguments {
    private static let defaults = AgentDeploymentFlags()

    @Option(help: "Namespace of the agent DaemonSet (default: POD_NAMESPACE, else hearth-system).")
    var namespace: String?

    @Option(help: "The agent image.")
    var agentImage: String = Self.defaults.agentImage

    @Option(help: "How the agent container is privileged.")
    var securityMode: OperatorConfiguration.SecurityMode = Self.defaults.securityMode

    @Option(help: "A toleration KEY[=VALUE][:EFFECT], or 'all' to tolerate every taint (repeatable).")
    var toleration: [String] = []

    @Option(help: "A node selector KEY=VALUE (repeatable).")
    var nodeSelector: [String] = []

    @Option(help: "Agent CPU request.") var cpuRequest: String = Self.defaults.cpuRequest
    @Option(help: "Agent memory request.") var memoryRequest: String = Self.defaults.memoryRequest
    @Option(help: "Agent CPU limit (empty for none).") var cpuLimit: String = Self.defaults.cpuLimit
    @Option(help: "Agent memory limit.") var memoryLimit: String = Self.defaults.memoryLimit
    @Option(help: "Agent priorityClassName.") var priorityClassName: String?

    @Option(help: "How the agent walks user stacks: eh-frame (from .eh_frame tables, the default) or frame-pointers.")
    var agentUnwind: AgentCommandLine.UnwindMethod = Self.defaults.agentUnwind

    @Option(help: "Kernel memory, in MiB, for the agent's .eh_frame tables (1 to 1024).")
    var agentUnwindTableMib: Int = Self.defaults.agentUnwindTableMiB

    @Option(
        help: "What the agent's caches of workload data may hold, in MiB (8 to 4096; its --memory-budget-mib)."
    )
    var agentMemoryBudgetMib: Int = Self.defaults.agentMemoryBudgetMiB

    @Option(help: "Default Pyroscope URL for targets without spec.pyroscope.")
    var defaultPyroscopeURL: String?

    @Option(help: "Default Pyroscope Service NAMESPACE/NAME[:PORT] for targets without spec.pyroscope.")
    var defaultPyroscopeService: String?

    @Option(help: "Default Pyroscope tenant (X-Scope-OrgID).")
    var defaultPyroscopeTenant: String?

    var flags: AgentDeploymentFlags {
        var flags = AgentDeploymentFlags()
        flags.namespace = self.namespace
        flags.agentImage = self.agentImage
        flags.securityMode = self.securityMode
        flags.tolerations = self.toleration
        flags.nodeSelectors = self.nodeSelector
        flags.cpuRequest = self.cpuRequest
        flags.memoryRequest = self.memoryRequest
        flags.cpuLimit = self.cpuLimit
        flags.memoryLimit = self.memoryLimit
        flags.priorityClassName = self.priorityClassName
        flags.agentUnwind = self.agentUnwind
        flags.agentUnwindTableMiB = self.agentUnwindTableMib
        flags.agentMemoryBudgetMiB = self.agentMemoryBudgetMib
        flags.defaultPyroscopeURL = self.defaultPyroscopeURL
        flags.defaultPyroscopeService = self.defaultPyroscopeService
        flags.defaultPyroscopeTenant = self.defaultPyroscopeTenant
        return flags
    }

    func operatorConfiguration() throws -> OperatorConfiguration {
        try checked { try self.flags.configuration(environment: ProcessInfo.processInfo.environment) }
    }
}

/// `body`, with a flag error turned into ArgumentParser's usage error.
func checked<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw ValidationError("\(error)")
    }
}

struct CRDs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crds",
        abstract: "Write the CustomResourceDefinitions generated from the Swift types."
    )

    @Option(name: .shortAndLong, help: "Directory to write to ('-' prints to stdout).")
    var output: String = "crds"

    func run() throws {
        let yaml = YAMLRendering.document(ProfilingTarget.customResourceDefinition.json)
        if self.output == "-" {
            print(yaml, terminator: "")
            return
        }
        try FileManager.default.createDirectory(atPath: self.output, withIntermediateDirectories: true)
        let path = self.output + "/" + ProfilingTarget.crdFileName
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        print("wrote \(path)")
    }
}

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract:
            "Print every object the operator would apply for the ProfilingTargets in a file (secret values redacted)."
    )

    @Option(
        name: .short,
        help: "A YAML file with ProfilingTargets (and the Secrets and Services they reference); '-' reads stdin."
    )
    var file: String

    @Option(help: "Namespace for objects without one.")
    var defaultNamespace: String = "default"

    @OptionGroup var agent: AgentOptions

    func run() throws {
        let data: Data
        if self.file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let contents = FileManager.default.contents(atPath: self.file) else {
                throw ValidationError("cannot read \(self.file)")
            }
            data = contents
        }
        let output = try ManifestRenderer.render(
            yaml: String(decoding: data, as: UTF8.self),
            configuration: try self.agent.operatorConfiguration(),
            defaultNamespace: self.defaultNamespace
        )
        print(output, terminator: "")
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the operator.")

    @Option(help: "Path to a kubeconfig (default: in cluster, else KUBECONFIG or ~/.kube/config).")
    var kubeconfig: String?

    @Option(help: "Kubeconfig context.")
    var context: String?

    @Option(help: "Only watch ProfilingTargets in this namespace.")
    var watchNamespace: String?

    @Option(help: "Metrics address HOST:PORT.")
    var metricsAddress: String = "0.0.0.0:8080"

    @Option(help: "Health probe address HOST:PORT (/healthz, /readyz).")
    var healthAddress: String = "0.0.0.0:8081"

    @Flag(inversion: .prefixedNo, help: "Leader election on a coordination.k8s.io Lease.")
    var leaderElection: Bool = true

    @Option(help: "Lease name.")
    var leaseName: String = "hearth-operator"

    @Option(help: "This replica's identity (default: POD_NAME, else host name and a random suffix).")
    var identity: String?

    @Option(help: "Lease duration in seconds.") var leaseDuration: Int = 15
    @Option(help: "Renew deadline in seconds.") var renewDeadline: Int = 10
    @Option(help: "Retry period in seconds.") var retryPeriod: Int = 2

    @Option(
        name: .customLong("kube-api-qps"),
        help: ArgumentHelp(
            "Client-side API rate limit, requests per second; 0 leaves throttling to the API server's priority and fairness.",
            discussion: "controller-runtime 0.21 and later also disable the client-side limit by default."
        )
    )
    var kubeAPIQPS: Double = 0

    @Option(name: .customLong("kube-api-burst"), help: "Client-side API burst (with --kube-api-qps above 0).")
    var kubeAPIBurst: Int = 100

    @Option(help: "Concurrent reconciles.") var workers: Int = 4
    @Option(help: "Timeout of a Pyroscope readiness probe, seconds.") var probeTimeout: Int = 3
    @Option(help: "Log level.") var logLevel: Logger.Level = .info

    @Option(help: "Grafana's URL: provision the Pyroscope datasource of targets with spec.grafana there.")
    var grafanaURL: String?

    @Option(
        help: ArgumentHelp(
            "The Secret NAMESPACE/NAME with Grafana credentials: key 'token' (a service-account token) or keys 'username' and 'password'.",
            discussion: "Read on every Grafana call, so a rotated token is used without a restart."
        )
    )
    var grafanaCredentials: String?

    @Option(help: "Timeout of one Grafana API call, seconds.") var grafanaTimeout: Int = GrafanaFlags().timeoutSeconds
    @Option(help: "How often a synced datasource is compared with Grafana again (UI edits corrected), seconds.")
    var grafanaResync: Int = GrafanaFlags().resyncSeconds

    @OptionGroup var agent: AgentOptions

    func grafanaSettings(namespace: String) throws -> GrafanaSettings? {
        var flags = GrafanaFlags()
        flags.url = self.grafanaURL
        flags.credentials = self.grafanaCredentials
        flags.timeoutSeconds = self.grafanaTimeout
        flags.resyncSeconds = self.grafanaResync
        return try checked { try flags.settings(namespace: namespace) }
    }

    static func split(_ address: String) throws -> (String, Int) {
        guard let parsed = HTTPEndpoint.address(address) else {
            throw ValidationError("\(address): expected HOST:PORT")
        }
        return parsed
    }

    func run() async throws {
        let registry = PrometheusRegistry()
        MetricsSystem.bootstrap(registry)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = self.logLevel
            return handler
        }
        let logger = Logger(label: "hearth-operator")

        var configuration = try self.agent.operatorConfiguration()
        configuration.watchNamespace = self.watchNamespace
        configuration.workers = max(1, self.workers)
        configuration.probeTimeout = .seconds(self.probeTimeout)
        configuration.grafana = try self.grafanaSettings(namespace: configuration.namespace)

        var client: ClientConfiguration
        if let kubeconfig = self.kubeconfig {
            client = try .kubeconfig(path: kubeconfig, context: self.context)
        } else {
            client = try .automatic()
        }
        client.userAgent = "hearth-operator/0.1"
        let rate = try checked { try APIRateFlags(qps: self.kubeAPIQPS, burst: self.kubeAPIBurst) }
        client.qps = rate.qps
        client.burst = rate.burst
        if self.agent.namespace == nil, ProcessInfo.processInfo.environment["POD_NAMESPACE"] == nil,
            client.source == "in-cluster"
        {
            configuration.namespace = client.namespace
        }
        let (metricsHost, metricsPort) = try Self.split(self.metricsAddress)
        let (healthHost, healthPort) = try Self.split(self.healthAddress)
        let identity =
            self.identity ?? ProcessInfo.processInfo.environment["POD_NAME"]
            ?? "\(ProcessInfo.processInfo.hostName)_\(UUID().uuidString.prefix(8).lowercased())"
        let configurationSnapshot = configuration

        try await withKubeClient(configuration: client, logger: logger) { kube in
            try await Self.serve(
                kube: kube,
                configuration: configurationSnapshot,
                identity: identity,
                registry: registry,
                logger: logger,
                metrics: (metricsHost, metricsPort),
                health: (healthHost, healthPort),
                options: self
            )
        }
    }

    static func serve(
        kube: KubeClient,
        configuration configurationSnapshot: OperatorConfiguration,
        identity: String,
        registry: PrometheusRegistry,
        logger: Logger,
        metrics: (String, Int),
        health: (String, Int),
        options self: Run
    ) async throws {
        let (metricsHost, metricsPort) = metrics
        let (healthHost, healthPort) = health
        do {
            let recorder = EventRecorder(
                client: kube,
                controller: "profiling.hearth.dev/hearth-operator",
                instance: identity,
                logger: logger
            )
            let (controller, reconciler) = ProfilingTargetController.make(
                client: kube,
                configuration: configurationSnapshot,
                prober: HTTPPyroscopeProber(timeout: configurationSnapshot.probeTimeout),
                recorder: recorder,
                logger: logger
            )
            var services: [any ServiceLifecycle.Service] = []
            let elector: LeaderElector?
            if self.leaderElection {
                var election = LeaderElector.Configuration(
                    leaseName: self.leaseName,
                    namespace: configurationSnapshot.namespace,
                    identity: identity
                )
                election.leaseDuration = .seconds(self.leaseDuration)
                election.renewDeadline = .seconds(self.renewDeadline)
                election.retryPeriod = .seconds(self.retryPeriod)
                let leader = LeaderElector(client: kube, configuration: election, logger: logger)
                elector = leader
                services.append(LeaderElectedService(elector: leader, service: controller))
            } else {
                elector = nil
                services.append(controller)
            }
            let stores = reconciler.stores
            services.append(
                HTTPEndpoint(name: "metrics", host: metricsHost, port: metricsPort, logger: logger) { path in
                    path == "/metrics"
                        ? .init(status: 200, contentType: "text/plain; version=0.0.4", body: registry.render())
                        : .init(status: 404, body: "not found\n")
                }
            )
            services.append(
                HTTPEndpoint(name: "health", host: healthHost, port: healthPort, logger: logger) { path in
                    switch path {
                    case "/healthz": return .init(status: 200, body: "ok\n")
                    case "/readyz":
                        // A follower is ready (it only waits); a leader once its caches synced.
                        let leading = elector?.isLeader ?? true
                        if !leading || stores.allSynced { return .init(status: 200, body: "ok\n") }
                        return .init(status: 503, body: "caches not synced\n")
                    default: return .init(status: 404, body: "not found\n")
                    }
                }
            )
            let group = ServiceGroup(
                configuration: .init(
                    services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            logger.info(
                "starting",
                metadata: [
                    "operator.namespace": "\(configurationSnapshot.namespace)",
                    "operator.identity": "\(identity)",
                    "operator.watchNamespace": "\(configurationSnapshot.watchNamespace ?? "*")",
                    "operator.grafana": "\(configurationSnapshot.grafana?.url ?? "none")",
                ]
            )
            try await group.run()
        }
    }
}
