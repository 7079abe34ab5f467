// FlameGraphTests.swift: the merged stack tree, the HTML page (embedded data, escaping against script injection),
// the SVG (well-formed, a tooltip per frame, narrow frames left out), empty and large profiles, and formatting.

import Foundation
import FoundationXML
import Testing

@testable import HearthProfile

@Suite("Flame graphs")
struct FlameGraphTests {
    @Test("the tree merges stacks under the process, with totals and self counts")
    func tree() throws {
        let tree = FlameTree(Fixtures.small())
        #expect(tree.root.total == 1000)
        #expect(tree.maxDepth == 8)  // process + 7 frames of the syscall stack
        let process = tree.nodes[Int(tree.root.children[0])]
        #expect(tree.name(of: process) == "checkout-api" && process.kind == .process && process.total == 1000)
        let main = tree.nodes[Int(process.children[0])]
        #expect(tree.name(of: main) == "main" && main.total == 1000 && main.selfCount == 0)
        let run = tree.nodes[Int(main.children[0])]
        #expect(tree.name(of: run) == "CheckoutAPI.Server.run()" && run.total == 950)
        // Children are ordered largest first.
        #expect(run.children.map { tree.nodes[Int($0)].total } == [850, 100])
        let jit = tree.nodes[Int(main.children[1])]
        #expect(jit.kind == .unresolved && jit.selfCount == 50)
        var kernelNodes = 0
        var selfSum: Int64 = 0
        tree.forEachPreorder { _, node in
            if node.kind == .kernel { kernelNodes += 1 }
            selfSum += node.selfCount
            #expect(node.total == node.selfCount + node.children.reduce(0) { $0 + tree.nodes[Int($1)].total })
        }
        #expect(kernelNodes == 3)
        #expect(selfSum == 1000)
    }

