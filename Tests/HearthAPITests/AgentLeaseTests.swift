// AgentLeaseTests.swift: what the operator reads from an agent's node Lease. The degradation is written from a
// node, so it is read as hostile input: bounded in length, one line, no control characters.

import Foundation
import HearthAPI
import KubeModel
import Testing

@Suite("Agent Lease")
struct AgentLeaseTests {
    static func lease(degradation: String?) -> Lease {
        var lease = Lease(name: AgentLease.name(node: "node-1"), namespace: "hearth-system")
        lease.metadata.annotations = [AgentLease.revisionAnnotation: "0123456789abcdef"]
        lease.metadata.annotations?[AgentLease.degradedAnnotation] = degradation
        return lease
    }

    @Test("a short degradation is read as written; none, empty or blank is no degradation")
    func plain() {
        let text = "12 nested cgroups not held by the filter map (counted under their container)"
        #expect(AgentLease.degradation(of: Self.lease(degradation: text)) == text)
        #expect(AgentLease.degradation(of: Self.lease(degradation: nil)) == nil)
        #expect(AgentLease.degradation(of: Self.lease(degradation: "")) == nil)
        #expect(AgentLease.degradation(of: Self.lease(degradation: " \n\t\u{1B}\u{202E} ")) == nil)
    }

    @Test("a 100 KiB degradation is cut to the bound and ends in an ellipsis; cutting again changes nothing")
    func huge() throws {
        let text = String(repeating: "cgroups not held ", count: 100 * 1024 / 17)
        #expect(text.utf8.count > 100_000)
        let bounded = try #require(AgentLease.degradation(of: Self.lease(degradation: text)))
        // At most the bound; one less when the cut fell on a space (not kept before the ellipsis).
        #expect(bounded.unicodeScalars.count <= AgentLease.maxDegradationLength)
        #expect(bounded.unicodeScalars.count >= AgentLease.maxDegradationLength - 1)
        #expect(bounded.hasSuffix("…") && !bounded.hasSuffix(" …"))
        #expect(bounded.hasPrefix("cgroups not held cgroups"))
        #expect(AgentLease.boundedDegradation(bounded) == bounded)
        // Multi-byte characters count once each, as the CRD's maxLength counts them.
        let wide = try #require(AgentLease.boundedDegradation(String(repeating: "€", count: 10_000)))
        #expect(wide.unicodeScalars.count == AgentLease.maxDegradationLength)
        #expect(AgentLease.boundedDegradation(String(repeating: "x", count: 256)) == String(repeating: "x", count: 256))
        #expect(AgentLease.boundedDegradation(String(repeating: "x", count: 257))?.hasSuffix("x…") == true)
    }

    @Test("newlines, terminal escapes and bidirectional overrides become single spaces: one line of plain text")
    func oneLine() {
        let text = "3 cgroups\n\nnot held\u{1B}[2J\u{7}\r\u{202E}kcatta\u{2066}  (counted)\u{0}"
        #expect(AgentLease.boundedDegradation(text) == "3 cgroups not held [2J kcatta (counted)")
    }

    @Test("a Lease name gives its node back; other names give none")
    func nodeOfLease() {
        #expect(AgentLease.node(leaseName: AgentLease.name(node: "worker-3.example")) == "worker-3.example")
        #expect(AgentLease.node(leaseName: "hearth-agent-") == nil)
        #expect(AgentLease.node(leaseName: "hearth-operator") == nil)
    }
}
