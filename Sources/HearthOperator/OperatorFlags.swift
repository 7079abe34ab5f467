// OperatorFlags.swift: the text syntax of the operator's agent flags (`--toleration`, `--node-selector`,
// `--default-pyroscope-service`) as throwing initialisers, so the command stays thin and every syntax is
// table-tested. An error names the flag, the value and what was expected.

import HearthAPI
import KubeModel

/// A flag value that does not parse.
public struct FlagError: Error, Sendable, Hashable, CustomStringConvertible {
    public var flag: String
    public var value: String
    public var expected: String

    public init(flag: String, value: String, expected: String) {
        self.flag = flag
        self.value = value
        self.expected = expected
    }

    public var description: String { "\(self.flag) \(self.value): expected \(self.expected)" }
}

extension Toleration {
    /// `KEY[=VALUE][:EFFECT]`, or `all` to tolerate every taint (`--toleration`).
    public init(flag text: String) throws(FlagError) {
        self.init()
        if text == "all" {
            self.operator = "Exists"
            return
        }
        let error = FlagError(flag: "--toleration", value: text, expected: "KEY[=VALUE][:EFFECT] or all")
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let keyValue = parts[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let key = keyValue.first, !key.isEmpty else { throw error }
        self.key = key
        if keyValue.count == 2 {
            self.operator = "Equal"
            self.value = keyValue[1]
        } else {
            self.operator = "Exists"
        }
        if parts.count == 2 {
            guard ["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(parts[1]) else {
                throw FlagError(
                    flag: "--toleration",
                    value: text,
                    expected: "an effect of NoSchedule, PreferNoSchedule or NoExecute after the colon"
                )
            }
            self.effect = parts[1]
        }
    }
}

/// One `--node-selector KEY=VALUE`.
public struct NodeSelectorTerm: Sendable, Hashable {
    public var key: String
    public var value: String

    public init(flag text: String) throws(FlagError) {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else {
            throw FlagError(flag: "--node-selector", value: text, expected: "KEY=VALUE")
        }
        self.key = parts[0]
        self.value = parts[1]
    }
}

extension ServiceReference {
    /// `NAMESPACE/NAME[:PORT]` (`--default-pyroscope-service`).
    public init(flag text: String) throws(FlagError) {
        let error = FlagError(flag: "--default-pyroscope-service", value: text, expected: "NAMESPACE/NAME[:PORT]")
        let namePort = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let namespaceName = namePort[0].split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard namespaceName.count == 2, !namespaceName[0].isEmpty, !namespaceName[1].isEmpty else { throw error }
        var port: Int?
        if namePort.count == 2 {
            guard let number = Int(namePort[1]), (1...65535).contains(number) else {
                throw FlagError(
                    flag: "--default-pyroscope-service",
                    value: text,
                    expected: "a port from 1 to 65535 after the colon"
                )
            }
            port = number
        }
        self.init(name: namespaceName[1], namespace: namespaceName[0], port: port)
    }
}