    @Test("HTML is one self-contained file with the data, search, tooltips and zoom")
    func html() throws {
        let html = FlameGraph.html(Fixtures.small(), title: "checkout-api <prod> & co")
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("<title>checkout-api &lt;prod&gt; &amp; co · Flame graph</title>"))
        #expect(!html.contains("<prod>"), "the title is escaped")
        #expect(!html.contains("@TITLE@") && !html.contains("@STATS@") && !html.contains("@DATA@"))
        #expect(html.components(separatedBy: "checkout-api &lt;prod&gt; &amp; co").count == 4)
        #expect(html.contains("<input id=\"search\" type=\"search\""))
        #expect(html.contains("id=\"tip\""))
        #expect(html.contains("id=\"reset\""))
        #expect(html.contains("canvas"))
        for name in ["CheckoutAPI.Pricing.total(for:)", "ksys_write", "jit-1234.so+0x1234", "checkout-api"] {
            #expect(html.contains(name))
        }
        // Nothing is fetched from the network.
        for external in ["http://", "https://", "src=", "@import", "url(", "<link"] {
            #expect(!html.contains(external), "external reference \(external)")
        }
        #expect(html.components(separatedBy: "<script").count == html.components(separatedBy: "</script>").count)
        // Header figures.
        #expect(html.contains(">1,000<"))
        #expect(html.contains(">99 Hz<"))
        #expect(html.contains(">2025-11-25 13:16:02 UTC<"))
        #expect(html.contains(">15.0%<"), "kernel share: 150 of 1000 leaves")
    }

    @Test("the embedded JSON decodes to the tree, in preorder")
    func embeddedData() throws {
        let html = FlameGraph.html(Fixtures.small(), title: "t")
        let json = try #require(self.embeddedJSON(html))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let names = try #require(object["names"] as? [String])
        let nodes = try #require(object["nodes"] as? [Int])
        let top = try #require(object["top"] as? [[Any]])
        #expect(nodes.count % 5 == 0)
        #expect(nodes.count / 5 == FlameTree(Fixtures.small()).nodes.count)
        #expect(names[nodes[0]] == "all" && nodes[3] == 1000)
        #expect(names[nodes[5]] == "checkout-api" && nodes[6] == Int(FrameKind.process.rawValue))
        #expect(top.first?.first as? String == "CheckoutAPI.Pricing.total(for:)")
        // Preorder with child counts: walking it consumes exactly every node.
        var index = 0
        func walk() -> Int64 {
            let total = Int64(nodes[index * 5 + 3])
            let children = nodes[index * 5 + 4]
            index += 1
            var sum: Int64 = 0
            for _ in 0..<children { sum += walk() }
            #expect(sum <= total)
            return total
        }
        #expect(walk() == 1000)
        #expect(index == nodes.count / 5)
    }

    @Test("names that could break out of the script are escaped")
    func scriptInjection() throws {
        let evil = ProfileFrame(function: "</script><script>alert(1)</script>\u{2028}\"\\", module: "/x", address: 1)
        let profile = CPUProfile(
            startTime: Fixtures.start,
            duration: .seconds(1),
            frequency: 99,
            samples: [ProfileSample(frames: [evil], count: 1)]
        )
        let html = FlameGraph.html(profile, title: "x")
        #expect(!html.contains("<script>alert"))
        let json = try #require(self.embeddedJSON(html))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect((object["names"] as? [String])?.contains(evil.function) == true)

        let svg = FlameGraph.svg(profile, title: "<x>")
        #expect(!svg.contains("<script>alert"))
        #expect(try self.parseXML(svg))
    }

    @Test("SVG is well-formed XML, readable without script, with a tooltip per frame")
    func svg() throws {
        let svg = FlameGraph.svg(Fixtures.small(), title: "checkout-api & friends")
        #expect(try self.parseXML(svg))
        #expect(svg.contains("<title>CheckoutAPI.Pricing.total(for:) (500 samples, 50.00%; self 500, 50.00%)"))
        #expect(svg.contains("checkout-api &amp; friends"))
        #expect(svg.contains(">CheckoutAPI.Router.handle(_:)</text>"), "wide frames are labelled in full")
        let frames = svg.components(separatedBy: "<g class=\"f\"").count - 1
        #expect(frames == FlameTree(Fixtures.small()).nodes.count)
        for external in ["https://", "href=", "@import"] {
            #expect(!svg.contains(external))
        }
    }

    @Test("a large profile renders, and the SVG leaves out frames too narrow to see", .timeLimit(.minutes(2)))
    func large() throws {
        let profile = Fixtures.large()
        let tree = FlameTree(profile)
        #expect(tree.root.total == 100_000)
        let html = FlameGraph.html(profile, title: "large")
        #expect(html.utf8.count < 12 << 20)
        let json = try #require(self.embeddedJSON(html))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect((object["nodes"] as? [Int])?.count == tree.nodes.count * 5)

        let svg = FlameGraph.svg(profile, title: "large")
        #expect(try self.parseXML(svg))
        let frames = svg.components(separatedBy: "<g class=\"f\"").count - 1
        #expect(frames > 50 && frames < tree.nodes.count)
    }

    @Test("an empty profile still renders valid documents")
    func empty() throws {
        let profile = CPUProfile(startTime: Fixtures.start, duration: .seconds(1), frequency: 99, samples: [])
        let html = FlameGraph.html(profile, title: "")
        #expect(html.contains("<title>CPU profile · Flame graph</title>"))
        #expect(try self.parseXML(FlameGraph.svg(profile, title: "")))
    }

    @Test("fitting names into frames")
    func fit() {
        #expect(FlameGraphSVG.fit("main", width: 100) == "main")
        #expect(FlameGraphSVG.fit("a_very_long_function_name", width: 64) == "a_very_l..")
        #expect(FlameGraphSVG.fit("anything", width: 10) == "")
    }

    private func embeddedJSON(_ html: String) -> String? {
        guard let start = html.firstRange(of: "<script id=\"profile-data\" type=\"application/json\">"),
            let end = html[start.upperBound...].firstRange(of: "</script>")
        else { return nil }
        return String(html[start.upperBound..<end.lowerBound])
    }

    private func parseXML(_ text: String) throws -> Bool {
        let parser = XMLParser(data: Data(text.utf8))
        let ok = parser.parse()
        if !ok { Issue.record("XML parse error: \(String(describing: parser.parserError))") }
        return ok
    }
}

@Suite("Formatting")
struct FormatTests {
    @Test("numbers, durations and escaping")
    func format() {
        #expect(Format.grouped(0) == "0")
        #expect(Format.grouped(999) == "999")
        #expect(Format.grouped(1000) == "1,000")
        #expect(Format.grouped(1_234_567) == "1,234,567")
        #expect(Format.grouped(-1234) == "-1,234")
        #expect(Format.fixed(3.14159, 2) == "3.14")
        #expect(Format.fixed(2.5, 0) == "3")
        #expect(Format.fixed(0.05, 1) == "0.1")
        #expect(Format.duration(seconds: 0.85) == "850 ms")
        #expect(Format.duration(seconds: 8) == "8 s")
        #expect(Format.duration(seconds: 2.25) == "2.25 s")
        #expect(Format.duration(seconds: 10.1) == "10.1 s")
        #expect(Format.duration(seconds: 200) == "3 min 20 s")
        #expect(Format.duration(seconds: 1010.1) == "16 min 50 s")
        #expect(Format.escapeXML("a<b>&\"c'\u{1}") == "a&lt;b&gt;&amp;&quot;c&#39;\u{FFFD}")
        #expect(Format.jsonString("</script>\n\u{2028}") == "\"\\u003c/script\\u003e\\n\\u2028\"")
    }
}
