// WorkloadFile.swift: opening a file a workload names (a mapped binary, a debug file, a perf map) as hostile input:
// resolved inside the workload's root (openat2 RESOLVE_IN_ROOT, or a component-wise walk where openat2 is missing),
// opened so that it can never block (O_NONBLOCK: a FIFO or a device never holds the agent), and fstat'ed before any
// read: regular files only.

import CSystemCalls
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A regular file opened on behalf of a workload: its descriptor (owned: closed on deinit) and what `fstat` said.
package final class WorkloadFile: Sendable {
    /// The open descriptor, read-only.
    package let descriptor: Int32
    /// The size in bytes.
    package let size: UInt64
    /// Bytes the file system has allocated for it (`st_blocks` × 512): a sparse file claims far more than this.
    package let allocatedBytes: UInt64
    /// The file's identity and version, as ``FileKey`` keeps it.
    package let key: FileKey

    /// The flags every workload file is opened with: read-only, never blocking on a FIFO or device, never becoming
    /// the agent's controlling terminal, never inherited by a child.
    package static let openFlags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC

    /// Takes ownership of `descriptor` when it is a regular file; closes it and throws otherwise.
    package init(descriptor: Int32, path: @autoclosure () -> String) throws(ELFError) {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let code = errno
            close(descriptor)
            throw ELFError(
                code: .io,
                message: "cannot stat \(path())",
                cause: SystemError(function: "fstat", errno: code)
            )
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            throw ELFError(
                code: .notRegularFile,
                message: "\(path()) is \(Self.kind(info.st_mode)), not a regular file"
            )
        }
        self.descriptor = descriptor
        self.size = UInt64(max(0, info.st_size))
        self.allocatedBytes = UInt64(max(0, info.st_blocks)) * 512
        self.key = FileKey(info)
    }

    deinit { close(self.descriptor) }

    /// Up to `count` bytes at `offset`, fewer only where the file ends; read on a worker with a deadline
    /// (``StallGuard``), so a file on a hung mount never holds the caller. The one `pread` loop for workload files.
    package func read(
        upTo count: Int,
        at offset: UInt64,
        what: @autoclosure () -> String = "a workload file"
    ) throws(ELFError) -> [UInt8] {
        let what = what()
        // The job holds the file, so an abandoned read never runs on a descriptor closed and reused meanwhile.
        let outcome = try StallGuard.shared.run(key: .device(self.key.device), what: "reading \(what)") { [self] in
            let descriptor = self.descriptor
            var failure: Int32?
            var done = 0
            let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                while done < count {
                    let n = pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                    if n < 0 && errno == EINTR { continue }
                    if n < 0 { failure = errno }
                    if n <= 0 { break }
                    done += n
                }
                initialized = failure == nil ? done : 0
            }
            return failure.map { Result<[UInt8], SystemError>.failure(SystemError(function: "pread", errno: $0)) }
                ?? .success(bytes)
        }
        return try outcome.mapError { ELFError(code: .io, message: "reading \(what)", cause: $0) }.get()
    }

    /// Exactly `count` bytes at `offset`, as ``read(upTo:at:what:)`` reads them; a file that ends first (it shrank
    /// since it was opened) throws ``ELFError/Code/truncated``.
    package func read(
        exactly count: Int,
        at offset: UInt64,
        what: @autoclosure () -> String
    ) throws(ELFError) -> [UInt8] {
        let bytes = try self.read(upTo: count, at: offset, what: what())
        guard bytes.count == count else {
            throw ELFError(code: .truncated, message: "\(what()): file shrank while reading")
        }
        return bytes
    }

    package static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: "a FIFO"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        case S_IFDIR: "a directory"
        case S_IFLNK: "a symbolic link"
        default: "not a regular file"
        }
    }

    /// Opens `path` as a workload sees it, inside the directory `root` (normally `/proc/PID/root`): absolute symbolic
    /// links and `..` resolve against `root`, never the agent's own root, and magic links (`/proc/self/…`) are not
    /// followed.
    ///
    /// `useOpenat2: false` forces the component walk that stands in for openat2 on kernels without it (for tests).
    package static func open(
        _ path: String,
        inRoot root: String,
        device: UInt64? = nil,
        useOpenat2: Bool = true
    ) throws(ELFError) -> WorkloadFile {
        // The device the mapping named, when known; otherwise a stall is remembered against the whole root.
        try StallGuard.shared.run(
            key: device.map { StallGuard.Key.device($0) } ?? .root(root),
            what: "opening \(root)\(path)"
        ) {
            Result { () throws(ELFError) -> WorkloadFile in
                try Self.openUnguarded(path, inRoot: root, useOpenat2: useOpenat2)
            }
        }.get()
    }

    package static func openUnguarded(
        _ path: String,
        inRoot root: String,
        useOpenat2: Bool
    ) throws(ELFError) -> WorkloadFile {
        let rootDescriptor = Glibc.open(root, CSystemCalls_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard rootDescriptor >= 0 else {
            throw ELFError(
                code: .io,
                message: "cannot open root \(root)",
                cause: SystemError(function: "open", errno: errno)
            )
        }
        defer { close(rootDescriptor) }
        return try self.open(path, inRootDescriptor: rootDescriptor, displayPath: root + path, useOpenat2: useOpenat2)
    }

    /// Whether openat2(2) may be used: cleared the first time it answers ENOSYS (Linux before 5.6, or a seccomp
    /// filter that does not know it), after which the component walk is used.
    private static let openat2Usable = Atomic<Bool>(true)

    static func open(
        _ path: String,
        inRootDescriptor root: Int32,
        displayPath: String,
        useOpenat2: Bool = true
    ) throws(ELFError) -> WorkloadFile {
        let relative = String(path.drop(while: { $0 == "/" }))
        if useOpenat2, Self.openat2Usable.load(ordering: .relaxed) {
            let descriptor = CSystemCalls_openat2(
                root,
                relative.isEmpty ? "." : relative,
                UInt64(Self.openFlags),
                CSystemCalls_RESOLVE_IN_ROOT | CSystemCalls_RESOLVE_NO_MAGICLINKS
            )
            if descriptor >= 0 {
                return try WorkloadFile(descriptor: descriptor, path: displayPath)
            }
            let code = errno
            if code != ENOSYS && code != EPERM {
                throw ELFError(
                    code: .io,
                    message: "cannot open \(displayPath)",
                    cause: SystemError(function: "openat2", errno: code)
                )
            }
            Self.openat2Usable.store(false, ordering: .relaxed)
        }
        return try WorkloadFile(
            descriptor: try Self.walk(relative, root: root, displayPath: displayPath),
            path: displayPath
        )
    }

    /// Opens a procfs entry or a `/proc/PID/map_files` link (which the kernel resolves to the very file mapped) with
    /// the same non-blocking flags and the regular-file check.
    package static func open(procfsPath path: String, device: UInt64? = nil) throws(ELFError) -> WorkloadFile {
        try StallGuard.shared.run(key: device.map { StallGuard.Key.device($0) }, what: "opening \(path)") {
            Result { () throws(ELFError) -> WorkloadFile in
                let descriptor = Glibc.open(path, Self.openFlags)
                guard descriptor >= 0 else {
                    throw ELFError(
                        code: .io,
                        message: "cannot open \(path)",
                        cause: SystemError(function: "open", errno: errno)
                    )
                }
                return try WorkloadFile(descriptor: descriptor, path: path)
            }
        }.get()
    }

    /// The most symbolic links one resolution follows, as the kernel's own limit (ELOOP).
    package static let maximumLinks = 40

    /// Resolves `path` inside `root` one component at a time without following any link (`O_NOFOLLOW`): links are
    /// read and spliced into the remaining path, absolute ones restarting at `root`; `..` never climbs above it.
    /// Returns the opened descriptor of the final file.
    package static func walk(_ path: String, root: Int32, displayPath: String) throws(ELFError) -> Int32 {
        func failure(_ function: String, _ code: Int32) -> ELFError {
            ELFError(
                code: .io,
                message: "cannot open \(displayPath)",
                cause: SystemError(function: function, errno: code)
            )
        }
        var remaining = path.split(separator: "/").map(String.init).reversed() as [String]
        // The directories walked so far, root first, so `..` can return to the parent.
        var directories: [Int32] = []
        defer { for descriptor in directories { close(descriptor) } }
        var links = 0
        func current() -> Int32 { directories.last ?? root }
        while let component = remaining.popLast() {
            if component == "." { continue }
            if component == ".." {
                if let parent = directories.popLast() { close(parent) }
                continue
            }
            let isLast = remaining.isEmpty
            let flags =
                isLast ? Self.openFlags | O_NOFOLLOW : CSystemCalls_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
            let descriptor = openat(current(), component, flags)
            if descriptor >= 0 {
                if isLast { return descriptor }
                directories.append(descriptor)
                continue
            }
            let code = errno
            // ELOOP (last component) or ENOTDIR (a directory component): perhaps a symbolic link.
            guard code == ELOOP || code == ENOTDIR else { throw failure("openat", code) }
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
            let length = readlinkat(current(), component, &buffer, buffer.count)
            guard length > 0 else { throw failure("openat", code) }
            links += 1
            guard links <= Self.maximumLinks else { throw failure("readlinkat", ELOOP) }
            let target = String(decoding: buffer[0..<length], as: UTF8.self)
            if target.hasPrefix("/") {
                for descriptor in directories { close(descriptor) }
                directories.removeAll()
            }
            remaining.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
        }
        // The path named a directory (or nothing): not a regular file.
        throw ELFError(code: .notRegularFile, message: "\(displayPath) is a directory, not a regular file")
    }
}
