// ChildProcess.swift: child processes for tests through posix_spawn and waitpid (Foundation's
// `Process.waitUntilExit` can hang when many tests spawn at once), background children released with the test,
// where the built executables are, and whether tests that load BPF programs run.

import Foundation
import Synchronization

/// Child processes for tests, through posix_spawn and waitpid: Foundation's `Process.waitUntilExit` can hang
/// in a test process where many tests spawn children at once.
public enum ChildProcess {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        /// Both streams, for messages.
        public var output: String { self.stdout + self.stderr }
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public var executable: String
        public var errno: Int32
        public var description: String { "posix_spawn \(self.executable): \(String(cString: strerror(self.errno)))" }
    }

    /// Runs `executable` to completion; output goes through files so no pipe can fill up and block the child.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String? = nil
    ) throws -> Output {
        let scratch = FileManager.default.temporaryDirectory
        let outPath = scratch.appendingPathComponent("hearth-run-\(UUID().uuidString).out").path
        let errPath = scratch.appendingPathComponent("hearth-run-\(UUID().uuidString).err").path
        defer {
            unlink(outPath)
            unlink(errPath)
        }
        let pid = try spawn(
            executable,
            arguments,
            environment: environment,
            directory: directory,
            stdout: outPath,
            stderr: errPath
        )
        let status = wait(pid)
        return Output(
            status: status,
            stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        )
    }

    /// Starts `executable` and returns its pid; output goes to the given files, or /dev/null.
    public static func spawn(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String? = nil,
        stdout: String = "/dev/null",
        stderr: String = "/dev/null",
        appendStderr: Bool = false
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if appendStderr, stderr == stdout {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        // posix_spawn_file_actions_addchdir_np is not visible to Swift here: let a shell change directory.
        var command = [executable] + arguments
        if let directory { command = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory] + command }

        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        // The child starts with no signal blocked: the test process's threads block most of them, and a child that
        // inherited that mask would ignore SIGTERM and its parent-death signal.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let result = posix_spawn(&pid, command[0], &actions, &attributes, argv, envp)
        guard result == 0 else { throw SpawnError(executable: executable, errno: result) }
        return pid
    }

    /// Waits for `pid` and returns its exit status, or 128 + the signal that ended it.
    @discardableResult
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return self.decode(status)
    }

    /// The exit status of `pid` if it has ended (reaping it), nil while it runs.
    public static func poll(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &status, WNOHANG) } while result < 0 && errno == EINTR
        if result == 0 { return nil }
        return result == pid ? self.decode(status) : -1
    }

    private static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// `run` on a thread of its own, so a test awaiting a child never blocks the cooperative pool.
    public static func runDetached(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String? = nil
    ) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        try self.run(executable, arguments, environment: environment, directory: directory)
                    }
                )
            }
            thread.start()
        }
    }
}

/// A child that runs until it exits or the test releases it; its stdout and stderr go to one file, readable while
/// it runs. Released (SIGKILL, then reaped) when the test drops it.
public final class BackgroundProcess: Sendable {
    public let pid: pid_t
    /// The file holding the child's output (/dev/null unless a directory was given).
    public let outputPath: String
    private let exit = Mutex<Int32?>(nil)

    /// - Parameter directory: when given, the child runs there and its output is kept in a file in it.
    public init(
        _ executable: String,
        _ arguments: [String] = [],
        directory: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        self.outputPath = directory.map { $0 + "/bg-\(UUID().uuidString).out" } ?? "/dev/null"
        if directory != nil { FileManager.default.createFile(atPath: self.outputPath, contents: nil) }
        // Both streams into one file: open it for stderr through a dup of stdout's descriptor.
        self.pid = try ChildProcess.spawn(
            executable,
            arguments,
            environment: environment,
            directory: directory,
            stdout: self.outputPath,
            stderr: self.outputPath,
            appendStderr: true
        )
    }

    /// What the child has written so far.
    public var output: String {
        FileManager.default.contents(atPath: self.outputPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// The exit status (or 128 + signal) once the child has ended; nil while it runs. Reaps it without blocking.
    public var exitStatus: Int32? {
        self.exit.withLock { exit in
            if exit == nil, let status = ChildProcess.poll(self.pid) { exit = status }
            return exit
        }
    }

    public var isRunning: Bool { self.exitStatus == nil }

    /// Sends `signal` (SIGTERM: a graceful stop the child may handle); does not wait.
    public func terminate(_ signal: Int32 = SIGTERM) {
        if self.isRunning { kill(self.pid, signal) }
    }

    /// Waits up to `timeout` for the child to end after `terminate`; returns its status, or nil if it still runs.
    public func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = self.exitStatus { return status }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return self.exitStatus
    }

    /// Stops the process now (SIGKILL) and reaps it; later calls do nothing.
    public func stop() {
        self.exit.withLock { exit in
            guard exit == nil else { return }
            kill(self.pid, SIGKILL)
            exit = ChildProcess.wait(self.pid)
        }
    }

    deinit {
        self.stop()
    }
}

/// Where `swift build` put this package's executables: beside the test bundle.
public enum BuildProducts {
    public static var directory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    }

    public static func executable(_ name: String) -> String {
        self.directory.appendingPathComponent(name).path
    }
}

/// Whether tests that load BPF programs into the real kernel run: as root, and always with HEARTH_REQUIRE_BPF=1
/// (CI), so an unusable eBPF fails them instead of skipping them.
public enum BPFRequirement {
    public static var required: Bool { ProcessInfo.processInfo.environment["HEARTH_REQUIRE_BPF"] == "1" }
    public static var enabled: Bool { required || geteuid() == 0 }
}
