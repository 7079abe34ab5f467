// CgroupProcess.swift: workloads started inside cgroup2 folders a test made (the tenants of the fair-share tests),
// the folders' removal, and C fixtures compiled into a scratch folder.

import Foundation

/// What went wrong while setting a workload up.
public struct WorkloadSetupError: Error, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { self.message }
}

public enum CgroupProcess {
    /// Starts `executable` in the cgroup2 folder `cgroup`: a shell moves itself there, then execs it, so none of the
    /// program's CPU time is spent elsewhere. Returns once the program runs (at most 10 s).
    public static func start(
        in cgroup: String,
        _ executable: String,
        _ arguments: [String] = []
    ) throws
        -> BackgroundProcess
    {
        let process = try BackgroundProcess(
            "/bin/sh",
            ["-c", #"echo $$ > "$1" && shift && exec "$@""#, "sh", cgroup + "/cgroup.procs", executable] + arguments
        )
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let running = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(process.pid)/exe")
            if running == executable { return process }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        process.stop()
        throw WorkloadSetupError("\(executable) did not start in \(cgroup): \(process.output)")
    }

    /// Removes cgroup folders in the order given (children first), once their processes are stopped: a cgroup just
    /// emptied may refuse (EBUSY) for a moment.
    public static func remove(_ folders: [String]) {
        for folder in folders {
            let deadline = ContinuousClock.now + .seconds(5)
            while rmdir(folder) != 0, errno == EBUSY, ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }
}

public enum CFixture {
    /// Compiles one C file with `cc` into a folder of this test process; returns the binary's path.
    public static func build(_ source: String, name: String, flags: [String]) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-fixtures-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let binary = directory.appendingPathComponent(name).path
        let output = try ChildProcess.run("/usr/bin/cc", flags + ["-o", binary, source])
        guard output.status == 0 else { throw WorkloadSetupError("cc \(source) failed: \(output.stderr)") }
        return binary
    }
}
