// Schema.swift: structural OpenAPI v3 schemas of CustomResourceDefinitions: defaulting, pruning and validation,
// with field errors worded like k8s.io/apiextensions-apiserver's.

import Foundation
import KubeModel
import Synchronization

/// One validation error of a field (`field.Error`).
struct FieldError: Sendable, Hashable {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueTooLong`, `FieldValueTypeInvalid`,
    /// `FieldValueForbidden`, `FieldValueDuplicate`.
    var reason: String
    var field: String
    /// The message without the field prefix.
    var detail: String

    var cause: StatusCause { StatusCause(reason: self.reason, message: self.detail, field: self.field) }
    var description: String { "\(self.field): \(self.detail)" }

    static func invalid(_ field: String, _ value: JSONValue, _ why: String) -> Self {
        .init(reason: "FieldValueInvalid", field: field, detail: "Invalid value: \(renderValue(value)): \(why)")
    }
    static func required(_ field: String, _ why: String = "") -> Self {
        .init(
            reason: "FieldValueRequired",
            field: field,
            detail: why.isEmpty ? "Required value" : "Required value: \(why)"
        )
    }
    static func forbidden(_ field: String, _ why: String) -> Self {
        .init(reason: "FieldValueForbidden", field: field, detail: "Forbidden: \(why)")
    }

    static func renderValue(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return KubeJSON.string(JSONValue.string(s))
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return String(b)
        case .null: return "null"
        case .array: return "[]interface {}{...}"
        case .object: return "map[string]interface {}{...}"
        }
    }
}

/// A structural schema (`openAPIV3Schema`).
struct StructuralSchema: Sendable {
    var root: JSONValue

    /// Applies `default`s, removes unknown fields (returned as paths such as `spec.colour`), then validates.
    func process(_ object: inout JSONValue) -> (unknown: [String], errors: [FieldError]) {
        var unknown: [String] = []
        Self.applyDefaults(&object, schema: self.root)
        Self.prune(&object, schema: self.root, path: [], unknown: &unknown, isRoot: true)
        var errors: [FieldError] = []
        Self.validate(object, schema: self.root, path: [], errors: &errors, isRoot: true)
        return (unknown, errors)
    }

    /// The schema for a path of object keys, or nil when the path is not declared.
    func schema(at path: [String]) -> JSONValue? {
        var current = self.root
        for key in path {
            guard
                let next = current[path: ["properties", key]]
                    ?? current["additionalProperties"].flatMap({
                        $0.objectValue != nil ? $0 : nil
                    })
            else { return nil }
            current = next
        }
        return current
    }

    static func applyDefaults(_ value: inout JSONValue, schema: JSONValue) {
        switch value {
        case .object(var object):
            if let properties = schema["properties"]?.objectValue {
                for (key, child) in properties {
                    if object[key] == nil, let defaultValue = child["default"] { object[key] = defaultValue }
                    if var existing = object[key] {
                        applyDefaults(&existing, schema: child)
                        object[key] = existing
                    }
                }
            } else if let additional = schema["additionalProperties"], additional.objectValue != nil {
                for (key, var existing) in object {
                    applyDefaults(&existing, schema: additional)
                    object[key] = existing
                }
            }
            value = .object(object)
        case .array(var items):
            if let itemSchema = schema["items"] {
                for index in items.indices { applyDefaults(&items[index], schema: itemSchema) }
            }
            value = .array(items)
        default:
            break
        }
    }

    static func prune(
        _ value: inout JSONValue,
        schema: JSONValue,
        path: [String],
        unknown: inout [String],
        isRoot: Bool = false
    ) {
        if schema["x-kubernetes-preserve-unknown-fields"]?.boolValue == true, schema["properties"] == nil { return }
        switch value {
        case .object(var object):
            let properties = schema["properties"]?.objectValue
            let additional = schema["additionalProperties"]
            let preserve = schema["x-kubernetes-preserve-unknown-fields"]?.boolValue == true
            for key in object.keys.sorted() {
                if isRoot, ["apiVersion", "kind", "metadata"].contains(key) { continue }
                if let childSchema = properties?[key] {
                    var child = object[key]!
                    prune(&child, schema: childSchema, path: path + [key], unknown: &unknown)
                    object[key] = child
                } else if let additional, additional.objectValue != nil {
                    var child = object[key]!
                    prune(&child, schema: additional, path: path + [key], unknown: &unknown)
                    object[key] = child
                } else if additional?.boolValue == true || preserve {
                    continue
                } else if properties != nil || schema["type"]?.stringValue == "object" {
                    unknown.append((path + [key]).joined(separator: "."))
                    object.removeValue(forKey: key)
                }
            }
            value = .object(object)
        case .array(var items):
            if let itemSchema = schema["items"] {
                for index in items.indices {
                    prune(&items[index], schema: itemSchema, path: path + ["[\(index)]"], unknown: &unknown)
                }
            }
            value = .array(items)
        default:
            break
        }
    }

    static func fieldPath(_ path: [String]) -> String {
        var result = ""
        for component in path {
            if component.hasPrefix("[") {
                result += component
            } else {
                result += result.isEmpty ? component : "." + component
            }
        }
        return result
    }

    static func validate(
        _ value: JSONValue,
        schema: JSONValue,
        path: [String],
        errors: inout [FieldError],
        isRoot: Bool = false
    ) {
        let field = fieldPath(path)
        if value.isNull {
            if schema["nullable"]?.boolValue == true { return }
        }
        if let type = schema["type"]?.stringValue, !isRoot {
            let intOrString = schema["x-kubernetes-int-or-string"]?.boolValue == true
            let ok: Bool
            switch type {
            case "object": ok = value.objectValue != nil
            case "array": ok = value.arrayValue != nil
            case "string": ok = value.stringValue != nil || (intOrString && value.intValue != nil)
            case "integer":
                if case .int = value {
                    ok = true
                } else if case .double(let d) = value {
                    ok = d.rounded() == d
                } else {
                    ok = intOrString && value.stringValue != nil
                }
            case "number": ok = value.doubleValue != nil
            case "boolean": ok = value.boolValue != nil
            default: ok = true
            }
            if !ok {
                errors.append(
                    .init(
                        reason: "FieldValueTypeInvalid",
                        field: field,
                        detail: "Invalid value: \"\(value.typeName)\": \(field) in body must be of type \(type): "
                            + "\"\(value.typeName)\""
                    )
                )
                return
            }
        } else if schema["x-kubernetes-int-or-string"]?.boolValue == true, value.intValue == nil,
            value.stringValue == nil, !isRoot
        {
            errors.append(
                .init(
                    reason: "FieldValueTypeInvalid",
                    field: field,
                    detail: "Invalid value: \"\(value.typeName)\": \(field) in body must be of type integer,string: "
                        + "\"\(value.typeName)\""
                )
            )
            return
        }
        if let allowed = schema["enum"]?.arrayValue, !allowed.contains(value) {
            let list = allowed.map { FieldError.renderValue($0) }.joined(separator: ", ")
            errors.append(
                .init(
                    reason: "FieldValueNotSupported",
                    field: field,
                    detail: "Unsupported value: \(FieldError.renderValue(value)): supported values: \(list)"
                )
            )
        }
        switch value {
        case .string(let string):
            if let maxLength = schema["maxLength"]?.intValue, string.count > maxLength {
                errors.append(
                    .init(
                        reason: "FieldValueTooLong",
                        field: field,
                        detail: "Too long: may not be more than \(maxLength) bytes"
                    )
                )
            }
            if let minLength = schema["minLength"]?.intValue, string.count < minLength {
                errors.append(
                    .invalid(field, value, "\(field) in body should be at least \(minLength) chars long")
                )
            }
            if let pattern = schema["pattern"]?.stringValue,
                let regex = CompiledPatterns.shared.regex(pattern),
                regex.firstMatch(in: string, range: NSRange(string.startIndex..., in: string)) == nil
            {
                errors.append(.invalid(field, value, "\(field) in body should match '\(pattern)'"))
            }
        case .int, .double:
            let number = value.doubleValue ?? 0
            if let minimum = schema["minimum"]?.doubleValue {
                let exclusive = schema["exclusiveMinimum"]?.boolValue == true
                if exclusive ? number <= minimum : number < minimum {
                    let bound = schema["minimum"].map { FieldError.renderValue($0) } ?? ""
                    errors.append(
                        .invalid(
                            field,
                            value,
                            "\(field) in body should be greater than \(exclusive ? "" : "or equal to ")\(bound)"
                        )
                    )
                }
            }
            if let maximum = schema["maximum"]?.doubleValue {
                let exclusive = schema["exclusiveMaximum"]?.boolValue == true
                if exclusive ? number >= maximum : number > maximum {
                    let bound = schema["maximum"].map { FieldError.renderValue($0) } ?? ""
                    errors.append(
                        .invalid(
                            field,
                            value,
                            "\(field) in body should be less than \(exclusive ? "" : "or equal to ")\(bound)"
                        )
                    )
                }
            }
        case .array(let items):
            if let maxItems = schema["maxItems"]?.intValue, items.count > maxItems {
                errors.append(
                    .init(
                        reason: "FieldValueTooMany",
                        field: field,
                        detail: "Too many: \(items.count): must have at most \(maxItems) items"
                    )
                )
            }
            if let minItems = schema["minItems"]?.intValue, items.count < minItems {
                errors.append(.invalid(field, value, "\(field) in body should have at least \(minItems) items"))
            }
            if let itemSchema = schema["items"] {
                for (index, item) in items.enumerated() {
                    validate(item, schema: itemSchema, path: path + ["[\(index)]"], errors: &errors)
                }
            }
        case .object(let object):
            for required in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
            where object[required] == nil {
                errors.append(.required(fieldPath(path + [required])))
            }
            let properties = schema["properties"]?.objectValue ?? [:]
            for key in object.keys.sorted() {
                if isRoot, key == "metadata" || key == "apiVersion" || key == "kind" { continue }
                if let child = properties[key] {
                    validate(object[key]!, schema: child, path: path + [key], errors: &errors)
                } else if let additional = schema["additionalProperties"], additional.objectValue != nil {
                    validate(object[key]!, schema: additional, path: path + [key], errors: &errors)
                }
            }
        default:
            break
        }
    }
}

/// Compiled schema patterns, reused across requests (compiling one costs more than validating an object).
final class CompiledPatterns: Sendable {
    static let shared = CompiledPatterns()
    private let cache = Mutex<[String: NSRegularExpression?]>([:])

    func regex(_ pattern: String) -> NSRegularExpression? {
        if let cached = self.cache.withLock({ $0[pattern] }) { return cached }
        let compiled = try? NSRegularExpression(pattern: pattern)
        self.cache.withLock {
            if $0.count > 256 { $0.removeAll() }
            $0[pattern] = compiled
        }
        return compiled
    }
}
