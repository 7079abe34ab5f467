// StallGuardTests.swift: file operations that do not return in time are abandoned to their worker, their device is
// refused until they come back, and stalled workers are capped. The operations here block on a semaphore the test
// releases; the real hung mount (a FUSE server that stops answering) is HostileInputTests' `hung-mount`.

import Dispatch
import Foundation
import Synchronization
import Testing

@testable import HearthELF
@testable import HearthSymbolizer

@Suite("Stall guard: a file that stops answering holds a worker, never the caller")
struct StallGuardTests {
    static func guardWith(stalledWorkers: Int = 8) -> StallGuard {
        var limits = StallGuard.Limits()
        limits.deadline = .milliseconds(100)
        limits.maximumStalledWorkers = stalledWorkers
        return StallGuard(limits: limits)
    }

    @Test("an operation past its deadline is abandoned; its device is refused until it returns, others are not")
    func stalledDeviceIsRefusedUntilItReturns() throws {
        let stallGuard = Self.guardWith()
        let release = DispatchSemaphore(value: 0)
        let ran = Atomic<Int>(0)
        let error = #expect(throws: ELFError.self) {
            try stallGuard.run(key: .device(7), what: "reading a file on a hung mount") {
                release.wait()
                return 1
            }
        }
        #expect(error?.code == .stalled)
        #expect(error?.message.contains("reading a file on a hung mount") == true)
        #expect(stallGuard.statistics.stalledWorkers == 1 && stallGuard.statistics.stalledOperations == 1)
        #expect(stallGuard.isStalled(device: 7))

        // The same device: refused without running.
        let refused = #expect(throws: ELFError.self) {
            try stallGuard.run(key: .device(7), what: "another file on it") {
                ran.add(1, ordering: .relaxed)
                return 2
            }
        }
        #expect(refused?.code == .stalled && ran.load(ordering: .relaxed) == 0)
        #expect(stallGuard.statistics.refusedOperations == 1)
        // Another device, and an operation without a key: they run.
        #expect(try stallGuard.run(key: .device(8), what: "a healthy file") { 3 } == 3)
        #expect(try stallGuard.run(key: nil, what: "procfs") { 4 } == 4)

        // The mount answers at last: the worker comes back, and the device is usable again.
        release.signal()
        let deadline = ContinuousClock.now + .seconds(10)
        while stallGuard.statistics.stalledWorkers > 0, ContinuousClock.now < deadline { usleep(1_000) }
        #expect(stallGuard.statistics.stalledWorkers == 0 && stallGuard.statistics.recoveredOperations == 1)
        #expect(!stallGuard.isStalled(device: 7))
        #expect(try stallGuard.run(key: .device(7), what: "the file again") { 5 } == 5)
    }

    @Test("past the cap of stalled workers, every operation is refused until one returns")
    func stalledWorkersAreCapped() throws {
        let stallGuard = Self.guardWith(stalledWorkers: 2)
        let release = DispatchSemaphore(value: 0)
        for device in [UInt64(1), 2] {
            #expect(throws: ELFError.self) {
                try stallGuard.run(key: .device(device), what: "hung") { release.wait() }
            }
        }
        let refused = #expect(throws: ELFError.self) {
            try stallGuard.run(key: .device(3), what: "a healthy device") { 1 }
        }
        #expect(refused?.message.contains("2 file operations are stalled") == true)
        release.signal()
        let deadline = ContinuousClock.now + .seconds(10)
        while stallGuard.statistics.stalledWorkers > 1, ContinuousClock.now < deadline { usleep(1_000) }
        #expect(try stallGuard.run(key: .device(3), what: "a healthy device") { 1 } == 1)
        release.signal()
    }

    @Test("operations that return in time hand back their value and reuse a few threads")
    func workersAreReused() throws {
        let stallGuard = Self.guardWith()
        let threadsBefore = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
        var total = 0
        for value in 0..<2_000 {
            total += try stallGuard.run(key: .device(UInt64(value % 5)), what: "a read") { value }
        }
        #expect(total == (0..<2_000).reduce(0, +))
        let threadsAfter = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
        // One call at a time: one worker serves them all (other tests may start threads meanwhile, hence the slack).
        #expect(threadsAfter - threadsBefore <= 4, "\(threadsBefore) threads before, \(threadsAfter) after")
        #expect(stallGuard.statistics == StallGuard.Statistics())
    }

    @Test("a late open's descriptor is closed when it comes back: an abandoned open leaks nothing")
    func lateResultIsReleased() throws {
        let stallGuard = Self.guardWith()
        let release = DispatchSemaphore(value: 0)
        let path = NSTemporaryDirectory() + "hearth-stall-\(UUID().uuidString)"
        try Data("x".utf8).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let opened = Mutex<Int32>(-1)
        #expect(throws: ELFError.self) {
            try stallGuard.run(key: .device(9), what: "a slow open") { () -> Result<WorkloadFile, ELFError> in
                release.wait()
                let file = Result { () throws(ELFError) in try WorkloadFile.open(procfsPath: path) }
                opened.withLock { $0 = (try? file.get())?.descriptor ?? -1 }
                return file
            }
        }
        release.signal()
        let deadline = ContinuousClock.now + .seconds(10)
        while stallGuard.statistics.stalledWorkers > 0, ContinuousClock.now < deadline { usleep(1_000) }
        let descriptor = opened.withLock { $0 }
        #expect(descriptor >= 0)
        // The abandoned WorkloadFile was dropped, which closed its descriptor (the number may have been reused since,
        // but not for this file).
        let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)")
        #expect(target != path)
    }
}
