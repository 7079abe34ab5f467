// UnitTests.swift: the condition state machine (table), apply planning, hashing, `render -f` on the samples, and
// what the operator's caches keep.

import Foundation
import HearthAPI
import KubeModel
import Testing

@testable import HearthOperator

@Suite("Condition state machine")
struct TargetStatusTests {
    static func resolved(_ change: (inout ResolvedTarget) -> Void = { _ in }) -> ResolvedTarget {
        var target = ResolvedTarget(key: ObjectKey(namespace: "shop", name: "checkout"), generation: 4)
        target.pyroscopeURL = "http://p:4040"
        target.entry = AgentConfiguration.Target(
            namespace: "shop",
            name: "checkout",
            pyroscope: AgentConfiguration.Backend(url: "http://p:4040")
        )
        change(&target)
        return target
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var resolved: ResolvedTarget
        var probe: ProbeResult?
        var rollout: AgentRollout
        var ready: (String, String)
        var reconciling: String
        var stalled: String
        var testDescription: String { self.name }
    }

    static let ok = ProbeResult(reachable: true, message: "GET http://p:4040/ready answered 200")
    static let down = ProbeResult(reachable: false, message: "GET http://p:4040/ready answered 503")

    static let cases: [Case] = [
        Case(
            name: "first sight, rolling out",
            resolved: resolved(),
            probe: ok,
            rollout: .pending,
            ready: ("Unknown", "AgentRollingOut"),
            reconciling: "True",
            stalled: "False"
        ),
        Case(
            name: "rolling out",
            resolved: resolved(),
            probe: ok,
            rollout: .progressing(desired: 3, ready: 1, message: "1/3"),
            ready: ("Unknown", "AgentRollingOut"),
            reconciling: "True",
            stalled: "False"
        ),
        Case(
            name: "all good",
            resolved: resolved(),
            probe: ok,
            rollout: .complete(desired: 3, ready: 3),
            ready: ("True", "Reconciled"),
            reconciling: "False",
            stalled: "False"
        ),
        Case(
            name: "Pyroscope down",
            resolved: resolved(),
            probe: down,
            rollout: .complete(desired: 3, ready: 3),
            ready: ("False", "Unreachable"),
            reconciling: "False",
            stalled: "False"
        ),
        Case(
            name: "secret missing",
            resolved: resolved {
                $0.credentialProblem = TargetProblem(reason: "SecretNotFound", message: "x")
                $0.entry = nil
            },
            probe: ok,
            rollout: .pending,
            ready: ("False", "SecretNotFound"),
            reconciling: "False",
            stalled: "False"
        ),
        Case(
            name: "invalid spec",
            resolved: resolved {
                $0.violations = [SpecViolation(field: "spec.x", message: "bad")]
                $0.entry = nil
            },
            probe: nil,
            rollout: .pending,
            ready: ("False", "InvalidSpec"),
            reconciling: "False",
            stalled: "True"
        ),
        Case(
            name: "suspended",
            resolved: resolved {
                $0.suspended = true
                $0.entry = nil
            },
            probe: nil,
            rollout: .pending,
            ready: ("False", "Suspended"),
            reconciling: "False",
            stalled: "False"
        ),
        Case(
            name: "service missing",
            resolved: resolved {
                $0.backendProblem = TargetProblem(reason: "ServiceNotFound", message: "Service o/p not found")
            },
            probe: nil,
            rollout: .complete(desired: 1, ready: 1),
            ready: ("False", "ServiceNotFound"),
            reconciling: "False",
            stalled: "False"
        ),
    ]

    @Test("conditions for each situation", arguments: cases)
    func table(_ testCase: Case) {
        let observation = TargetObservation(
            generation: 4,
            resolved: testCase.resolved,
            probe: testCase.probe,
            rollout: testCase.rollout,
            matchedPods: 2
        )
        let status = TargetStatusComputer.compute(observation, previous: ProfilingTargetStatus())
        #expect(status.condition("Ready")?.status == testCase.ready.0)
        #expect(status.condition("Ready")?.reason == testCase.ready.1)
        #expect(status.condition("Reconciling")?.status == testCase.reconciling)
        #expect(status.condition("Stalled")?.status == testCase.stalled)
        #expect(status.observedGeneration == 4)
        #expect((status.conditions ?? []).map(\.type) == ConditionType.all)
        #expect(
            (status.conditions ?? []).allSatisfy {
                $0.observedGeneration == 4 && ConditionReason.isValid($0.reason ?? "")
            }
        )
    }

    @Test("lastTransitionTime changes only when the status flips")
    func transitionTimes() {
        let earlier = Date(timeIntervalSince1970: 1_700_000_000)
        let later = earlier.addingTimeInterval(3600)
        func compute(_ rollout: AgentRollout, _ previous: ProfilingTargetStatus, _ now: Date) -> ProfilingTargetStatus {
            TargetStatusComputer.compute(
                TargetObservation(
                    generation: 1,
                    resolved: Self.resolved(),
                    probe: Self.ok,
                    rollout: rollout,
                    matchedPods: 0
                ),
                previous: previous,
                now: now
            )
        }
        let first = compute(.progressing(desired: 2, ready: 0, message: "0/2"), ProfilingTargetStatus(), earlier)
        let same = compute(.progressing(desired: 2, ready: 1, message: "1/2"), first, later)
        #expect(same.condition("Ready")?.lastTransitionTime == first.condition("Ready")?.lastTransitionTime)
        let flipped = compute(.complete(desired: 2, ready: 2), same, later)
        #expect(flipped.condition("Ready")?.lastTransitionTime == KubeTime.format(later))
        #expect(compute(.complete(desired: 2, ready: 2), flipped, later.addingTimeInterval(60)) == flipped)
    }
}

