// GzipTests.swift: gzip round trips, concatenated members, truncated and corrupt input, and the size limit (random
// input from HearthTestSupport's SeededGenerator).

import HearthTestSupport
import Testing

@testable import HearthProfile

@Suite("Gzip")
struct GzipTests {
    @Test("compress then decompress returns the input", arguments: [0, 1, 100, 70_000, 1_000_003])
    func roundTrip(size: Int) throws {
        var generator = SeededGenerator(state: UInt64(size))
        // Half random, half repetitive, so both stored and compressed blocks occur.
        let bytes = (0..<size).map { index in index % 2 == 0 ? UInt8(truncatingIfNeeded: generator.next()) : 7 }
        let compressed = try Gzip.compress(bytes)
        #expect(Gzip.isCompressed(compressed))
        #expect(compressed[2] == 8)  // deflate
        #expect(try Gzip.decompress(compressed) == bytes)
    }

    @Test("concatenated members decompress to the concatenation, like gunzip")
    func concatenatedMembers() throws {
        let first = Array("hello, ".utf8)
        let second = Array("world".utf8)
        let stream = try Gzip.compress(first) + Gzip.compress(second)
        #expect(try Gzip.decompress(stream) == first + second)
    }

    @Test("truncated and corrupt input throw")
    func invalidInput() throws {
        let compressed = try Gzip.compress(Array(repeating: 42, count: 10_000))
        #expect(throws: GzipError.self) { try Gzip.decompress(Array(compressed.dropLast(10))) }
        #expect(throws: GzipError.self) { try Gzip.decompress(Array("not gzip at all".utf8)) }
        #expect(throws: GzipError.self) { try Gzip.decompress([]) }
    }

    @Test("output larger than the limit throws tooLarge")
    func sizeLimit() throws {
        let compressed = try Gzip.compress(Array(repeating: 0, count: 1 << 20))
        let error = try #require(throws: GzipError.self) { try Gzip.decompress(compressed, maximumSize: 1000) }
        #expect(error.code == .tooLarge)
    }
}
