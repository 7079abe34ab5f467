// ApplyPlan.swift: deciding whether an owned object needs a server-side apply at all. An intent carries a hash
// of itself (annotation), so a changed intent is always applied (and fields no longer sent are removed by SSA),
// while an unchanged intent is applied only when the live object drifted from it. Fields other managers or the
// server added are ignored: intent ⊆ live is enough.

import KubeModel

enum ApplyPlan {
    static let intentHashAnnotation = "profiling.hearth.dev/intent-hash"

    /// Stamps the intent with its own hash; returns the hash.
    static func stamp(_ intent: inout JSONObject) -> String {
        let hash = String(SHA256.hex(KubeJSON.string(JSONValue.object(intent))).prefix(32))
        var metadata = ObjectMeta(object: intent["metadata"]?.objectValue ?? [:])
        var annotations = metadata.annotations ?? [:]
        annotations[self.intentHashAnnotation] = hash
        metadata.annotations = annotations
        intent["metadata"] = metadata.json
        return hash
    }

    /// Whether every field of `intent` is present in `live` with the same value (arrays: same length, element-wise).
    static func satisfies(_ live: JSONValue?, _ intent: JSONValue) -> Bool {
        guard let live else {
            // The server may drop empty maps and lists.
            if case .object(let i) = intent, i.isEmpty { return true }
            if case .array(let i) = intent, i.isEmpty { return true }
            return false
        }
        switch (live, intent) {
        case (.object(let l), .object(let i)):
            return i.allSatisfy { key, value in self.satisfies(l[key], value) }
        case (.array(let l), .array(let i)):
            return l.count == i.count && zip(l, i).allSatisfy { self.satisfies($0, $1) }
        case (.int, .int), (.double, .double), (.int, .double), (.double, .int):
            return live.doubleValue == intent.doubleValue
        default:
            return live == intent
        }
    }
}
