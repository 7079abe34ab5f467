// JSONPatch.swift: RFC 6902 JSON patch, and the leaf-path field sets that server-side apply tracks.

import Foundation
import KubeModel

struct PatchError: Error { var message: String }

enum JSONPatch {
    /// Applies an RFC 6902 patch. Throws with the failing operation described.
    static func apply(_ patch: JSONValue, to document: JSONValue) throws -> JSONValue {
        guard let operations = patch.arrayValue else { throw PatchError(message: "json patch must be an array") }
        var document = document
        for operation in operations {
            guard let op = operation["op"]?.stringValue, let path = operation["path"]?.stringValue else {
                throw PatchError(message: "invalid JSON patch operation: \(operation)")
            }
            let pointer = try parsePointer(path)
            switch op {
            case "add": document = try set(document, pointer, operation["value"] ?? .null, insert: true)
            case "replace":
                guard get(document, pointer) != nil else {
                    throw PatchError(message: "replace operation does not apply: doc is missing key: \(path)")
                }
                document = try set(document, pointer, operation["value"] ?? .null, insert: false)
            case "remove":
                guard get(document, pointer) != nil else {
                    throw PatchError(message: "remove operation does not apply: doc is missing path: \(path)")
                }
                document = try remove(document, pointer)
            case "test":
                guard get(document, pointer) == (operation["value"] ?? .null) else {
                    throw PatchError(message: "testing value \(path) failed: test failed")
                }
            case "move", "copy":
                guard let from = operation["from"]?.stringValue, let value = get(document, try parsePointer(from))
                else {
                    throw PatchError(message: "\(op) operation does not apply: doc is missing from path")
                }
                if op == "move" { document = try remove(document, try parsePointer(from)) }
                document = try set(document, pointer, value, insert: true)
            default:
                throw PatchError(message: "Unexpected kind: \(op)")
            }
        }
        return document
    }

    static func parsePointer(_ path: String) throws -> [String] {
        if path.isEmpty { return [] }
        guard path.hasPrefix("/") else { throw PatchError(message: "invalid JSON pointer: \(path)") }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    static func get(_ document: JSONValue, _ pointer: [String]) -> JSONValue? {
        var current = document
        for token in pointer {
            switch current {
            case .object(let object):
                guard let next = object[token] else { return nil }
                current = next
            case .array(let array):
                guard let index = Int(token), array.indices.contains(index) else { return nil }
                current = array[index]
            default: return nil
            }
        }
        return current
    }

    static func set(_ document: JSONValue, _ pointer: [String], _ value: JSONValue, insert: Bool) throws -> JSONValue {
        guard let token = pointer.first else { return value }
        let rest = Array(pointer.dropFirst())
        switch document {
        case .object(var object):
            if rest.isEmpty {
                object[token] = value
            } else {
                guard let child = object[token] else {
                    throw PatchError(
                        message: "add operation does not apply: doc is missing path: /\(pointer.joined(separator: "/"))"
                    )
                }
                object[token] = try set(child, rest, value, insert: insert)
            }
            return .object(object)
        case .array(var array):
            if rest.isEmpty {
                if token == "-" {
                    array.append(value)
                } else if let index = Int(token), index >= 0, index <= array.count {
                    if insert {
                        array.insert(value, at: index)
                    } else if index < array.count {
                        array[index] = value
                    } else {
                        throw PatchError(message: "index out of range: \(index)")
                    }
                } else {
                    throw PatchError(message: "index out of range: \(token)")
                }
            } else {
                guard let index = Int(token), array.indices.contains(index) else {
                    throw PatchError(message: "index out of range: \(token)")
                }
                array[index] = try set(array[index], rest, value, insert: insert)
            }
            return .array(array)
        default:
            throw PatchError(
                message: "add operation does not apply: doc is missing path: /\(pointer.joined(separator: "/"))"
            )
        }
    }

    static func remove(_ document: JSONValue, _ pointer: [String]) throws -> JSONValue {
        guard let token = pointer.first else { return .null }
        let rest = Array(pointer.dropFirst())
        switch document {
        case .object(var object):
            if rest.isEmpty {
                object.removeValue(forKey: token)
            } else if let child = object[token] {
                object[token] = try remove(child, rest)
            }
            return .object(object)
        case .array(var array):
            guard let index = Int(token), array.indices.contains(index) else {
                throw PatchError(message: "index out of range: \(token)")
            }
            if rest.isEmpty { array.remove(at: index) } else { array[index] = try remove(array[index], rest) }
            return .array(array)
        default:
            return document
        }
    }
}

/// A set of leaf field paths (object keys; lists are atomic), as server-side apply tracks ownership.
struct FieldSet: Sendable, Hashable {
    var paths: Set<[String]>

    init(_ paths: Set<[String]> = []) { self.paths = paths }

    /// The leaf paths of an object, leaving out fields the server owns.
    init(of value: JSONValue) {
        var paths = Set<[String]>()
        Self.collect(value, prefix: [], into: &paths)
        self.paths = paths.filter { !Self.isServerOwned($0) }
    }

    static func isServerOwned(_ path: [String]) -> Bool {
        if path == ["apiVersion"] || path == ["kind"] { return true }
        guard path.first == "metadata", path.count >= 2 else { return false }
        return [
            "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
            "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
        ].contains(path[1])
    }

    private static func collect(_ value: JSONValue, prefix: [String], into paths: inout Set<[String]>) {
        if case .object(let object) = value, !object.isEmpty {
            for (key, child) in object { collect(child, prefix: prefix + [key], into: &paths) }
        } else if !prefix.isEmpty {
            paths.insert(prefix)
        }
    }

    /// Parses `fieldsV1` (`{"f:spec":{"f:size":{}}}`); non-`f:` keys end a path.
    init(fieldsV1: JSONValue) {
        var paths = Set<[String]>()
        func walk(_ value: JSONValue, _ prefix: [String]) {
            guard case .object(let object) = value else { return }
            var hasChild = false
            for (key, child) in object where key.hasPrefix("f:") {
                hasChild = true
                walk(child, prefix + [String(key.dropFirst(2))])
            }
            if !hasChild || object["."] != nil, !prefix.isEmpty { paths.insert(prefix) }
        }
        walk(fieldsV1, [])
        self.paths = paths
    }

    /// The `fieldsV1` encoding.
    var fieldsV1: JSONValue {
        var root = JSONValue.object([:])
        for path in self.paths {
            var current: [String] = []
            for component in path {
                current.append("f:" + component)
                if root[path: current] == nil { root.setValue(.object([:]), at: current[...]) }
            }
        }
        return root
    }

    /// Whether two paths overlap (one is a prefix of the other).
    static func overlaps(_ a: [String], _ b: [String]) -> Bool {
        a.count <= b.count ? Array(b.prefix(a.count)) == a : Array(a.prefix(b.count)) == b
    }
}
