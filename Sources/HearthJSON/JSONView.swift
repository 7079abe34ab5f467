// JSONView.swift: typed accessors over a JSON object.

/// A value that converts to and from a JSON tree.
public protocol JSONConvertible: Sendable {
    init?(json: JSONValue)
    var json: JSONValue { get }
}

/// A typed view over a JSON object. The object is the single source of truth: typed properties read and write
/// it, so keys the type does not model are kept when the view is changed and encoded again.
public protocol JSONView: JSONConvertible, Codable, Hashable {
    /// The underlying JSON object.
    var object: JSONObject { get set }
    init(object: JSONObject)
}

extension JSONView {
    public init() { self.init(object: [:]) }

    public init?(json: JSONValue) {
        guard case .object(let object) = json else { return nil }
        self.init(object: object)
    }

    public var json: JSONValue { .object(self.object) }

    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        guard case .object(let object) = value else {
            throw DecodingError.typeMismatch(
                JSONObject.self,
                .init(codingPath: decoder.codingPath, debugDescription: "expected a JSON object, got \(value.typeName)")
            )
        }
        self.init(object: object)
    }

    public func encode(to encoder: any Encoder) throws {
        try JSONValue.object(self.object).encode(to: encoder)
    }

    /// Reads a typed field; nil when absent or of another type.
    public func get<T: JSONConvertible>(_ key: String, as type: T.Type = T.self) -> T? {
        self.object[key].flatMap { T(json: $0) }
    }

    /// Writes a typed field; nil removes the key.
    public mutating func set<T: JSONConvertible>(_ key: String, _ value: T?) {
        if let value { self.object[key] = value.json } else { self.object.removeValue(forKey: key) }
    }

    /// Reads a nested view, or an empty one when absent (so `x.spec.field = y` works on a fresh object).
    public func view<T: JSONView>(_ key: String, as type: T.Type = T.self) -> T {
        self.get(key) ?? T()
    }

    /// Writes a nested view; an empty view removes the key.
    public mutating func setView<T: JSONView>(_ key: String, _ value: T) {
        if value.object.isEmpty { self.object.removeValue(forKey: key) } else { self.object[key] = value.json }
    }
}

extension JSONValue: JSONConvertible {
    public init?(json: JSONValue) { self = json }
    public var json: JSONValue { self }
}

extension String: JSONConvertible {
    public init?(json: JSONValue) {
        guard let value = json.stringValue else { return nil }
        self = value
    }
    public var json: JSONValue { .string(self) }
}

extension Bool: JSONConvertible {
    public init?(json: JSONValue) {
        guard let value = json.boolValue else { return nil }
        self = value
    }
    public var json: JSONValue { .bool(self) }
}

extension Int: JSONConvertible {
    public init?(json: JSONValue) {
        guard let value = json.intValue else { return nil }
        self = Int(value)
    }
    public var json: JSONValue { .int(Int64(self)) }
}

extension Int64: JSONConvertible {
    public init?(json: JSONValue) {
        guard let value = json.intValue else { return nil }
        self = value
    }
    public var json: JSONValue { .int(self) }
}

extension Int32: JSONConvertible {
    public init?(json: JSONValue) {
        guard let value = json.intValue, let narrowed = Int32(exactly: value) else { return nil }
        self = narrowed
    }
    public var json: JSONValue { .int(Int64(self)) }
}

extension Double: JSONConvertible {
    public init?(json: JSONValue) {
        guard let value = json.doubleValue else { return nil }
        self = value
    }
    public var json: JSONValue { .double(self) }
}

extension Array: JSONConvertible where Element: JSONConvertible {
    public init?(json: JSONValue) {
        guard case .array(let values) = json else { return nil }
        self = values.compactMap { Element(json: $0) }
    }
    public var json: JSONValue { .array(self.map(\.json)) }
}

extension Dictionary: JSONConvertible where Key == String, Value: JSONConvertible {
    public init?(json: JSONValue) {
        guard case .object(let values) = json else { return nil }
        self = values.compactMapValues { Value(json: $0) }
    }
    public var json: JSONValue { .object(self.mapValues(\.json)) }
}

/// An arbitrary JSON object with no modeled fields (affinity, CRD schemas, ...).
public struct AnyObjectView: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }
}
