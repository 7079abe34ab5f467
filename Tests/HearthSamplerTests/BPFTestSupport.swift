import Foundation
import Testing

/// Whether the tests that load BPF programs into the real kernel run.
///
/// They run as root. With HEARTH_REQUIRE_BPF=1 (CI) they always run, so an unusable eBPF fails them instead of
/// skipping them.
enum BPFTestSupport {
    static var required: Bool { ProcessInfo.processInfo.environment["HEARTH_REQUIRE_BPF"] == "1" }
    static var enabled: Bool { required || geteuid() == 0 }
    static let skipReason: Comment = "needs root for eBPF (set HEARTH_REQUIRE_BPF=1 to make this a failure)"
}

/// A child process that burns CPU until it is released (SIGKILL, then reaped).
///
/// posix_spawn and waitpid rather than Foundation's Process, whose waitUntilExit can hang in a test process.
final class BusyProcess {
    let pid: pid_t

    init(shellLoop: String = "while :; do :; done") throws {
        var pid: pid_t = 0
        let arguments = ["/bin/sh", "-c", shellLoop]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let status = posix_spawn(&pid, "/bin/sh", nil, nil, &argv, environ)
        try #require(status == 0, "posix_spawn /bin/sh: \(status)")
        self.pid = pid
    }

    /// Stops the process now; later calls do nothing.
    func stop() {
        guard kill(self.pid, SIGKILL) == 0 else { return }
        var status: Int32 = 0
        waitpid(self.pid, &status, 0)
    }

    deinit {
        self.stop()
    }
}

/// The cgroup v2 id of a process: the inode number of its cgroup directory.
func cgroupID(of pid: Int32) throws -> UInt64 {
    let text = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
    let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("0::") })
    let path = "/sys/fs/cgroup" + line.dropFirst(3)
    var info = stat()
    try #require(stat(path, &info) == 0, "stat \(path)")
    return UInt64(info.st_ino)
}
