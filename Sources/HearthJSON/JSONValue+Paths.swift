// JSONValue+Paths.swift: reading and writing nested object keys, merge patches.

extension JSONValue {
    /// Sets the value at a path of object keys, creating objects on the way. A nil value removes the key.
    public mutating func setValue(_ value: JSONValue?, at path: ArraySlice<String>) {
        guard let key = path.first else {
            if let value { self = value }
            return
        }
        var object = self.objectValue ?? [:]
        if path.count == 1 {
            if let value { object[key] = value } else { object.removeValue(forKey: key) }
        } else {
            var child = object[key] ?? .object([:])
            if value == nil, object[key] == nil { return }
            child.setValue(value, at: path.dropFirst())
            object[key] = child
        }
        self = .object(object)
    }

    /// Applies an RFC 7386 JSON merge patch.
    public func applyingMergePatch(_ patch: JSONValue) -> JSONValue {
        guard case .object(let patchObject) = patch else { return patch }
        var target = self.objectValue ?? [:]
        for (key, value) in patchObject {
            if value.isNull {
                target.removeValue(forKey: key)
            } else {
                target[key] = (target[key] ?? .null).applyingMergePatch(value)
            }
        }
        return .object(target)
    }

    /// The RFC 7386 merge patch that turns `self` into `other`.
    public func mergePatch(to other: JSONValue) -> JSONValue {
        guard case .object(let old) = self, case .object(let new) = other else { return other }
        var patch: JSONObject = [:]
        for (key, value) in new where old[key] != value {
            patch[key] = old[key].map { $0.mergePatch(to: value) } ?? value
        }
        for key in old.keys where new[key] == nil { patch[key] = .null }
        return .object(patch)
    }
}
