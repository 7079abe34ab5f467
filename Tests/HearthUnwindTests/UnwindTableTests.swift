// UnwindTableTests.swift: the table as the agent uses it: keys (build id, else device and inode), the errors that
// stop a whole file, `.eh_frame_hdr` against a linear walk, the binary-search lookup, and the 8-byte encoding of a
// real library's rows.

import Foundation
import HearthTestSupport
import Testing

@testable import HearthELF
@testable import HearthUnwind

#if canImport(Glibc)
import Glibc
#endif

@Suite("Unwind tables")
struct UnwindTableTests {
    @Test("a library's table is keyed by its build id and its rows encode into 8 bytes each")
    func libcKeyAndEncoding() throws {
        let table = try UnwindTable(contentsOf: SystemLibraries.libc)
        let elf = try ELFFile(path: SystemLibraries.libc)
        #expect(table.key == .buildID(try #require(elf.buildID)))
        let encoded = table.encodedRows()
        #expect(encoded.count == table.rows.count)
        #expect(table.statistics.encodedBytes == 8 * table.rows.count)
        #expect(table.statistics.cfiBytes == Int(try #require(elf.section(named: ".eh_frame")).size))
        for (row, word) in zip(table.rows, encoded) {
            #expect(row.encoded(base: table.baseAddress) == word)
            #expect(UnwindRow(encoded: word, base: table.baseAddress) == row)
        }
        #expect(table.rows.contains { $0.rule.kind == .signalFrame })
        #expect(table.rows.contains { $0.rule.kind == .plt })
        #expect(table.rows.contains { $0.rule.kind == .stop })
        #expect(table.rows.first?.address == table.addressRange.lowerBound)
        #expect(table.rows.last == UnwindRow(address: table.addressRange.upperBound, rule: .noInfo))
    }

    @Test("row(for:) agrees with a linear scan")
    func lookup() throws {
        let table = try UnwindTable(contentsOf: SystemLibraries.libstdcxx)
        var probes: [UInt64] = [0, 1, UInt64.max, table.addressRange.lowerBound, table.addressRange.upperBound]
        for (index, row) in table.rows.enumerated() where index % 97 == 0 {
            probes += [row.address &- 1, row.address, row.address &+ 1]
        }
        for address in probes {
            let linear = table.rows.last { $0.address <= address }
            #expect(table.row(for: address) == linear, "0x\(String(address, radix: 16))")
        }
    }

    @Test(
        "FDEs found through .eh_frame_hdr give the same table as a linear walk",
        arguments: [SystemLibraries.libc, SystemLibraries.libswiftCore]
    )
    func headerMatchesWalk(path: String) throws {
        let indexed = try UnwindTable(contentsOf: path)
        let elf = try ELFFile(path: path)
        let ehFrame = try #require(elf.section(named: ".eh_frame"))
        #expect(elf.section(named: ".eh_frame_hdr") != nil)
        let section = CFISection(
            data: ELFBytes(bytes: try elf.data(of: ehFrame), littleEndian: true),
            flavor: .ehFrame,
            bases: PointerBases(
                section: ehFrame.address,
                text: elf.section(named: ".text")?.address,
                data: elf.section(named: ".got")?.address
            )
        )
        let codeRanges = elf.programHeaders.filter { $0.isLoad && $0.isExecutable }.map {
            $0.virtualAddress..<$0.virtualAddress + $0.memorySize
        }
        var walked = CFICompiler(codeRanges: codeRanges, logger: nil)
        walked.add(section)
        let (rows, range) = walked.finish()
        #expect(rows == indexed.rows)
        #expect(range == indexed.addressRange)
        // The same but for the bytes held at once: whole here, in pieces from the file.
        var statistics = walked.statistics
        statistics.largestCFIPieceBytes = indexed.statistics.largestCFIPieceBytes
        #expect(statistics == indexed.statistics)
    }

