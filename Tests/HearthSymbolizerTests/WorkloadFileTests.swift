// WorkloadFileTests.swift: opening files a workload names: inside its root by openat2 and by the component walk that
// stands in for it, never a FIFO, device or directory, never blocking, and never out of the root.

import Foundation
import Testing

@testable import HearthELF
@testable import HearthSymbolizer

#if canImport(Glibc)
import Glibc
#endif

@Suite("Workload files: opened inside the process's root, regular files only")
struct WorkloadFileTests {
    /// A fake container root with a host file beside it that links inside the root point to.
    struct Layout {
        let base: String
        var root: String { self.base + "/root" }
        var hostFile: String { self.base + "/host-secret" }

        init() throws {
            self.base = NSTemporaryDirectory() + "hearth-workload-file-\(UUID().uuidString)"
            let fm = FileManager.default
            try fm.createDirectory(atPath: self.base + "/root/lib/sub", withIntermediateDirectories: true)
            try Data("host".utf8).write(to: URL(fileURLWithPath: self.base + "/host-secret"))
            // Inside the root: the real file, and a file of the same name as the host's.
            try Data("inside".utf8).write(to: URL(fileURLWithPath: self.root + "/lib/real"))
            try Data("root's own".utf8).write(to: URL(fileURLWithPath: self.root + "/host-secret"))
            // Relative and absolute links, `..` climbing above the root, a FIFO, a device.
            try fm.createSymbolicLink(atPath: self.root + "/lib/relative", withDestinationPath: "real")
            try fm.createSymbolicLink(atPath: self.root + "/lib/absolute", withDestinationPath: "/lib/real")
            try fm.createSymbolicLink(atPath: self.root + "/lib/escape", withDestinationPath: self.hostFile)
            try fm.createSymbolicLink(
                atPath: self.root + "/lib/climb",
                withDestinationPath: "../../../../../host-secret"
            )
            try fm.createSymbolicLink(atPath: self.root + "/lib/zero", withDestinationPath: "/dev/zero")
            try fm.createSymbolicLink(atPath: self.root + "/lib/loop", withDestinationPath: "loop")
            try fm.createSymbolicLink(atPath: self.root + "/linkdir", withDestinationPath: "/lib/sub")
            try Data("deep".utf8).write(to: URL(fileURLWithPath: self.root + "/lib/sub/file"))
            mkfifo(self.root + "/lib/fifo", 0o600)
        }

        func remove() { try? FileManager.default.removeItem(atPath: self.base) }
    }

    static func contents(_ file: WorkloadFile) -> String {
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = pread(file.descriptor, &buffer, buffer.count, 0)
        return String(decoding: buffer[0..<max(0, count)], as: UTF8.self)
    }

    @Test("links resolve inside the root, by openat2 and by the component walk alike", arguments: [true, false])
    func linksStayInside(useOpenat2: Bool) throws {
        let layout = try Layout()
        defer { layout.remove() }
        func open(_ path: String) throws -> String {
            Self.contents(try WorkloadFile.open(path, inRoot: layout.root, useOpenat2: useOpenat2))
        }
        #expect(try open("/lib/real") == "inside")
        #expect(try open("/lib/relative") == "inside")
        #expect(try open("/lib/absolute") == "inside")
        #expect(try open("/linkdir/file") == "deep")
        #expect(try open("/lib/../lib/./real") == "inside")
        // An absolute link names a path inside the root: the host's file of that path is never opened.
        #expect(throws: ELFError.self) { try open("/lib/escape") }
        // `..` stops at the root: the root's own file, not the host's.
        #expect(try open("/lib/climb") == "root's own")
        #expect(try open("/../../host-secret") == "root's own")
        #expect(throws: ELFError.self) { try open("/lib/loop") }
    }

    @Test("a FIFO, a device and a directory are refused without blocking", arguments: [true, false])
    func onlyRegularFiles(useOpenat2: Bool) throws {
        let layout = try Layout()
        defer { layout.remove() }
        // A link to a device resolves inside the root, which has none here.
        #expect(throws: ELFError.self) {
            _ = try WorkloadFile.open("/lib/zero", inRoot: layout.root, useOpenat2: useOpenat2)
        }
        let device = #expect(throws: ELFError.self) {
            _ = try WorkloadFile.open("/dev/zero", inRoot: "/", useOpenat2: useOpenat2)
        }
        #expect(device?.code == .notRegularFile)
        for path in ["/lib/fifo", "/lib", "/lib/sub"] {
            // A plain open of the FIFO would block until a writer came: nobody ever writes it.
            let error = #expect(throws: ELFError.self) {
                _ = try WorkloadFile.open(path, inRoot: layout.root, useOpenat2: useOpenat2)
            }
            #expect(error?.code == .notRegularFile, "\(path): \(String(describing: error))")
        }
        let error = #expect(throws: ELFError.self) { _ = try WorkloadFile.open(procfsPath: layout.root + "/lib/fifo") }
        #expect(error?.code == .notRegularFile)
    }

    @Test("a section a sparse file claims beyond its allocated blocks is refused before it is read")
    func sparseSectionRefused() throws {
        let path = NSTemporaryDirectory() + "hearth-sparse-\(UUID().uuidString)"
        defer { unlink(path) }
        FileManager.default.createFile(atPath: path, contents: Data(repeating: 7, count: 4096))
        #expect(truncate(path, 512 << 20) == 0)
        let source = ELFByteSource(file: try WorkloadFile.open(procfsPath: path))
        #expect(source.allocatedBytes < 1 << 20)
        #expect(try source.read(offset: 0, count: 4096, what: "head").count == 4096)
        let error = #expect(throws: ELFError.self) {
            _ = try source.read(offset: 0, count: 400 << 20, what: ".eh_frame")
        }
        #expect(error?.code == .tooLarge)
    }
}
