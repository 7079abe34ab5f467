// FlameGraph.swift: the public flame graph renderers (HTML and SVG), the tree both draw from (stacks merged, the
// process as their root, siblings largest first), frame kinds for colouring, and the formatting they share.

import FoundationEssentials

/// Flame graphs: every stack drawn as a tower of frames whose widths are proportional to samples.
///
/// Both outputs are single self-contained files with no network access:
/// - ``html(_:title:)``: an interactive page (canvas): click a frame to zoom, search with highlighting and the
///   matched share of samples, tooltips with samples and percentages, flame or icicle orientation, and a
///   sortable table of the top functions. Stacks are merged into a tree in Swift and embedded as compact JSON,
///   so 100,000 samples over 20,000 distinct stacks load and draw quickly.
/// - ``svg(_:title:)``: a static picture that any viewer shows, with a tooltip (`<title>`) on every frame;
///   in a browser, embedded script adds click-to-zoom and search.
///
/// Frames are coloured by kind: user code in warm colours (one colour per function name), kernel code in blue,
/// unresolved addresses in grey and processes (the `comm` label, drawn as the root of their stacks) in violet.
/// Siblings are ordered by samples, largest first.
public enum FlameGraph {
    /// Renders `profile` as a self-contained interactive HTML flame graph.
    /// - Parameters:
    ///   - profile: The profile to draw.
    ///   - title: The page title and heading, for example the command or service that was profiled.
    /// - Returns: The HTML document.
    public static func html(_ profile: CPUProfile, title: String) -> String {
        FlameGraphHTML.render(profile: profile, tree: FlameTree(profile), title: title)
    }

    /// Renders `profile` as a self-contained SVG flame graph.
    ///
    /// The picture is complete without script: frames narrower than 0.1% of the width are left out, and every
    /// frame has a `<title>` (the viewer's tooltip) with its function, samples and percentage.
    /// - Parameters:
    ///   - profile: The profile to draw.
    ///   - title: The heading.
    /// - Returns: The SVG document.
    public static func svg(_ profile: CPUProfile, title: String) -> String {
        FlameGraphSVG.render(profile: profile, tree: FlameTree(profile), title: title)
    }
}

/// What a flame-graph node stands for; decides its colour.
enum FrameKind: UInt8 {
    case root = 0
    case process = 1
    case user = 2
    case kernel = 3
    case unresolved = 4

    init(_ frame: ProfileFrame) {
        if !frame.isResolved {
            self = .unresolved
        } else if frame.isKernel {
            self = .kernel
        } else {
            self = .user
        }
    }
}

/// Stacks merged into a tree: node 0 is the root ("all"), each path from it is a stack, root first. A sample's
/// `comm` label is the first frame under the root.
struct FlameTree {
    struct Node {
        var name: Int32
        var module: Int32
        var kind: FrameKind
        var parent: Int32
        var depth: Int32
        var total: Int64
        var selfCount: Int64
        var children: [Int32] = []
    }

    private(set) var names: [String] = []
    private(set) var nodes: [Node] = []
    private(set) var maxDepth = 0
    private var nameIndex: [String: Int32] = [:]

    init(_ profile: CPUProfile) {
        let rootName = self.intern("all")
        let noModule = self.intern("")
        self.nodes.append(
            Node(name: rootName, module: noModule, kind: .root, parent: -1, depth: 0, total: 0, selfCount: 0)
        )
        var childIndex: [ChildKey: Int32] = [:]
        for sample in profile.samples where sample.count > 0 {
            var current: Int32 = 0
            self.nodes[0].total += sample.count
            if let process = sample.processName {
                current = self.child(
                    of: current,
                    name: process,
                    module: "",
                    kind: .process,
                    count: sample.count,
                    index: &childIndex
                )
            }
            for frame in sample.frames.reversed() {
                current = self.child(
                    of: current,
                    name: frame.displayName,
                    module: frame.module,
                    kind: FrameKind(frame),
                    count: sample.count,
                    index: &childIndex
                )
            }
            self.nodes[Int(current)].selfCount += sample.count
        }
        // Largest first; ties by name, so the output is deterministic.
        let totals = self.nodes.map(\.total)
        let nameIDs = self.nodes.map(\.name)
        let names = self.names
        for index in self.nodes.indices where self.nodes[index].children.count > 1 {
            self.nodes[index].children.sort { a, b in
                let (left, right) = (Int(a), Int(b))
                if totals[left] != totals[right] { return totals[left] > totals[right] }
                return names[Int(nameIDs[left])] < names[Int(nameIDs[right])]
            }
        }
    }

