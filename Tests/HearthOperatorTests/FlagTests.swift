// FlagTests.swift: the syntax of the operator's agent flags, as tables.

import HearthAPI
import HearthOperator
import KubeModel
import Testing

@Suite("Operator flags")
struct OperatorFlagTests {
    struct TolerationCase: Sendable, CustomTestStringConvertible {
        var text: String
        var key: String?
        var op: String?
        var value: String?
        var effect: String?
        var testDescription: String { self.text }
    }

    static let tolerations: [TolerationCase] = [
        TolerationCase(text: "all", key: nil, op: "Exists", value: nil, effect: nil),
        TolerationCase(text: "gpu", key: "gpu", op: "Exists", value: nil, effect: nil),
        TolerationCase(text: "gpu=true", key: "gpu", op: "Equal", value: "true", effect: nil),
        TolerationCase(text: "gpu=true:NoSchedule", key: "gpu", op: "Equal", value: "true", effect: "NoSchedule"),
        TolerationCase(
            text: "node-role.kubernetes.io/control-plane:NoSchedule",
            key: "node-role.kubernetes.io/control-plane",
            op: "Exists",
            value: nil,
            effect: "NoSchedule"
        ),
        TolerationCase(text: "dedicated=:NoExecute", key: "dedicated", op: "Equal", value: "", effect: "NoExecute"),
    ]

    @Test("--toleration KEY[=VALUE][:EFFECT] or all", arguments: tolerations)
    func toleration(_ item: TolerationCase) throws {
        let toleration = try Toleration(flag: item.text)
        #expect(toleration.key == item.key)
        #expect(toleration.operator == item.op)
        #expect(toleration.value == item.value)
        #expect(toleration.effect == item.effect)
    }

    @Test("--toleration errors name the flag and the syntax", arguments: ["", "=x", ":NoSchedule", "gpu:Sometimes"])
    func badToleration(_ text: String) {
        #expect(throws: FlagError.self) { try Toleration(flag: text) }
        do {
            _ = try Toleration(flag: text)
        } catch {
            #expect(error.description.hasPrefix("--toleration \(text): expected"))
        }
    }

    @Test("--node-selector KEY=VALUE")
    func nodeSelector() throws {
        #expect(
            try NodeSelectorTerm(flag: "kubernetes.io/os=linux") == NodeSelectorTerm(flag: "kubernetes.io/os=linux")
        )
        let term = try NodeSelectorTerm(flag: "pool=a=b")
        #expect(term.key == "pool" && term.value == "a=b")
        #expect(try NodeSelectorTerm(flag: "empty=").value == "")
        for bad in ["linux", "=linux", ""] {
            #expect(throws: FlagError(flag: "--node-selector", value: bad, expected: "KEY=VALUE")) {
                try NodeSelectorTerm(flag: bad)
            }
        }
    }

    @Test("--default-pyroscope-service NAMESPACE/NAME[:PORT]")
    func service() throws {
        let plain = try ServiceReference(flag: "observability/pyroscope")
        #expect(plain.namespace == "observability" && plain.name == "pyroscope" && plain.port == nil)
        let withPort = try ServiceReference(flag: "observability/pyroscope:4100")
        #expect(withPort.port == 4100)
        for bad in [
            "pyroscope", "/pyroscope", "observability/", "a/b/c", "observability/pyroscope:http",
            "observability/pyroscope:0", "observability/pyroscope:70000",
        ] {
            #expect(throws: FlagError.self, "\(bad)") { try ServiceReference(flag: bad) }
        }
    }
}

