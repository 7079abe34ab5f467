// FlameGraph+HTML.swift: the interactive HTML flame graph: the page template (inline CSS and JavaScript), its
// header figures, and the merged stack tree and top functions embedded as compact JSON.

import HearthBase

/// The interactive HTML flame graph: a page template with inline CSS and JavaScript, and the merged stack tree
/// embedded as compact JSON.
enum FlameGraphHTML {
    /// Rows in the embedded top-functions table.
    static let topFunctionCount = 200

    static func render(profile: CPUProfile, tree: FlameTree, title: String) -> String {
        let data = self.json(profile: profile, tree: tree)
        let escapedTitle = Format.escapeXML(title.isEmpty ? "CPU profile" : title)
        let stats = self.stats(profile: profile)
        var html = ""
        html.reserveCapacity(data.utf8.count + template.utf8.count + 4096)
        let replacements = [("@TITLE@", escapedTitle), ("@STATS@", stats), ("@DATA@", data)]
        var rest = Substring(template)
        while let at = rest.firstIndex(of: "@") {
            html += rest[..<at]
            let tail = rest[at...]
            if let (marker, value) = replacements.first(where: { tail.hasPrefix($0.0) }) {
                html += value
                rest = tail.dropFirst(marker.count)
            } else {
                html += "@"
                rest = tail.dropFirst()
            }
        }
        html += rest
        return html
    }

    /// The header's figures, as HTML.
    private static func stats(profile: CPUProfile) -> String {
        let total = profile.totalSamples
        var kernelLeaf: Int64 = 0
        var processes = Set<String>()
        for sample in profile.samples where sample.count > 0 {
            if sample.frames.first?.isKernel == true { kernelLeaf += sample.count }
            if let process = sample.processName { processes.insert(process) }
        }
        var items: [(String, String)] = [
            ("Samples", Format.grouped(total)),
            ("CPU time", Format.duration(seconds: Double(profile.cpuNanoseconds) / 1e9)),
            ("Duration", Format.duration(seconds: profile.duration.seconds)),
            ("Frequency", "\(profile.frequency) Hz"),
            ("Stacks", Format.grouped(Int64(profile.uniqueStackCount))),
        ]
        if !processes.isEmpty { items.append(("Processes", Format.grouped(Int64(processes.count)))) }
        items.append(("In kernel", Format.fixed(TopFunctions.percent(kernelLeaf, of: total), 1) + "%"))
        items.append(("Started", Format.timestamp(profile.startTime)))
        return items.map { label, value in
            "<div class=\"stat\"><span class=\"k\">\(label)</span><span class=\"v\">\(Format.escapeXML(value))</span></div>"
        }.joined(separator: "")
    }

    /// `{"names":[...],"nodes":[name,kind,module,total,childCount, ...],"top":[[name,self,total],...]}`, nodes in
    /// preorder.
    static func json(profile: CPUProfile, tree: FlameTree) -> String {
        var output = "{\"names\":["
        output.reserveCapacity(tree.nodes.count * 24 + tree.names.count * 24)
        for (index, name) in tree.names.enumerated() {
            if index > 0 { output += "," }
            output += Format.jsonString(name)
        }
        output += "],\n\"nodes\":["
        var first = true
        tree.forEachPreorder { _, node in
            if !first { output += "," }
            first = false
            output += "\(node.name),\(node.kind.rawValue),\(node.module),\(node.total),\(node.children.count)"
        }
        output += "],\n\"top\":["
        let top = TopFunctions.compute(profile, limit: self.topFunctionCount)
        for (index, row) in top.enumerated() {
            if index > 0 { output += "," }
            output += "[\(Format.jsonString(row.function)),\(row.selfSamples),\(row.totalSamples)]"
        }
        output += "]}"
        return output
    }

    /// The page (`Templates/flamegraph.html`, embedded at build time by the TextEmbedPlugin) with the
    /// markers `@TITLE@`, `@STATS@` and `@DATA@`.
    static let template = EmbeddedText.flamegraph.text
}