@Suite("Apply planning, hashing, render")
struct AgentRenderingTests {
    @Test("SHA-256 of known vectors")
    func sha256() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex(String(repeating: "a", count: 1000))
                == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        )
    }

    @Test("intent ⊆ live: extra live fields are fine, changed or missing ones are not")
    func satisfies() {
        let intent: JSONValue = ["metadata": ["labels": ["a": "1"]], "spec": ["list": [["x": 1]], "empty": [:]]]
        #expect(
            ApplyPlan.satisfies(
                ["metadata": ["labels": ["a": "1", "b": "2"]], "spec": ["list": [["x": 1, "y": 2]]]],
                intent
            )
        )
        #expect(!ApplyPlan.satisfies(["metadata": ["labels": ["a": "2"]], "spec": ["list": [["x": 1]]]], intent))
        #expect(
            !ApplyPlan.satisfies(["metadata": ["labels": ["a": "1"]], "spec": ["list": [["x": 1], ["x": 2]]]], intent)
        )
        #expect(!ApplyPlan.satisfies(nil, intent))
    }

    @Test("the configuration revision follows the configuration and the Secret versions, not the Secret values")
    func configRevision() {
        var configuration = OperatorConfiguration()
        configuration.namespace = "hearth-system"
        let renderer = AgentRenderer(configuration: configuration)
        var target = TargetStatusTests.resolved()
        let base = renderer.render([target])
        target.credentials = ["shop.checkout.password": "c2VjcmV0"]
        target.secretVersions = ["shop/pyro-auth@5"]
        let withSecret = renderer.render([target])
        #expect(base.revision != withSecret.revision)
        target.credentials = ["shop.checkout.password": "b3RoZXI="]
        #expect(renderer.render([target]).revision == withSecret.revision)
        #expect(renderer.render([target]).revision == renderer.render([target]).revision)
        // The revision is inside the configuration the agents read.
        let text = withSecret.configMap.data?[AgentRenderer.configKey] ?? ""
        #expect(try! AgentConfiguration.decode(Data(text.utf8)).revision == withSecret.revision)
    }

    @Test("contract: what the operator renders into the ConfigMap is what the agent decodes")
    func agentConfigurationContract() throws {
        struct Lookup: ClusterLookup {
            func secret(namespace: String, name: String) -> Secret? {
                namespace == "shop" && name == "pyro-auth" ? makeSecret("pyro-auth") : nil
            }
            func service(namespace: String, name: String) -> Service? { nil }
        }
        var configuration = OperatorConfiguration()
        configuration.namespace = "hearth-system"
        var target = makeTarget("checkout", sampleRate: 49, passwordSecret: "pyro-auth")
        target.spec.labels = ["team": "payments"]
        target.spec.pyroscope?.tenantID = "shop"
        var other = makeTarget("frontend", app: "frontend")
        other.spec.serviceName = "web/{{pod}}"
        let resolver = TargetResolver(configuration: configuration, lookup: Lookup())
        let objects = AgentRenderer(configuration: configuration).render([
            resolver.resolve(target), resolver.resolve(other),
        ])
        let text = try #require(objects.configMap.data?[AgentRenderer.configKey])
        let decoded = try AgentConfiguration.decode(Data(text.utf8))
        #expect(decoded.version == AgentConfiguration.currentVersion)
        #expect(decoded.revision == objects.revision)
        #expect(
            decoded.targets == [
                AgentConfiguration.Target(
                    namespace: "shop",
                    name: "checkout",
                    selector: AgentConfiguration.Selector(matchLabels: ["app": "checkout"]),
                    sampleRate: 49,
                    serviceName: nil,
                    labels: ["team": "payments"],
                    pyroscope: AgentConfiguration.Backend(
                        url: "http://pyroscope.observability.svc:4040",
                        tenantID: "shop",
                        basicAuth: AgentConfiguration.BasicAuth(
                            username: "shop",
                            passwordFile: "shop.checkout.password"
                        )
                    )
                ),
                AgentConfiguration.Target(
                    namespace: "shop",
                    name: "frontend",
                    selector: AgentConfiguration.Selector(matchLabels: ["app": "frontend"]),
                    sampleRate: 99,
                    serviceName: "web/{{pod}}",
                    pyroscope: AgentConfiguration.Backend(url: "http://pyroscope.observability.svc:4040")
                ),
            ]
        )
        // The password file the configuration names is a key of the agent Secret (mounted as that file name).
        #expect(objects.secret.data?["shop.checkout.password"] != nil)
        // The DaemonSet mounts the configuration where its arguments say, and only its flags live in the template.
        let container = try #require(objects.daemonSet.spec.template.spec.containers?.first)
        #expect(
            container.args?.prefix(5) == [
                "run", "--config", "/etc/hearth/config/targets.json", "--credentials", "/etc/hearth/credentials",
            ]
        )
        // The agent's unwinding defaults add nothing to the template; another choice is passed on.
        #expect(container.args?.contains("--unwind") == false)
        configuration.agentCommandLine.unwind = .framePointers
        configuration.agentCommandLine.unwindTableMiB = 16
        configuration.agentCommandLine.memoryBudgetMiB = 96
        let changed = AgentRenderer(configuration: configuration).render([resolver.resolve(target)])
        let changedArgs = try #require(changed.daemonSet.spec.template.spec.containers?.first?.args)
        #expect(
            Array(changedArgs.suffix(6)) == [
                "--unwind", "frame-pointers", "--unwind-table-mib", "16", "--memory-budget-mib", "96",
            ]
        )
    }

    @Test("render -f of the samples prints every agent object, with Secret values redacted")
    func renderSamples() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("manifests/samples")
        var yaml = ""
        for file in try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
        where file.hasSuffix(".yaml") {
            yaml += try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8) + "\n---\n"
        }
        var configuration = OperatorConfiguration()
        configuration.securityMode = .capabilities
        let output = try ManifestRenderer.render(yaml: yaml, configuration: configuration)
        #expect(output.contains("# shop/checkout: included"))
        #expect(output.contains("# shop/frontend: included"))
        let documents = try ManifestReader.documents(yaml: output)
        #expect(
            documents.compactMap { $0["kind"]?.stringValue } == [
                "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "Secret",
                "DaemonSet",
            ]
        )
        #expect(!output.contains("change-me") && !output.contains(Data("change-me".utf8).base64EncodedString()))
        #expect(output.contains("REDACTED"))
        #expect(output.contains("CHECKOUT_RESTORE") || output.contains("BPF"))
        // The samples are valid specs.
        for document in try ManifestReader.documents(yaml: yaml) where document["kind"] == "ProfilingTarget" {
            #expect(ProfilingTarget(object: document).spec.violations().isEmpty)
        }
    }
}

