// RunCommand.swift: `hearth-operator run`: the controller (behind leader election), /metrics and the health
// probes in one ServiceGroup.

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
