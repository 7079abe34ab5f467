// KubeModelTests.swift: typed views keep unknown fields; selectors, conditions, times, watch events.

import Foundation
import KubeModel
import Testing

@Suite("KubeModel")
struct KubeModelTests {
    @Test("fields the model does not know survive a read-modify-write")
    func unknownFieldsSurvive() throws {
        let json = """
            {"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"agent","namespace":"hearth","labels":{"a":"b"},
             "futureMeta":{"x":1}},
             "spec":{"selector":{"matchLabels":{"app":"agent"}},"futureSpec":[1,2,3],
              "template":{"metadata":{"labels":{"app":"agent"}},"spec":{"hostPID":true,"containers":[
                {"name":"agent","image":"hearth:1","futureContainerField":{"deep":true},
                 "resources":{"limits":{"memory":"64Mi"}}}]}}},
             "status":{"numberReady":3}}
            """
        var daemonSet = try JSONDecoder().decode(DaemonSet.self, from: Data(json.utf8))
        #expect(daemonSet.spec.template.spec.hostPID == true)
        #expect(daemonSet.status.numberReady == 3)
        var containers = try #require(daemonSet.spec.template.spec.containers)
        containers[0].image = "hearth:2"
        daemonSet.spec.template.spec.containers = containers
        daemonSet.metadata.labels?["c"] = "d"
        let encoded = try KubeJSON.encode(daemonSet)
        let tree = try KubeJSON.decode(JSONValue.self, from: encoded)
        #expect(tree[path: ["metadata", "futureMeta", "x"]] == 1)
        #expect(tree[path: ["spec", "futureSpec"]] == [1, 2, 3])
        let container = try #require(tree[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first)
        #expect(container["futureContainerField"] == ["deep": true])
        #expect(container["image"] == "hearth:2")
        #expect(tree[path: ["metadata", "labels"]] == ["a": "b", "c": "d"])
    }

