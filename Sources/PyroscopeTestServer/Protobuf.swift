// Protobuf.swift: a minimal protobuf wire-format reader, written independently of swift-protobuf so the server
// checks the agent's encoding with a second implementation. Fields are read in place (ranges into one array).

/// A malformed protobuf message.
struct ProtobufError: Error, Sendable, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}

/// One field: its number and wire type, the varint or fixed value, or the range of a length-delimited payload.
struct ProtobufField {
    var number: Int
    var wireType: UInt8
    /// The value of varint (0), fixed64 (1) and fixed32 (5) fields.
    var scalar: UInt64
    /// The payload of length-delimited (2) fields.
    var range: Range<Int>
}

struct ProtobufReader {
    let bytes: [UInt8]
    private(set) var index: Int
    let end: Int

    init(_ bytes: [UInt8]) {
        self.init(bytes, range: 0..<bytes.count)
    }

    init(_ bytes: [UInt8], range: Range<Int>) {
        self.bytes = bytes
        self.index = range.lowerBound
        self.end = range.upperBound
    }

    mutating func varint() throws(ProtobufError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while self.index < self.end {
            let byte = self.bytes[self.index]
            self.index += 1
            // The tenth byte may only carry the top bit of a 64-bit value.
            if shift == 63, byte > 1 { break }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        throw ProtobufError(message: "invalid varint at offset \(self.index)")
    }

    private mutating func fixed(_ size: Int) throws(ProtobufError) -> UInt64 {
        guard self.end - self.index >= size else { throw ProtobufError(message: "truncated fixed\(size * 8) field") }
        var value: UInt64 = 0
        for offset in 0..<size { value |= UInt64(self.bytes[self.index + offset]) << (8 * UInt64(offset)) }
        self.index += size
        return value
    }

    /// The next field, or nil at the end of the message.
    mutating func next() throws(ProtobufError) -> ProtobufField? {
        guard self.index < self.end else { return nil }
        let key = try self.varint()
        let number = key >> 3
        guard number > 0, number <= 536_870_911 else { throw ProtobufError(message: "invalid field number \(number)") }
        let wireType = UInt8(key & 7)
        var field = ProtobufField(number: Int(number), wireType: wireType, scalar: 0, range: 0..<0)
        switch wireType {
        case 0: field.scalar = try self.varint()
        case 1: field.scalar = try self.fixed(8)
        case 5: field.scalar = try self.fixed(4)
        case 2:
            let length = try self.varint()
            guard length <= UInt64(self.end - self.index) else {
                throw ProtobufError(message: "truncated length-delimited field \(number)")
            }
            field.range = self.index..<self.index + Int(length)
            self.index += Int(length)
        default:
            // Groups (3, 4) are proto2-only and never appear in these messages.
            throw ProtobufError(message: "unsupported wire type \(wireType) for field \(number)")
        }
        return field
    }

    /// A reader over a length-delimited field's payload (an embedded message).
    func message(_ field: ProtobufField) throws(ProtobufError) -> ProtobufReader {
        try self.expect(field, wireType: 2)
        return ProtobufReader(self.bytes, range: field.range)
    }

    func string(_ field: ProtobufField) throws(ProtobufError) -> String {
        try self.expect(field, wireType: 2)
        guard let string = String(validating: self.bytes[field.range], as: UTF8.self) else {
            throw ProtobufError(message: "field \(field.number) is not valid UTF-8")
        }
        return string
    }

    func data(_ field: ProtobufField) throws(ProtobufError) -> [UInt8] {
        try self.expect(field, wireType: 2)
        return Array(self.bytes[field.range])
    }

    func uint64(_ field: ProtobufField) throws(ProtobufError) -> UInt64 {
        try self.expect(field, wireType: 0)
        return field.scalar
    }

    func int64(_ field: ProtobufField) throws(ProtobufError) -> Int64 {
        Int64(bitPattern: try self.uint64(field))
    }

    func bool(_ field: ProtobufField) throws(ProtobufError) -> Bool {
        try self.uint64(field) != 0
    }

    /// A repeated varint field, packed (one length-delimited field) or not (one field per element).
    func appendVarints(_ field: ProtobufField, to values: inout [UInt64]) throws(ProtobufError) {
        switch field.wireType {
        case 0: values.append(field.scalar)
        case 2:
            var packed = ProtobufReader(self.bytes, range: field.range)
            while packed.index < packed.end { values.append(try packed.varint()) }
        default: throw ProtobufError(message: "field \(field.number) has wire type \(field.wireType), want varint")
        }
    }

    func appendVarints(_ field: ProtobufField, to values: inout [Int64]) throws(ProtobufError) {
        switch field.wireType {
        case 0: values.append(Int64(bitPattern: field.scalar))
        case 2:
            var packed = ProtobufReader(self.bytes, range: field.range)
            while packed.index < packed.end { values.append(Int64(bitPattern: try packed.varint())) }
        default: throw ProtobufError(message: "field \(field.number) has wire type \(field.wireType), want varint")
        }
    }

    private func expect(_ field: ProtobufField, wireType: UInt8) throws(ProtobufError) {
        guard field.wireType == wireType else {
            throw ProtobufError(message: "field \(field.number) has wire type \(field.wireType), want \(wireType)")
        }
    }
}
