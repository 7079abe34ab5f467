// AgentConfigurationTests.swift: the operator-agent contract: what the operator writes, the agent reads back
// unchanged; versions and broken files are refused with a message that names the field.

import Foundation
import HearthAPI
import KubeModel
import Testing

@Suite("AgentConfiguration contract")
struct AgentConfigurationTests {
    static let sample = AgentConfiguration(
        revision: "0123456789abcdef",
        targets: [
            AgentConfiguration.Target(
                namespace: "shop",
                name: "checkout",
                selector: AgentConfiguration.Selector(
                    matchLabels: ["app": "checkout"],
                    matchExpressions: [.init(key: "tier", operator: "In", values: ["web", "api"])]
                ),
                sampleRate: 49,
                serviceName: "{{namespace}}-{{container}}",
                labels: ["team": "payments"],
                pyroscope: AgentConfiguration.Backend(
                    url: "https://pyroscope.example:4040",
                    tenantID: "shop",
                    basicAuth: AgentConfiguration.BasicAuth(username: "u", passwordFile: "shop.checkout.password")
                )
            )
        ]
    )

    @Test("encode then decode gives the same configuration, with stable bytes")
    func roundTrip() throws {
        let data = Self.sample.encoded()
        #expect(try AgentConfiguration.decode(data) == Self.sample)
        #expect(Self.sample.encoded() == data)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.hasPrefix(#"{"revision":"0123456789abcdef","targets":[{"labels""#))
        #expect(text.contains(#""passwordFile":"shop.checkout.password""#))
        #expect(text.contains(#""url":"https://pyroscope.example:4040""#))
    }

    @Test("an unknown version is refused and says which one this agent reads")
    func unknownVersion() {
        var future = Self.sample
        future.version = 2
        #expect {
            try AgentConfiguration.decode(future.encoded())
        } throws: { error in
            let error = error as? AgentConfigurationError
            return error?.code == .unsupportedVersion && error?.message.contains("reads version 1") == true
        }
    }

    struct BadFile: Sendable, CustomTestStringConvertible {
        var text: String
        var code: AgentConfigurationError.Code
        var mentions: String
        var testDescription: String { self.mentions }
    }

    static let badFiles: [BadFile] = [
        BadFile(text: "not json", code: .malformed, mentions: "not a JSON object"),
        BadFile(text: #"{"targets":[]}"#, code: .malformed, mentions: "\"version\" is missing"),
        BadFile(
            text: #"{"version":1,"revision":"r","targets":[{"name":"x"}]}"#,
            code: .malformed,
            mentions: "targets[0]"
        ),
        BadFile(
            text: #"{"version":1,"revision":"r","targets":"all"}"#,
            code: .malformed,
            mentions: "at targets: expected"
        ),
        BadFile(
            text:
                #"{"version":1,"revision":"r","targets":[{"namespace":"a","name":"b","selector":{},"profiles":["cpu"],"sampleRate":0,"labels":{},"pyroscope":{"url":"http://p:4040"}}]}"#,
            code: .invalid,
            mentions: "targets[0] (a/b).sampleRate 0"
        ),
        BadFile(
            text:
                #"{"version":1,"revision":"r","targets":[{"namespace":"a","name":"b","selector":{},"profiles":["cpu"],"sampleRate":9,"labels":{},"pyroscope":{"url":"p:4040"}}]}"#,
            code: .invalid,
            mentions: "pyroscope.url \"p:4040\""
        ),
        BadFile(
            text:
                #"{"version":1,"revision":"r","targets":[{"namespace":"a","name":"b","selector":{},"profiles":["cpu"],"sampleRate":9,"labels":{},"pyroscope":{"url":"http://p","bearerTokenFile":"/etc/passwd"}}]}"#,
            code: .invalid,
            mentions: "must be a plain file name"
        ),
    ]

    @Test("a broken file is a clear error naming the field", arguments: badFiles)
    func brokenFiles(_ bad: BadFile) {
        #expect {
            try AgentConfiguration.decode(Data(bad.text.utf8))
        } throws: { error in
            guard let error = error as? AgentConfigurationError else { return false }
            return error.code == bad.code && error.message.contains(bad.mentions)
        }
    }

    @Test("selectors match as Kubernetes label selectors do")
    func selectors() {
        let selector = Self.sample.targets[0].selector
        #expect(selector.matches(["app": "checkout", "tier": "web"]))
        #expect(!selector.matches(["app": "checkout", "tier": "db"]))
        #expect(!selector.matches(["app": "checkout"]))
        #expect(AgentConfiguration.Selector().matches([:]))
        let notIn = AgentConfiguration.Selector(matchExpressions: [
            .init(key: "env", operator: "NotIn", values: ["dev"])
        ])
        #expect(notIn.matches([:]) && notIn.matches(["env": "prod"]) && !notIn.matches(["env": "dev"]))
        let exists = AgentConfiguration.Selector(matchExpressions: [.init(key: "env", operator: "Exists")])
        #expect(exists.matches(["env": ""]) && !exists.matches([:]))
        let absent = AgentConfiguration.Selector(matchExpressions: [.init(key: "env", operator: "DoesNotExist")])
        #expect(absent.matches([:]) && !absent.matches(["env": "x"]))
    }

    @Test("the agent's selectors and the operator's LabelSelector agree, an unknown operator included")
    func selectorsAgreeWithLabelSelector() {
        let labelSets: [[String: String]] = [[:], ["env": "dev"], ["env": "prod"], ["env": ""], ["app": "x"]]
        for op in ["In", "NotIn", "Exists", "DoesNotExist", "Equals", ""] {
            let values: [String]? = op == "Exists" || op == "DoesNotExist" ? nil : ["dev"]
            let agent = AgentConfiguration.Selector(matchExpressions: [.init(key: "env", operator: op, values: values)])
            let kube = LabelSelector(
                matchExpressions: [LabelSelectorRequirement(key: "env", operator: op, values: values)]
            )
            for labels in labelSets {
                #expect(agent.matches(labels) == kube.matches(labels), "\(op) \(labels)")
            }
        }
        let unknown = AgentConfiguration.Selector(matchExpressions: [.init(key: "env", operator: "Equals")])
        #expect(!unknown.matches([:]) && !unknown.matches(["env": "x"]))
    }
}
