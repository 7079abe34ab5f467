import Foundation

/// Child processes for tests, through posix_spawn and waitpid: Foundation's `Process.waitUntilExit` can hang
/// in a test process where many tests spawn children at once.
public enum ChildProcess {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
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
        stderr: String = "/dev/null"
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // posix_spawn_file_actions_addchdir_np is not visible to Swift here: let a shell change directory.
        var command = [executable] + arguments
        if let directory { command = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory] + command }

        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, command[0], &actions, nil, argv, envp)
        guard result == 0 else { throw SpawnError(executable: executable, errno: result) }
        return pid
    }

    /// Waits for `pid` and returns its exit status, or 128 + the signal that ended it.
    @discardableResult
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

/// A child that runs until the test releases it (SIGKILL, then reaped).
public final class BackgroundProcess: @unchecked Sendable {
    public let pid: pid_t
    private var stopped = false

    public init(_ executable: String, _ arguments: [String] = []) throws {
        self.pid = try ChildProcess.spawn(executable, arguments)
    }

    /// Stops the process now; later calls do nothing.
    public func stop() {
        guard !self.stopped else { return }
        self.stopped = true
        kill(self.pid, SIGKILL)
        ChildProcess.wait(self.pid)
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