    @Test("a DaemonSet with a full pod template built from typed fields")
    func daemonSetTemplate() throws {
        var daemonSet = DaemonSet(name: "hearth-agent", namespace: "hearth")
        daemonSet.spec.selector = LabelSelector(matchLabels: ["app": "hearth-agent"])
        daemonSet.spec.template.metadata.labels = ["app": "hearth-agent"]
        var pod = PodSpec()
        pod.hostPID = true
        pod.serviceAccountName = "hearth-agent"
        var container = Container()
        container.name = "agent"
        container.image = "hearth-agent:0.1"
        var security = SecurityContext()
        security.privileged = true
        var capabilities = Capabilities()
        capabilities.add = ["BPF", "PERFMON"]
        security.capabilities = capabilities
        container.securityContext = security
        var resources = ResourceRequirements()
        resources.limits = ["memory": "48Mi"]
        container.resources = resources
        var probe = Probe()
        var get = HTTPGetAction()
        get.path = "/healthz"
        get.port = 8081
        probe.httpGet = get
        container.livenessProbe = probe
        var mount = VolumeMount()
        mount.name = "sys"
        mount.mountPath = "/sys"
        container.volumeMounts = [mount]
        pod.containers = [container]
        var volume = Volume()
        volume.name = "sys"
        var hostPath = HostPathVolumeSource()
        hostPath.path = "/sys"
        volume.hostPath = hostPath
        pod.volumes = [volume]
        var toleration = Toleration()
        toleration.operator = "Exists"
        pod.tolerations = [toleration]
        daemonSet.spec.template.spec = pod
        let tree = daemonSet.json
        #expect(tree[path: ["apiVersion"]] == "apps/v1")
        #expect(tree[path: ["spec", "template", "spec", "hostPID"]] == true)
        let first = try #require(tree[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first)
        #expect(first[path: ["securityContext", "capabilities", "add"]] == ["BPF", "PERFMON"])
        #expect(first[path: ["livenessProbe", "httpGet", "port"]] == 8081)
        #expect(tree[path: ["spec", "template", "spec", "tolerations"]] == [["operator": "Exists"]])
        #expect(
            DaemonSet.resourceType.path(namespace: "hearth", name: "x")
                == "/apis/apps/v1/namespaces/hearth/daemonsets/x"
        )
    }

    @Test("label selectors: matchLabels, matchExpressions and selector strings")
    func selectors() throws {
        let selector = LabelSelector(
            matchLabels: ["app": "checkout"],
            matchExpressions: [
                LabelSelectorRequirement(key: "tier", operator: "In", values: ["web", "api"]),
                LabelSelectorRequirement(key: "canary", operator: "DoesNotExist"),
            ]
        )
        #expect(selector.matches(["app": "checkout", "tier": "web"]))
        #expect(!selector.matches(["app": "checkout", "tier": "db"]))
        #expect(!selector.matches(["app": "checkout", "tier": "web", "canary": "1"]))
        #expect(LabelSelector().matches(nil))
        #expect(selector.selectorString == "app=checkout,tier in (web,api),!canary")
        let parsed = try Selector(parsing: try #require(selector.selectorString))
        #expect(parsed.matches(["app": "checkout", "tier": "api"]))
        #expect(
            try Selector(parsing: "a==1, b!=2, c notin (x, y), d").matches(["a": "1", "b": "3", "c": "z", "d": ""])
        )
        #expect(throws: KubeModelError.self) { try Selector(parsing: "a b") }
        // An operator the API does not define makes the selector invalid: it selects nothing, even with no labels.
        let unknown = LabelSelector(matchExpressions: [LabelSelectorRequirement(key: "tier", operator: "Equals")])
        #expect(!unknown.matches(nil) && !unknown.matches(["tier": "web"]))
        #expect(unknown.selectorString == nil)
    }

    @Test("conditions keep lastTransitionTime unless the status flips")
    func conditions() {
        var conditions: [Condition] = []
        let early = Date(timeIntervalSince1970: 1_700_000_000)
        conditions.set(Condition(type: "Ready", status: "Unknown", reason: "Starting", lastTransitionTime: early))
        let unchanged = conditions.set(
            Condition(type: "Ready", status: "Unknown", reason: "Starting", lastTransitionTime: Date())
        )
        #expect(!unchanged)
        #expect(conditions[type: "Ready"]?.lastTransitionTime == KubeTime.format(early))
        let flipped = conditions.set(Condition(type: "Ready", status: "True", reason: "Done", observedGeneration: 2))
        #expect(flipped)
        #expect(conditions[type: "Ready"]?.lastTransitionTime != KubeTime.format(early))
        #expect(conditions.count == 1)
    }

    @Test("Time and MicroTime")
    func times() throws {
        let date = Date(timeIntervalSince1970: 1_735_689_600.25)
        #expect(KubeTime.format(date) == "2025-01-01T00:00:00Z")
        #expect(KubeTime.formatMicro(date) == "2025-01-01T00:00:00.250000Z")
        let parsed = try #require(KubeTime.parse("2025-01-01T00:00:00.250000Z"))
        #expect(abs(parsed.timeIntervalSince(date)) < 0.001)
        #expect(KubeTime.parse("2025-01-01T00:00:00Z") == Date(timeIntervalSince1970: 1_735_689_600))
    }

    @Test("watch events and Status errors decode")
    func watchEvents() throws {
        let line = try KubeJSON.decode(
            JSONValue.self,
            from: Data(
                #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Expired","code":410,"message":"too old"}}"#
                    .utf8
            )
        )
        let event = try WatchEvent<Pod>(line: line)
        #expect(event.type == .error)
        #expect(event.status?.code == 410)
        #expect(event.status?.reason == "Expired")
        let added = try WatchEvent<Pod>(line: ["type": "ADDED", "object": ["kind": "Pod", "metadata": ["name": "p"]]])
        #expect(added.object.metadata.name == "p")
        #expect(throws: KubeModelError.self) { try WatchEvent<Pod>(line: ["type": "ADDED"]) }
        #expect(
            JSONValue.object(["a": 1, "b": ["c": 2]]).applyingMergePatch(["b": ["c": nil, "d": 3]]) == [
                "a": 1, "b": ["d": 3],
            ]
        )
    }

    @Test("the direct JSON parser and serializer agree with Foundation")
    func parser() throws {
        let text =
            #"{"a":[1,-2,3.5,1e3,true,false,null],"s":"q\"\\\/\n\t\u00e9\ud83d\ude00 é","n":{"x":{}},"big":9223372036854775807,"e":[]}"#
        let parsed = try JSONValue.parse(Array(text.utf8))
        let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(parsed == foundation)
        #expect(parsed["s"] == "q\"\\/\n\té😀 é")
        #expect(parsed["big"] == .int(Int64.max))
        let again = try JSONValue.parse(parsed.serialized())
        #expect(again == parsed)
        #expect(
            String(decoding: JSONValue.object(["b": 1, "a": "x\u{1}"]).serialized(), as: UTF8.self)
                == #"{"a":"x\u0001","b":1}"#
        )
        for bad in ["{", "[1,]", #"{"a" 1}"#, "tru", #""\x""#, "1 2", ""] {
            #expect(throws: JSONParseError.self) { try JSONValue.parse(Array(bad.utf8)) }
        }
    }

    @Test("object keys: shared long Kubernetes keys, other long keys, escapes, duplicates and errors")
    func keys() throws {
        let text =
            #"{"lastTransitionTime":"t","lastTransitionTimes":1,"observedGeneration":2,"a\"b\u00e9":3,"k":4}"#
        let parsed = try JSONValue.parse(Array(text.utf8))
        #expect(parsed == (try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))))
        #expect(parsed["lastTransitionTime"] == "t")
        #expect(parsed["lastTransitionTimes"] == 1)
        #expect(parsed["observedGeneration"] == 2)
        #expect(parsed["a\"bé"] == 3)
        #expect(parsed["k"] == 4)
        // Of duplicate keys, the last wins.
        #expect(
            try JSONValue.parse(Array(#"{"k":4,"observedGeneration":1,"k":5,"observedGeneration":2}"#.utf8)) == [
                "k": 5, "observedGeneration": 2,
            ]
        )
        for bad in ["{\"a\u{1}\":1}", #"{"lastTransitionTime"#, #"{"a\"#] {
            #expect(throws: JSONParseError.self) { try JSONValue.parse(Array(bad.utf8)) }
        }
    }
}

