// BPFTestSupport.swift: what the sampler's kernel tests share: whether eBPF tests run (and why they are skipped),
// a busy shell process to sample, and the cgroup v2 id of a process.

import Foundation
import HearthTestSupport
import Testing

enum BPFTestSupport {
    static var enabled: Bool { BPFRequirement.enabled }
    static let skipReason: Comment = "needs root for eBPF (set HEARTH_REQUIRE_BPF=1 to make this a failure)"
}

/// A shell that burns CPU (or runs `shellLoop`) until the test releases it.
func busyProcess(shellLoop: String = "while :; do :; done") throws -> BackgroundProcess {
    try BackgroundProcess("/bin/sh", ["-c", shellLoop])
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