    @Test(
        "a section read in pieces gives the table read whole, holding no more than a piece and a CIE at once",
        arguments: [SystemLibraries.libc, SystemLibraries.libswiftCore, SystemLibraries.libstdcxx]
    )
    func readInPieces(path: String) throws {
        let elf = try ELFFile(path: path)
        let ehFrameSize = Int(try #require(elf.section(named: ".eh_frame")).size)
        let key = UnwindTable.Key.buildID(try #require(elf.buildID))
        var whole = UnwindTable.Limits()
        whole.pieceBytes = 1 << 30
        let reference = try UnwindTable(elf: elf, key: key, limits: whole)
        #expect(reference.statistics.largestCFIPieceBytes >= ehFrameSize)
        for pieceBytes in [4096, 256 << 10] {
            var limits = UnwindTable.Limits()
            limits.pieceBytes = pieceBytes
            let table = try UnwindTable(elf: elf, key: key, limits: limits)
            #expect(table.rows == reference.rows)
            #expect(table.addressRange == reference.addressRange)
            #expect(table.statistics.fdes == reference.statistics.fdes)
            #expect(table.statistics.malformedFDEs == reference.statistics.malformedFDEs)
            // A piece, plus a CIE read on its own (CIEs are tens of bytes).
            #expect(table.statistics.largestCFIPieceBytes <= min(pieceBytes, ehFrameSize) + 256)
        }
    }

    @Test("an entry above the size limit is malformed; a read that fails stops the file with the read's error")
    func entryLimitAndReadFailure() throws {
        let elf = try ELFFile(path: SystemLibraries.libc)
        let key = UnwindTable.Key.buildID(try #require(elf.buildID))
        var limits = UnwindTable.Limits()
        limits.maximumEntryBytes = 16
        // Every FDE of libc is larger than 16 bytes (a length, a CIE pointer and two 4-byte addresses at least).
        let tiny = try UnwindTable(elf: elf, key: key, limits: limits)
        #expect(tiny.statistics.fdes == 0 && tiny.statistics.malformedFDEs > 1000, "\(tiny.statistics)")

        let ehFrame = try elf.data(of: try #require(elf.section(named: ".eh_frame")))
        var reads = 0
        var reader = CFISectionReader(
            size: ehFrame.count,
            flavor: .ehFrame,
            bases: PointerBases(section: 0),
            pieceBytes: 4096,
            maximumEntryBytes: 1 << 20
        ) { range throws(ELFError) in
            reads += 1
            guard reads < 5 else { throw ELFError(code: .io, message: "the disk went away") }
            return Array(ehFrame[range])
        }
        var compiler = CFICompiler(codeRanges: [], logger: nil)
        compiler.add(&reader)
        #expect(reader.readFailure?.code == .io)
        // Nothing is asked of the file after the failure.
        #expect(reads == 5)
    }

    @Test("without a build id the key is the file's device and inode")
    func deviceInodeKey() throws {
        let program = try CompiledProgram.get()
        let path = "\(program.directory)/no-build-id"
        let objcopy = try ChildProcess.run(
            "/usr/bin/objcopy",
            ["--remove-section", ".note.gnu.build-id", program.executable, path]
        )
        try #require(objcopy.status == 0, "\(objcopy.output)")
        var info = stat()
        try #require(stat(path, &info) == 0)
        let table = try UnwindTable(contentsOf: path)
        #expect(table.key == .file(device: UInt64(info.st_dev), inode: UInt64(info.st_ino)))
        #expect(table.key.buildID == nil)
        #expect(table.statistics.fdes > 0)
    }

    @Test("files that can't have a table throw with the right code")
    func wholeFileErrors() throws {
        let program = try CompiledProgram.get()
        #expect(throws: UnwindError.self) { try UnwindTable(contentsOf: "\(program.directory)/missing") }
        do {
            _ = try UnwindTable(contentsOf: "\(program.directory)/program.c")
            Issue.record("accepted a C source file")
        } catch {
            #expect(error.code == .unreadable)
        }

        let stripped = "\(program.directory)/no-cfi"
        let objcopy = try ChildProcess.run(
            "/usr/bin/objcopy",
            ["--remove-section", ".eh_frame", "--remove-section", ".eh_frame_hdr", program.executable, stripped]
        )
        try #require(objcopy.status == 0, "\(objcopy.output)")
        do {
            _ = try UnwindTable(contentsOf: stripped)
            Issue.record("accepted a file without CFI")
        } catch {
            #expect(error.code == .noCallFrameInformation)
        }

        // The same program relabelled as AArch64 (e_machine 183).
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: program.executable)))
        bytes[18] = 183
        bytes[19] = 0
        let relabelled = try ELFFile(bytes: bytes)
        do {
            _ = try UnwindTable(elf: relabelled, key: .buildID("aarch64"))
            Issue.record("accepted an AArch64 file")
        } catch {
            #expect(error.code == .unsupportedArchitecture)
        }
    }
}