@Suite("Operator caches")
struct OperatorCacheTests {
    @Test("Secrets keep their credentials, Helm release Secrets lose their bulk, managedFields go")
    func secrets() {
        var credentials = makeSecret("pyro-auth")
        credentials.metadata.managedFields = [ManagedFieldsEntry(object: ["manager": "kubectl"])]
        let kept = OperatorStores.secretWithoutBulk(credentials)
        #expect(kept.data == credentials.data)
        #expect(kept.metadata.managedFields == nil)

        var release = Secret(name: "sh.helm.release.v1.pyroscope.v3", namespace: "observability")
        release.type = "helm.sh/release.v1"
        release.data = ["release": String(repeating: "H4sI", count: 50_000)]
        release.metadata.labels = ["owner": "helm", "name": "pyroscope"]
        let stripped = OperatorStores.secretWithoutBulk(release)
        #expect(stripped.data == nil)
        #expect(stripped.metadata.labels == release.metadata.labels)
        #expect(stripped.metadata.name == release.metadata.name)
    }

    @Test("a cached pod keeps its identity, labels, phase and node only")
    func pods() {
        var pod = Pod(name: "checkout-7d9", namespace: "shop")
        pod.metadata.uid = "u-1"
        pod.metadata.resourceVersion = "42"
        pod.metadata.labels = ["app": "checkout"]
        pod.metadata.annotations = ["big": String(repeating: "x", count: 10_000)]
        pod.status.phase = "Running"
        pod.object["spec"] = ["containers": [["name": "app", "image": "shop/checkout:1"]], "nodeName": "node-7"]
        let cached = OperatorStores.podIdentityAndLabels(pod)
        #expect(cached.metadata.name == "checkout-7d9" && cached.metadata.namespace == "shop")
        #expect(cached.metadata.uid == "u-1" && cached.metadata.resourceVersion == "42")
        #expect(cached.metadata.labels == ["app": "checkout"])
        #expect(cached.status.phase == "Running")
        #expect(cached.metadata.annotations == nil)
        #expect(cached.object["spec"] == ["nodeName": "node-7"])
        #expect(OperatorStores.podIdentityAndLabels(Pod(name: "pending", namespace: "shop")).object["spec"] == nil)
    }
}