    var root: Node { self.nodes[0] }

    func name(of node: Node) -> String { self.names[Int(node.name)] }

    func module(of node: Node) -> String { self.names[Int(node.module)] }

    /// Visits every node depth first, parents before children, children in order.
    func forEachPreorder(_ body: (Int32, Node) -> Void) {
        var stack: [Int32] = [0]
        while let index = stack.popLast() {
            let node = self.nodes[Int(index)]
            body(index, node)
            stack.append(contentsOf: node.children.reversed())
        }
    }

    private mutating func intern(_ string: String) -> Int32 {
        if let index = self.nameIndex[string] { return index }
        let index = Int32(self.names.count)
        self.names.append(string)
        self.nameIndex[string] = index
        return index
    }

    private mutating func child(
        of parent: Int32,
        name: String,
        module: String,
        kind: FrameKind,
        count: Int64,
        index: inout [ChildKey: Int32]
    ) -> Int32 {
        let nameID = self.intern(name)
        let key = ChildKey(parent: parent, name: nameID, kind: kind.rawValue)
        if let existing = index[key] {
            self.nodes[Int(existing)].total += count
            return existing
        }
        let depth = self.nodes[Int(parent)].depth + 1
        let node = Node(
            name: nameID,
            module: self.intern(module),
            kind: kind,
            parent: parent,
            depth: depth,
            total: count,
            selfCount: 0
        )
        let id = Int32(self.nodes.count)
        self.nodes.append(node)
        self.nodes[Int(parent)].children.append(id)
        self.maxDepth = max(self.maxDepth, Int(depth))
        index[key] = id
        return id
    }
}

private struct ChildKey: Hashable {
    var parent: Int32
    var name: Int32
    var kind: UInt8
}

/// Formatting shared by the HTML and SVG renderers.
enum Format {
    /// `1234567` → `1,234,567`.
    static func grouped(_ value: Int64) -> String {
        let digits = String(value.magnitude)
        var result = ""
        for (offset, character) in digits.enumerated() {
            if offset > 0, (digits.count - offset) % 3 == 0 { result.append(",") }
            result.append(character)
        }
        return value < 0 ? "-" + result : result
    }

    /// A number with a fixed count of decimals: `fixed(3.14159, 2)` → `3.14`.
    static func fixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let whole = scaled / Int64(scale)
        var fraction = String(scaled % Int64(scale))
        while fraction.count < decimals { fraction = "0" + fraction }
        let sign = value < 0 && scaled != 0 ? "-" : ""
        return decimals == 0 ? "\(sign)\(whole)" : "\(sign)\(whole).\(fraction)"
    }

    /// A duration in seconds for people: `850 ms`, `2.25 s`, `12.5 s`, `10 s`, `3 min 20 s`.
    static func duration(seconds: Double) -> String {
        if seconds < 1 { return "\(self.fixed(seconds * 1000, 0)) ms" }
        if seconds < 100 {
            var text = self.fixed(seconds, seconds < 10 ? 2 : 1)
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
            return "\(text) s"
        }
        let minutes = Int(seconds / 60)
        let rest = Int(seconds.rounded()) - minutes * 60
        return rest == 0 ? "\(minutes) min" : "\(minutes) min \(rest) s"
    }

    /// The date in UTC, `2026-11-25 13:16:02 UTC`.
    static func timestamp(_ date: Date) -> String {
        let iso = date.formatted(.iso8601)  // 2026-11-25T13:16:02Z
        return iso.replacing("T", with: " ").replacing("Z", with: " UTC")
    }

    /// Escapes text for HTML and XML content and attribute values; drops characters XML 1.0 forbids.
    static func escapeXML(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            case "\t", "\n", "\r": result.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    result.unicodeScalars.append("\u{FFFD}")
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result
    }

    /// A JSON string literal that is also safe inside an HTML `<script>` element and an XML CDATA section.
    static func jsonString(_ text: String) -> String {
        var result = "\""
        result.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "<": result += "\\u003c"
            case ">": result += "\\u003e"
            case "&": result += "\\u0026"
            case "\u{2028}": result += "\\u2028"
            case "\u{2029}": result += "\\u2029"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        result += "\""
        return result
    }
}
