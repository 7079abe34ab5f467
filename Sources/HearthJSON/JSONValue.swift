// JSONValue.swift: a Sendable JSON tree. Every Kubernetes object (KubeModel) is a typed view over one of these, so
// fields Hearth does not model survive a read-modify-write untouched.

import Foundation

/// A JSON value. Integers are kept apart from floating-point numbers so that int64 fields round-trip exactly.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

/// A JSON object.
public typealias JSONObject = [String: JSONValue]

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSONValue {
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }
    public var intValue: Int64? {
        switch self {
        case .int(let value): return value
        case .double(let value) where value.rounded() == value && abs(value) < 9.0e18: return Int64(value)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return nil
        }
    }
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }
    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }
    public var objectValue: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The value of an object key, or nil (also for non-objects).
    public subscript(key: String) -> JSONValue? {
        guard case .object(let object) = self else { return nil }
        return object[key]
    }

    /// The value at a dotted path of object keys (`["spec", "size"]`), or nil.
    public subscript(path path: [String]) -> JSONValue? {
        var current = self
        for key in path {
            guard case .object(let object) = current, let next = object[key] else { return nil }
            current = next
        }
        return current
    }

    /// The JSON type name as used in OpenAPI schemas and error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
    public init(floatLiteral value: Double) { self = .double(value) }
}

/// Shared JSON coding helpers with the settings the Kubernetes API expects (compact, sorted keys, unescaped slashes).
public enum KubeJSON {
    /// Encodes a value as compact JSON with sorted keys.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        if let value = value as? JSONValue { return Data(value.serialized()) }
        if let value = value as? any JSONView { return Data(value.json.serialized()) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    /// Decodes a value from JSON.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        if T.self == JSONValue.self { return try JSONValue.parse(data) as! T }
        if let view = T.self as? any JSONView.Type {
            let value = try JSONValue.parse(data)
            guard let decoded = view.init(json: value) else {
                throw JSONParseError(offset: 0, message: "expected a JSON object, got \(value.typeName)")
            }
            return decoded as! T
        }
        return try JSONDecoder().decode(type, from: data)
    }

    /// Decodes a value from JSON bytes.
    public static func decode<T: Decodable, Bytes: Collection<UInt8>>(_ type: T.Type, bytes: Bytes) throws -> T {
        if T.self == JSONValue.self { return try JSONValue.parse(bytes) as! T }
        if let view = T.self as? any JSONView.Type {
            let value = try JSONValue.parse(bytes)
            guard let decoded = view.init(json: value) else {
                throw JSONParseError(offset: 0, message: "expected a JSON object, got \(value.typeName)")
            }
            return decoded as! T
        }
        return try JSONDecoder().decode(type, from: Data(bytes))
    }

    /// Encodes a value into a JSON string.
    public static func string<T: Encodable>(_ value: T) -> String {
        (try? encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }

    /// Converts any Encodable into a JSON tree.
    public static func tree<T: Encodable>(_ value: T) throws -> JSONValue {
        if let value = value as? JSONValue { return value }
        if let value = value as? any JSONView { return value.json }
        return try decode(JSONValue.self, from: encode(value))
    }
}

extension JSONValue: CustomStringConvertible {
    public var description: String { KubeJSON.string(self) }
}