@Suite("Kubernetes timestamps")
struct KubeTimeTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var text: String
        var unix: Double?
        var testDescription: String { self.text }
    }

    static let parsed: [Case] = [
        Case(text: "1970-01-01T00:00:00Z", unix: 0),
        Case(text: "2026-11-30T18:32:10Z", unix: 1_796_063_530),
        Case(text: "2024-02-29T23:59:59Z", unix: 1_709_251_199),
        Case(text: "2000-03-01T00:00:00Z", unix: 951_868_800),
        Case(text: "1969-12-31T23:59:59Z", unix: -1),
        Case(text: "2026-11-30T18:32:10.250000Z", unix: 1_796_063_530.25),
        Case(text: "2026-11-30T18:32:10.5Z", unix: 1_796_063_530.5),
        Case(text: "2026-11-30t18:32:10z", unix: 1_796_063_530),
        Case(text: "2026-11-30T19:32:10+01:00", unix: 1_796_063_530),
        Case(text: "2026-11-30T17:02:10-01:30", unix: 1_796_063_530),
        Case(text: "2023-02-29T00:00:00Z", unix: nil),
        Case(text: "2026-13-01T00:00:00Z", unix: nil),
        Case(text: "2026-11-30T24:00:00Z", unix: nil),
        Case(text: "2026-11-30T18:32:10", unix: nil),
        Case(text: "2026-11-30T18:32:10.Z", unix: nil),
        Case(text: "2026-11-30 18:32:10Z", unix: nil),
        Case(text: "2026-11-30T18:32:10+0100", unix: nil),
        Case(text: "", unix: nil),
    ]

    @Test(
        "RFC 3339 parses by hand: fractions, offsets, lower case; impossible dates and other forms are nil",
        arguments: parsed
    )
    func parse(_ test: Case) {
        let date = KubeTime.parse(test.text)
        #expect(date.map { ($0.timeIntervalSince1970 * 1000).rounded() / 1000 } == test.unix)
    }

    @Test("formatting agrees with Foundation's ISO 8601 style over four centuries, and round-trips")
    func formatAgreesWithFoundation() {
        var generator = SystemRandomNumberGenerator()
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: false)
        let bounds: ClosedRange<Int64> = -2_208_988_800...10_413_792_000  // 1900 to 2300
        for unix in [0, -1, 951_868_800, 1_709_251_199]
            + (0..<2000).map({ _ in Int64.random(in: bounds, using: &generator) })
        {
            let date = Date(timeIntervalSince1970: Double(unix))
            #expect(KubeTime.format(date) == date.formatted(style), "\(unix)")
            #expect(KubeTime.parse(KubeTime.format(date)) == date)
        }
        let micro = Date(timeIntervalSince1970: 1_796_063_530.000_042)
        #expect(KubeTime.formatMicro(micro) == "2026-11-30T18:32:10.000042Z")
        let parsedMicro = KubeTime.parse(KubeTime.formatMicro(micro))?.timeIntervalSince1970 ?? 0
        #expect(abs(parsedMicro - micro.timeIntervalSince1970) < 0.000_001)
    }
}
