// JSONValue+Parsing.swift: a direct JSON parser and serializer for JSONValue. Foundation's Codable path builds
// coding paths and throws errors while probing types, which made watch decoding the bottleneck (see
// BENCHMARKS-kube.md); this reads bytes once.

import Foundation

/// A JSON syntax error with its byte offset.
public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    public var offset: Int
    public var message: String
    public var description: String { "invalid JSON at byte \(self.offset): \(self.message)" }
}

extension JSONValue {
    /// Parses one JSON document (surrounding whitespace allowed).
    public static func parse<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws -> JSONValue {
        if let result = try bytes.withContiguousStorageIfAvailable({
            try Self.parse(buffer: UnsafeRawBufferPointer($0))
        }) {
            return result
        }
        return try Array(bytes).withUnsafeBytes { try Self.parse(buffer: $0) }
    }

    static func parse(buffer: UnsafeRawBufferPointer) throws -> JSONValue {
        var parser = JSONParser(bytes: buffer)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.index != buffer.count { throw parser.error("unexpected data after the document") }
        return value
    }

    /// Compact JSON with sorted object keys.
    public func serialized() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        self.serialize(into: &output)
        return output
    }

    public func serialize(into output: inout [UInt8]) {
        switch self {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let value): output.append(contentsOf: (value ? "true" : "false").utf8)
        case .int(let value): output.append(contentsOf: String(value).utf8)
        case .double(let value):
            if value.isFinite {
                if value.rounded() == value, abs(value) < 1e15 {
                    output.append(contentsOf: String(Int64(value)).utf8)
                } else {
                    output.append(contentsOf: "\(value)".utf8)
                }
            } else {
                output.append(contentsOf: "null".utf8)
            }
        case .string(let value): Self.serialize(string: value, into: &output)
        case .array(let values):
            output.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                value.serialize(into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let object):
            output.append(UInt8(ascii: "{"))
            for (index, key) in object.keys.sorted().enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.serialize(string: key, into: &output)
                output.append(UInt8(ascii: ":"))
                object[key]!.serialize(into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    static func serialize(string: String, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                output.append(contentsOf: [
                    UInt8(ascii: "\\"), UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)],
                ])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}

struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    func error(_ message: String) -> JSONParseError { JSONParseError(offset: self.index, message: message) }

    mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x0A, 0x0D, 0x09: self.index += 1
            default: return
            }
        }
    }

    mutating func expect(_ literal: StaticString, _ value: JSONValue) throws -> JSONValue {
        let count = literal.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count else { throw self.error("truncated literal") }
        let matches = literal.withUTF8Buffer { literalBytes in
            (0..<count).allSatisfy { self.bytes[self.index + $0] == literalBytes[$0] }
        }
        guard matches else { throw self.error("invalid literal") }
        self.index += count
        return value
    }

    mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < 512 else { throw self.error("nesting too deep") }
        guard self.index < self.bytes.count else { throw self.error("unexpected end of data") }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"):
            self.index += 1
            self.skipWhitespace()
            if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "}") {
                self.index += 1
                return .object([:])
            }
            // Members first, then one dictionary of the right size: no rehashing while it grows.
            var members: [(String, JSONValue)] = []
            while true {
                self.skipWhitespace()
                guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\"") else {
                    throw self.error("expected a string key")
                }
                let key = try self.parseKey()
                self.skipWhitespace()
                guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ":") else {
                    throw self.error("expected ':'")
                }
                self.index += 1
                self.skipWhitespace()
                members.append((key, try self.parseValue(depth: depth + 1)))
                self.skipWhitespace()
                guard self.index < self.bytes.count else { throw self.error("unterminated object") }
                let byte = self.bytes[self.index]
                self.index += 1
                if byte == UInt8(ascii: "}") {
                    return .object(JSONObject(members, uniquingKeysWith: { _, last in last }))
                }
                guard byte == UInt8(ascii: ",") else { throw self.error("expected ',' or '}'") }
            }
        case UInt8(ascii: "["):
            self.index += 1
            var array: [JSONValue] = []
            self.skipWhitespace()
            if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "]") {
                self.index += 1
                return .array(array)
            }
            while true {
                self.skipWhitespace()
                array.append(try self.parseValue(depth: depth + 1))
                self.skipWhitespace()
                guard self.index < self.bytes.count else { throw self.error("unterminated array") }
                let byte = self.bytes[self.index]
                self.index += 1
                if byte == UInt8(ascii: "]") { return .array(array) }
                guard byte == UInt8(ascii: ",") else { throw self.error("expected ',' or ']'") }
            }
        case UInt8(ascii: "\""):
            return .string(try self.parseString())
        case UInt8(ascii: "t"): return try self.expect("true", .bool(true))
        case UInt8(ascii: "f"): return try self.expect("false", .bool(false))
        case UInt8(ascii: "n"): return try self.expect("null", .null)
        default:
            return try self.parseNumber()
        }
    }

    mutating func parseNumber() throws -> JSONValue {
        let start = self.index
        var isInteger = true
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"): self.index += 1
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"):
                isInteger = false
                self.index += 1
            default:
                break
            }
            if self.index < self.bytes.count, !Self.isNumberByte(self.bytes[self.index]) { break }
        }
        guard self.index > start else { throw self.error("unexpected character") }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: self.bytes[start..<self.index]), as: UTF8.self)
        if isInteger, let value = Int64(text) { return .int(value) }
        guard let value = Double(text) else { throw JSONParseError(offset: start, message: "invalid number \(text)") }
        // Integral values are integers, as Foundation's decoding of JSONValue makes them (1e3 == 1000).
        if value.rounded() == value, abs(value) < 9.0e15 { return .int(Int64(value)) }
        return .double(value)
    }

    static func isNumberByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."),
            UInt8(ascii: "e"), UInt8(ascii: "E"):
            return true
        default: return false
        }
    }

    /// An object key: one of the long keys Kubernetes repeats in every object comes back as a shared String
    /// (keys over 15 UTF-8 bytes are heap-allocated per occurrence otherwise). Keys with escapes or control
    /// characters (rare, or errors) go through ``parseString()``.
    mutating func parseKey() throws -> String {
        let start = self.index + 1
        var end = start
        while end < self.bytes.count {
            let byte = self.bytes[end]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            end += 1
        }
        guard end < self.bytes.count, self.bytes[end] == UInt8(ascii: "\"") else { return try self.parseString() }
        let key = UnsafeRawBufferPointer(rebasing: self.bytes[start..<end])
        self.index = end + 1
        let length = key.count
        if length > 15, length < CommonKeys.byLength.count {
            for known in CommonKeys.byLength[length]
            where known.bytes.withUnsafeBytes({ memcmp($0.baseAddress!, key.baseAddress!, length) == 0 }) {
                return known.string
            }
        }
        return String(decoding: key, as: UTF8.self)
    }

    mutating func parseString() throws -> String {
        self.index += 1  // opening quote
        let start = self.index
        // Fast path: no escapes.
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            if byte == UInt8(ascii: "\"") {
                let string = String(
                    decoding: UnsafeRawBufferPointer(rebasing: self.bytes[start..<self.index]),
                    as: UTF8.self
                )
                self.index += 1
                return string
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw self.error("control character in string") }
            self.index += 1
        }
        var scalars: [UInt8] = Array(UnsafeRawBufferPointer(rebasing: self.bytes[start..<self.index]))
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            self.index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: scalars, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard self.index < self.bytes.count else { throw self.error("unterminated escape") }
                let escaped = self.bytes[self.index]
                self.index += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escaped)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try self.parseHex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard self.index + 1 < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\\"),
                            self.bytes[self.index + 1] == UInt8(ascii: "u")
                        else { throw self.error("unpaired surrogate") }
                        self.index += 2
                        let low = try self.parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw self.error("invalid surrogate pair") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw self.error("invalid unicode escape") }
                    scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw self.error("invalid escape")
                }
            default:
                if byte < 0x20 { throw self.error("control character in string") }
                scalars.append(byte)
            }
        }
        throw self.error("unterminated string")
    }

    mutating func parseHex4() throws -> UInt32 {
        guard self.index + 4 <= self.bytes.count else { throw self.error("truncated unicode escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = self.bytes[self.index]
            self.index += 1
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw self.error("invalid hex digit")
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }
}

/// Long keys (over String's 15-byte inline limit) found in most Kubernetes objects, shared between parses.
enum CommonKeys {
    static let keys = [
        "lastTransitionTime", "observedGeneration", "creationTimestamp", "deletionTimestamp", "ownerReferences",
        "blockOwnerDeletion", "deletionGracePeriodSeconds", "matchExpressions", "lastObservedTime",
        "desiredNumberScheduled", "currentNumberScheduled", "updatedNumberScheduled", "numberMisscheduled",
        "numberUnavailable", "serviceAccountName", "securityContext", "terminationGracePeriodSeconds",
        "imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy", "revisionHistoryLimit",
        "passwordSecretRef", "app.kubernetes.io/name", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
        "app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/version",
        "kubectl.kubernetes.io/last-applied-configuration", "profiling.hearth.dev/operator-namespace",
        "profiling.hearth.dev/config-hash",
    ]

    struct Known: Sendable {
        var bytes: [UInt8]
        var string: String
    }

    /// Index: UTF-8 length → the keys of that length.
    static let byLength: [[Known]] = {
        var table = [[Known]](repeating: [], count: 64)
        for key in keys where key.utf8.count > 15 && key.utf8.count < 64 {
            table[key.utf8.count].append(Known(bytes: Array(key.utf8), string: key))
        }
        return table
    }()
}
