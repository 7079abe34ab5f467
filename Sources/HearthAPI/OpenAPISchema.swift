// OpenAPISchema.swift: a small builder for structural OpenAPI v3 schemas with CEL rules, as CRDs want them.

import KubeModel

/// A structural schema node, built in Swift next to the type it describes.
public struct OpenAPISchema: Sendable, Hashable {
    public var json: JSONObject

    public init(_ json: JSONObject) { self.json = json }

    /// A CEL rule with the message a user sees when it fails.
    public struct Rule: Sendable, Hashable {
        public var rule: String
        public var message: String
        public var fieldPath: String?
        public init(_ rule: String, message: String, fieldPath: String? = nil) {
            self.rule = rule
            self.message = message
            self.fieldPath = fieldPath
        }
        var json: JSONValue {
            var object: JSONObject = ["rule": .string(self.rule), "message": .string(self.message)]
            if let fieldPath { object["fieldPath"] = .string(fieldPath) }
            return .object(object)
        }
    }

    public static func object(
        _ description: String,
        properties: [String: OpenAPISchema],
        required: [String] = [],
        rules: [Rule] = []
    ) -> Self {
        var json: JSONObject = [
            "type": "object", "description": .string(description),
            "properties": .object(properties.mapValues { .object($0.json) }),
        ]
        if !required.isEmpty { json["required"] = .array(required.sorted().map { .string($0) }) }
        if !rules.isEmpty { json["x-kubernetes-validations"] = .array(rules.map(\.json)) }
        return Self(json)
    }

    public static func string(
        _ description: String,
        pattern: String? = nil,
        minLength: Int? = nil,
        maxLength: Int? = nil,
        enum values: [String]? = nil,
        default defaultValue: String? = nil,
        rules: [Rule] = []
    ) -> Self {
        var json: JSONObject = ["type": "string", "description": .string(description)]
        if let pattern { json["pattern"] = .string(pattern) }
        if let minLength { json["minLength"] = .int(Int64(minLength)) }
        if let maxLength { json["maxLength"] = .int(Int64(maxLength)) }
        if let values { json["enum"] = .array(values.map { .string($0) }) }
        if let defaultValue { json["default"] = .string(defaultValue) }
        if !rules.isEmpty { json["x-kubernetes-validations"] = .array(rules.map(\.json)) }
        return Self(json)
    }

    public static func integer(
        _ description: String,
        format: String? = nil,
        minimum: Int64? = nil,
        maximum: Int64? = nil,
        default defaultValue: Int64? = nil
    ) -> Self {
        var json: JSONObject = ["type": "integer", "description": .string(description)]
        if let format { json["format"] = .string(format) }
        if let minimum { json["minimum"] = .int(minimum) }
        if let maximum { json["maximum"] = .int(maximum) }
        if let defaultValue { json["default"] = .int(defaultValue) }
        return Self(json)
    }

    public static func boolean(_ description: String, default defaultValue: Bool? = nil) -> Self {
        var json: JSONObject = ["type": "boolean", "description": .string(description)]
        if let defaultValue { json["default"] = .bool(defaultValue) }
        return Self(json)
    }

    public static func array(
        _ description: String,
        items: OpenAPISchema,
        minItems: Int? = nil,
        maxItems: Int? = nil,
        listType: String? = nil,
        listMapKeys: [String]? = nil,
        default defaultValue: JSONValue? = nil
    ) -> Self {
        var json: JSONObject = ["type": "array", "description": .string(description), "items": .object(items.json)]
        if let minItems { json["minItems"] = .int(Int64(minItems)) }
        if let maxItems { json["maxItems"] = .int(Int64(maxItems)) }
        if let listType { json["x-kubernetes-list-type"] = .string(listType) }
        if let listMapKeys { json["x-kubernetes-list-map-keys"] = .array(listMapKeys.map { .string($0) }) }
        if let defaultValue { json["default"] = defaultValue }
        return Self(json)
    }

    public static func map(
        _ description: String,
        values: OpenAPISchema,
        maxProperties: Int? = nil,
        rules: [Rule] = []
    ) -> Self {
        var json: JSONObject = [
            "type": "object", "description": .string(description), "additionalProperties": .object(values.json),
        ]
        if let maxProperties { json["maxProperties"] = .int(Int64(maxProperties)) }
        if !rules.isEmpty { json["x-kubernetes-validations"] = .array(rules.map(\.json)) }
        return Self(json)
    }
}