@Suite("Operator flags: the agent's deployment, Grafana and the API rate limit")
struct OperatorFlagGroupTests {
    @Test("no flags: the defaults of OperatorConfiguration, the namespace from POD_NAMESPACE")
    func deploymentDefaults() throws {
        let configuration = try AgentDeploymentFlags().configuration()
        let defaults = OperatorConfiguration()
        #expect(configuration.namespace == defaults.namespace)
        #expect(configuration.agentImage == defaults.agentImage)
        #expect(configuration.securityMode == .privileged)
        #expect(configuration.resources == defaults.resources)
        #expect(configuration.agentCommandLine == AgentCommandLine.inCluster)
        #expect(configuration.defaultBackend == nil)
        #expect(
            try AgentDeploymentFlags().configuration(environment: ["POD_NAMESPACE": "profiling"]).namespace
                == "profiling"
        )
        var named = AgentDeploymentFlags()
        named.namespace = "given"
        #expect(try named.configuration(environment: ["POD_NAMESPACE": "profiling"]).namespace == "given")
    }

    @Test("every agent flag reaches the configuration")
    func deploymentFlags() throws {
        var flags = AgentDeploymentFlags()
        flags.securityMode = .capabilities
        flags.tolerations = ["all", "gpu=true:NoSchedule"]
        flags.nodeSelectors = ["kubernetes.io/os=linux", "pool=a"]
        flags.cpuLimit = "500m"
        flags.priorityClassName = "system-node-critical"
        flags.agentUnwind = .framePointers
        flags.agentUnwindTableMiB = 16
        flags.agentMemoryBudgetMiB = 96
        flags.defaultPyroscopeService = "observability/pyroscope:4100"
        flags.defaultPyroscopeTenant = "shop"
        let configuration = try flags.configuration()
        #expect(configuration.securityMode == .capabilities)
        #expect(configuration.tolerations.map(\.operator) == ["Exists", "Equal"])
        #expect(configuration.nodeSelector == ["kubernetes.io/os": "linux", "pool": "a"])
        #expect(configuration.resources.limits == ["memory": "256Mi", "cpu": "500m"])
        #expect(configuration.priorityClassName == "system-node-critical")
        #expect(configuration.agentCommandLine.unwind == .framePointers)
        #expect(configuration.agentCommandLine.unwindTableMiB == 16)
        #expect(configuration.agentCommandLine.memoryBudgetMiB == 96)
        #expect(configuration.defaultBackend?.serviceRef?.port == 4100)
        #expect(configuration.defaultBackend?.tenantID == "shop")
        flags.defaultPyroscopeService = nil
        flags.defaultPyroscopeURL = "http://pyroscope:4040"
        #expect(try flags.configuration().defaultBackend?.url == "http://pyroscope:4040")
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        var name: String
        var change: @Sendable (inout AgentDeploymentFlags) -> Void
        var message: String
        var testDescription: String { self.name }
    }

    static let refusals: [Refusal] = [
        Refusal(
            name: "table memory 0",
            change: { $0.agentUnwindTableMiB = 0 },
            message: "--agent-unwind-table-mib 0 is out of range: use 1 to 1024 (4 is the default)"
        ),
        Refusal(
            name: "table memory 1025",
            change: { $0.agentUnwindTableMiB = 1025 },
            message: "--agent-unwind-table-mib 1025 is out of range: use 1 to 1024 (4 is the default)"
        ),
        Refusal(
            name: "budget 7",
            change: { $0.agentMemoryBudgetMiB = 7 },
            message: "--agent-memory-budget-mib 7 is out of range: use 8 to 4096 (32 is the default)"
        ),
        Refusal(
            name: "budget 4097",
            change: { $0.agentMemoryBudgetMiB = 4097 },
            message: "--agent-memory-budget-mib 4097 is out of range: use 8 to 4096 (32 is the default)"
        ),
        Refusal(
            name: "both default backends",
            change: {
                $0.defaultPyroscopeURL = "http://pyroscope:4040"
                $0.defaultPyroscopeService = "observability/pyroscope"
            },
            message: "set at most one of --default-pyroscope-url and --default-pyroscope-service"
        ),
        Refusal(
            name: "bad service",
            change: { $0.defaultPyroscopeService = "pyroscope" },
            message: "--default-pyroscope-service pyroscope: expected NAMESPACE/NAME[:PORT]"
        ),
        Refusal(name: "bad toleration", change: { $0.tolerations = ["=x"] }, message: "--toleration =x: expected"),
        Refusal(
            name: "bad node selector",
            change: { $0.nodeSelectors = ["linux"] },
            message: "--node-selector linux: expected KEY=VALUE"
        ),
    ]

    @Test("agent flags that cannot be used are refused, naming the flag", arguments: refusals)
    func deploymentRefusals(_ refusal: Refusal) {
        var flags = AgentDeploymentFlags()
        refusal.change(&flags)
        do {
            _ = try flags.configuration()
            Issue.record("accepted")
        } catch {
            #expect("\(error)".hasPrefix(refusal.message), "\(error)")
        }
    }

    struct GrafanaCase: Sendable, CustomTestStringConvertible {
        var url: String?
        var credentials: String?
        var timeout = 10
        var resync = 300
        /// The Secret, or the start of the error.
        var result: Result<ObjectKey?, FlagError>
        var testDescription: String { "\(self.url ?? "-") \(self.credentials ?? "-") \(self.timeout) \(self.resync)" }
    }

    static let grafana: [GrafanaCase] = [
        GrafanaCase(url: nil, credentials: nil, result: .success(nil)),
        GrafanaCase(
            url: "http://grafana.monitoring.svc",
            credentials: "monitoring/grafana",
            result: .success(ObjectKey(namespace: "monitoring", name: "grafana"))
        ),
        GrafanaCase(
            url: "https://grafana.example.com/sub/path",
            credentials: "grafana",
            result: .success(ObjectKey(namespace: "hearth-system", name: "grafana"))
        ),
        GrafanaCase(
            url: nil,
            credentials: "grafana",
            result: .failure(
                FlagError(
                    flag: "--grafana-credentials",
                    message: "--grafana-credentials needs --grafana-url (where Grafana is)"
                )
            )
        ),
        GrafanaCase(
            url: "grafana.monitoring.svc",
            credentials: "grafana",
            result: .failure(
                FlagError(
                    flag: "--grafana-url",
                    value: "grafana.monitoring.svc",
                    expected: "an http(s) URL such as http://grafana.monitoring.svc"
                )
            )
        ),
        GrafanaCase(
            url: "http://grafana a",
            credentials: "grafana",
            result: .failure(
                FlagError(
                    flag: "--grafana-url",
                    value: "http://grafana a",
                    expected: "an http(s) URL such as http://grafana.monitoring.svc"
                )
            )
        ),
        GrafanaCase(
            url: "http://grafana",
            credentials: nil,
            result: .failure(
                FlagError(
                    flag: "--grafana-url",
                    message:
                        "--grafana-url needs --grafana-credentials NAMESPACE/NAME: a Secret with key 'token' (a Grafana service-account token) or keys 'username' and 'password'"
                )
            )
        ),
        GrafanaCase(
            url: "http://grafana",
            credentials: "a/b/c",
            result: .failure(
                FlagError(flag: "--grafana-credentials", value: "a/b/c", expected: "NAMESPACE/NAME or NAME")
            )
        ),
        GrafanaCase(
            url: "http://grafana",
            credentials: "/grafana",
            result: .failure(
                FlagError(flag: "--grafana-credentials", value: "/grafana", expected: "NAMESPACE/NAME or NAME")
            )
        ),
        GrafanaCase(
            url: "http://grafana",
            credentials: "grafana",
            timeout: 0,
            result: .failure(
                FlagError(
                    flag: "--grafana-timeout",
                    message: "--grafana-timeout must be at least 1 and --grafana-resync at least 10 seconds"
                )
            )
        ),
        GrafanaCase(
            url: "http://grafana",
            credentials: "grafana",
            resync: 9,
            result: .failure(
                FlagError(
                    flag: "--grafana-resync",
                    message: "--grafana-timeout must be at least 1 and --grafana-resync at least 10 seconds"
                )
            )
        ),
    ]

    @Test("--grafana-url, --grafana-credentials, --grafana-timeout and --grafana-resync", arguments: grafana)
    func grafanaSettings(_ item: GrafanaCase) {
        var flags = GrafanaFlags()
        flags.url = item.url
        flags.credentials = item.credentials
        flags.timeoutSeconds = item.timeout
        flags.resyncSeconds = item.resync
        let result = Result { () throws(FlagError) in try flags.settings(namespace: "hearth-system") }
        switch (result, item.result) {
        case (.success(let settings), .success(let secret)):
            #expect(settings?.credentialsSecret == secret)
            #expect(
                settings.map { $0.timeout == .seconds(item.timeout) && $0.resyncPeriod == .seconds(item.resync) }
                    ?? true
            )
        case (.failure(let error), .failure(let expected)):
            #expect(error == expected)
        default:
            Issue.record("got \(result), expected \(item.result)")
        }
    }

    @Test(
        "--kube-api-qps 0 or more and --kube-api-burst at least 1",
        arguments: [
            (0.0, 1, true), (0, 100, true), (50, 100, true), (-1, 100, false), (5, 0, false), (-0.5, 0, false),
        ]
    )
    func apiRate(_ qps: Double, _ burst: Int, _ accepted: Bool) {
        #expect(((try? APIRateFlags(qps: qps, burst: burst)) != nil) == accepted)
        if !accepted {
            #expect(throws: FlagError.self) { try APIRateFlags(qps: qps, burst: burst) }
            do { _ = try APIRateFlags(qps: qps, burst: burst) } catch {
                #expect(error.description.hasSuffix("got \(qps) and \(burst)"))
            }
        }
    }
}
