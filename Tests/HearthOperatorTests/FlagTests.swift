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
