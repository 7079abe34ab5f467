// Protobuf.swift: the small protobuf subset kubectl's typed commands send (`create namespace|configmap|secret`,
// `auth can-i`): the `k8s\0` envelope with a runtime.Unknown, then ObjectMeta and string maps. Responses stay JSON,
// which kubectl accepts.

import Foundation
import KubeModel

enum KubeProtobuf {
    struct Reader {
        let bytes: [UInt8]
        var index = 0

        mutating func varint() throws(APIError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while self.index < self.bytes.count {
                let byte = self.bytes[self.index]
                self.index += 1
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
                if shift > 63 { break }
            }
            throw .badRequest("invalid protobuf varint")
        }

        /// Each field as (number, bytes for length-delimited, or nil for varints and fixed values).
        mutating func fields() throws(APIError) -> [(Int, [UInt8]?)] {
            var result: [(Int, [UInt8]?)] = []
            while self.index < self.bytes.count {
                let key = try self.varint()
                let number = Int(key >> 3)
                switch key & 7 {
                case 0:
                    _ = try self.varint()
                    result.append((number, nil))
                case 1:
                    self.index += 8
                    result.append((number, nil))
                case 5:
                    self.index += 4
                    result.append((number, nil))
                case 2:
                    let length = Int(try self.varint())
                    guard length >= 0, self.index + length <= self.bytes.count else {
                        throw .badRequest("truncated protobuf field")
                    }
                    result.append((number, Array(self.bytes[self.index..<self.index + length])))
                    self.index += length
                default:
                    throw .badRequest("unsupported protobuf wire type")
                }
            }
            return result
        }
    }

    static func fields(_ bytes: [UInt8]) throws(APIError) -> [(Int, [UInt8]?)] {
        var reader = Reader(bytes: bytes)
        return try reader.fields()
    }

    static func string(_ bytes: [UInt8]?) -> String { bytes.map { String(decoding: $0, as: UTF8.self) } ?? "" }

    /// A map<string, string|bytes> field's entries.
    static func mapEntry(_ bytes: [UInt8]) throws(APIError) -> (String, [UInt8]) {
        var key = ""
        var value: [UInt8] = []
        for (number, data) in try fields(bytes) {
            if number == 1 { key = string(data) }
            if number == 2 { value = data ?? [] }
        }
        return (key, value)
    }

    static func objectMeta(_ bytes: [UInt8]) throws(APIError) -> JSONObject {
        var meta: JSONObject = [:]
        var labels: JSONObject = [:]
        var annotations: JSONObject = [:]
        for (number, data) in try fields(bytes) {
            switch number {
            case 1: meta["name"] = .string(string(data))
            case 2: meta["generateName"] = .string(string(data))
            case 3: meta["namespace"] = .string(string(data))
            case 11:
                let (key, value) = try mapEntry(data ?? [])
                labels[key] = .string(string(value))
            case 12:
                let (key, value) = try mapEntry(data ?? [])
                annotations[key] = .string(string(value))
            default: break
            }
        }
        if !labels.isEmpty { meta["labels"] = .object(labels) }
        if !annotations.isEmpty { meta["annotations"] = .object(annotations) }
        return meta
    }

    /// Decodes a `k8s\0`-prefixed runtime.Unknown into the JSON object for the kinds kubectl creates this way.
    static func decode(_ body: [UInt8]) throws(APIError) -> JSONValue {
        guard body.count >= 4, Array(body.prefix(4)) == [0x6B, 0x38, 0x73, 0x00] else {
            throw .badRequest("protobuf body without the k8s envelope")
        }
        var apiVersion = ""
        var kind = ""
        var raw: [UInt8] = []
        for (number, data) in try fields(Array(body.dropFirst(4))) {
            if number == 1 {
                for (typeField, typeData) in try fields(data ?? []) {
                    if typeField == 1 { apiVersion = string(typeData) }
                    if typeField == 2 { kind = string(typeData) }
                }
            }
            if number == 2 { raw = data ?? [] }
        }
        var object: JSONObject = ["apiVersion": .string(apiVersion), "kind": .string(kind)]
        var data: JSONObject = [:]
        var binary = false
        for (number, value) in try fields(raw) {
            switch (kind, number) {
            case (_, 1): object["metadata"] = .object(try objectMeta(value ?? []))
            case ("ConfigMap", 2), ("Secret", 2):
                let (key, entry) = try mapEntry(value ?? [])
                binary = kind == "Secret"
                data[key] = .string(binary ? Data(entry).base64EncodedString() : string(entry))
            case ("Secret", 3): object["type"] = .string(string(value))
            default: break
            }
        }
        if !data.isEmpty { object["data"] = .object(data) }
        return .object(object)
    }
}
