// YAMLRendering.swift: deterministic block-style YAML for JSON trees (sorted keys, strings quoted whenever a
// YAML 1.1 reader could take them for something else), used for crds/ and `hearth-operator render`.

import KubeModel

/// Renders JSON values as YAML documents.
public enum YAMLRendering {
    /// One document (without the `---` separator), ending in a newline.
    public static func document(_ value: JSONValue) -> String {
        var out = ""
        self.emit(value, indent: 0, into: &out, inline: false)
        if !out.hasSuffix("\n") { out += "\n" }
        return out
    }

    /// Several documents separated by `---`.
    public static func documents(_ values: [JSONValue]) -> String {
        values.map { "---\n" + self.document($0) }.joined()
    }

    static func scalar(_ value: JSONValue) -> String? {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return self.quote(s)
        case .array(let a): return a.isEmpty ? "[]" : nil
        case .object(let o): return o.isEmpty ? "{}" : nil
        }
    }

    static let plainWords: Set<String> = [
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~",
    ]

    static func quote(_ string: String) -> String {
        let plain =
            !string.isEmpty && string.wholeMatch(of: /[A-Za-z][A-Za-z0-9_.\/-]*/) != nil
            && !self.plainWords.contains(string.lowercased())
        if plain { return string }
        return KubeJSON.string(JSONValue.string(string))
    }

    static func emit(_ value: JSONValue, indent: Int, into out: inout String, inline: Bool) {
        let pad = String(repeating: " ", count: indent)
        switch value {
        case .object(let object) where !object.isEmpty:
            var first = true
            for key in object.keys.sorted() {
                let child = object[key]!
                let prefix = (first && inline) ? "" : pad
                first = false
                if let scalar = self.scalar(child) {
                    out += "\(prefix)\(self.quote(key)): \(scalar)\n"
                } else if case .array = child {
                    out += "\(prefix)\(self.quote(key)):\n"
                    self.emit(child, indent: indent, into: &out, inline: false)
                } else {
                    out += "\(prefix)\(self.quote(key)):\n"
                    self.emit(child, indent: indent + 2, into: &out, inline: false)
                }
            }
        case .array(let items) where !items.isEmpty:
            for item in items {
                if let scalar = self.scalar(item) {
                    out += "\(pad)- \(scalar)\n"
                } else if case .array = item {
                    out += "\(pad)-\n"
                    self.emit(item, indent: indent + 2, into: &out, inline: false)
                } else {
                    out += "\(pad)- "
                    self.emit(item, indent: indent + 2, into: &out, inline: true)
                }
            }
        default:
            out += "\(inline ? "" : pad)\(self.scalar(value) ?? "null")\n"
        }
    }
}
