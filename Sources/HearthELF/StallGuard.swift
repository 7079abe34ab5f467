// StallGuard.swift: the system calls that touch a workload's files (open, fstat, pread) run on worker threads with a
// deadline. A file on a dead network volume or a FUSE mount whose daemon stopped answering blocks in the kernel, often
// unkillably: it then holds one worker, not the sampling loop, and later reads of the same device are refused at once
// until that worker comes back.

import CSystemCalls
import Dispatch
import HearthBase
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs blocking file operations on disposable worker threads, each within a deadline.
///
/// An operation that misses its deadline is abandoned: the caller gets ``ELFError/Code/stalled``, the worker stays
/// blocked until the kernel answers (its late result is dropped, closing any descriptor it opened), and the operation's
/// ``Key`` (the device) is refused at once until then. At most ``Limits/maximumStalledWorkers`` workers may be
/// stalled; beyond that every guarded operation is refused, so a hung mount costs a bounded number of threads.
package final class StallGuard: Sendable {
    /// How long an operation may take and how many workers may be stalled at once.
    package struct Limits: Sendable {
        /// How long one open or read may take before it is abandoned. Default 500 ms: a page-cache or local-disk
        /// read takes microseconds to milliseconds, and the unwind loader serves every process in turn, so a stall
        /// must cost the others little. A slow but live file that is abandoned is used again once its read returns.
        package var deadline: Duration = .milliseconds(500)
        /// The most workers that may be blocked at once; beyond it, guarded operations are refused. Default 8.
        package var maximumStalledWorkers = 8

        package init() {}
    }

    /// What a stall is remembered by: the device a file is on (from `/proc/PID/maps` before it is opened, from
    /// `fstat` after), or the process root a path was resolved in when its device is not known yet.
    package enum Key: Hashable, Sendable {
        case device(UInt64)
        case root(String)
    }

    /// Counters since the guard was created.
    package struct Statistics: Hashable, Sendable {
        /// Operations that missed their deadline and were abandoned.
        package var stalledOperations = 0
        /// Operations refused at once because their device was stalled or too many workers were.
        package var refusedOperations = 0
        /// Workers blocked right now.
        package var stalledWorkers = 0
        /// Abandoned operations that returned in the end.
        package var recoveredOperations = 0

        package init() {}

        /// Operations a workload's files made fail: stalled or refused.
        package var stalledOrRefused: Int { self.stalledOperations + self.refusedOperations }
    }

    /// The guard every workload file goes through.
    package static let shared = StallGuard()

    private struct State {
        var limits = Limits()
        var idle: [Worker] = []
        var stalledKeys: [Key: Int] = [:]
        var statistics = Statistics()
    }

    private let state = Mutex(State())

    package init(limits: Limits = Limits()) {
        self.state.withLock { $0.limits = limits }
    }

    /// The limits in force.
    package var limits: Limits {
        get { self.state.withLock { $0.limits } }
        set { self.state.withLock { $0.limits = newValue } }
    }

    package var statistics: Statistics { self.state.withLock { $0.statistics } }

    /// Whether an operation on `device` is still stalled (its next one would be refused).
    package func isStalled(device: UInt64) -> Bool {
        self.state.withLock { $0.stalledKeys[.device(device)] != nil }
    }

    /// Runs `body` on a worker and waits at most ``Limits/deadline`` for it. `what` names the operation in errors.
    package func run<Value: Sendable>(
        key: Key?,
        what: @autoclosure () -> String,
        _ body: @escaping @Sendable () -> Value
    ) throws(ELFError) -> Value {
        let admission = self.state.withLock { state -> (Worker?, Duration, String?) in
            if let key, state.stalledKeys[key] != nil {
                state.statistics.refusedOperations += 1
                return (nil, .zero, "an earlier operation on the same \(key.noun) has not returned")
            }
            if state.statistics.stalledWorkers >= state.limits.maximumStalledWorkers {
                state.statistics.refusedOperations += 1
                return (nil, .zero, "\(state.statistics.stalledWorkers) file operations are stalled")
            }
            return (state.idle.popLast(), state.limits.deadline, nil)
        }
        if let refusal = admission.2 {
            throw ELFError(code: .stalled, message: "\(what()) refused: \(refusal)")
        }
        let worker = admission.0 ?? Worker(owner: self)
        let handoff = Handoff<Value>()
        worker.start { [self] in
            let delivered = handoff.deliver(body())
            self.finished(worker, abandoned: !delivered, key: key)
        }
        // Abandoning is recorded under the handoff's lock, so a worker coming back just then finds it recorded.
        let value = handoff.wait(for: admission.1) {
            self.state.withLock { state in
                state.statistics.stalledOperations += 1
                state.statistics.stalledWorkers += 1
                if let key { state.stalledKeys[key, default: 0] += 1 }
            }
        }
        if let value {
            return value
        }
        throw ELFError(
            code: .stalled,
            message: "\(what()) did not return within \(admission.1); abandoned to a worker"
        )
    }

    /// A worker is done: back to the idle list; an abandoned operation that came back frees its key.
    private func finished(_ worker: Worker, abandoned: Bool, key: Key?) {
        self.state.withLock { state in
            if abandoned {
                state.statistics.stalledWorkers -= 1
                state.statistics.recoveredOperations += 1
                if let key, let count = state.stalledKeys[key] {
                    state.stalledKeys[key] = count > 1 ? count - 1 : nil
                }
            }
            // A few idle threads are kept; more come only from stalls that ended, and are let go.
            if state.idle.count < 4 {
                state.idle.append(worker)
            } else {
                worker.stop()
            }
        }
    }
}

extension StallGuard.Key {
    fileprivate var noun: String {
        switch self {
        case .device(let device): "device \(device >> 8 & 0xfff):\(device & 0xff | (device >> 12) & 0xfff00)"
        case .root(let root): "root \(root)"
        }
    }
}

/// One operation's result, handed from the worker to the waiting caller unless the caller gave up first.
private final class Handoff<Value: Sendable>: Sendable {
    private enum Outcome: Sendable {
        case pending
        case delivered(Value)
        case abandoned
    }

    private let outcome = Mutex(Outcome.pending)
    private let done = DispatchSemaphore(value: 0)

    /// Stores the value for the caller; false when the caller abandoned the operation (the value is dropped).
    func deliver(_ value: Value) -> Bool {
        let delivered = self.outcome.withLock { outcome -> Bool in
            guard case .pending = outcome else { return false }
            outcome = .delivered(value)
            return true
        }
        if delivered { self.done.signal() }
        return delivered
    }

    /// The value, or nil when it did not come within `timeout`: the operation is then marked abandoned and
    /// `abandon` runs, before the worker can see the mark.
    func wait(for timeout: Duration, abandon: () -> Void) -> Value? {
        _ = self.done.wait(timeout: .now() + .nanoseconds(Int(max(0, timeout.nanoseconds))))
        return self.outcome.withLock { outcome -> Value? in
            switch outcome {
            case .delivered(let value):
                return value
            case .pending, .abandoned:
                outcome = .abandoned
                abandon()
                return nil
            }
        }
    }
}

/// A thread that runs one job at a time.
private final class Worker: Sendable {
    private let wake = DispatchSemaphore(value: 0)
    private let job = Mutex<(@Sendable () -> Void)?>(nil)
    private let stopping = Atomic<Bool>(false)

    init(owner: StallGuard) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        // Jobs are single system calls and an error message: a small stack is plenty.
        pthread_attr_setstacksize(&attributes, 256 << 10)
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let created = pthread_create(
            &thread,
            &attributes,
            { context in
                let worker = Unmanaged<Worker>.fromOpaque(context!).takeRetainedValue()
                worker.loop()
                return nil
            },
            context
        )
        if created == 0 {
            pthread_detach(thread)
        } else {
            // No thread: run jobs inline rather than never (the deadline then cannot be kept).
            Unmanaged<Worker>.fromOpaque(context).release()
            self.stopping.store(true, ordering: .relaxed)
        }
    }

    func start(_ job: @escaping @Sendable () -> Void) {
        if self.stopping.load(ordering: .relaxed) {
            job()
            return
        }
        self.job.withLock { $0 = job }
        self.wake.signal()
    }

    func stop() {
        self.stopping.store(true, ordering: .relaxed)
        self.wake.signal()
    }

    private func loop() {
        CSystemCalls_name_thread("hearth-file-io")
        while true {
            self.wake.wait()
            let job = self.job.withLock { job in
                defer { job = nil }
                return job
            }
            guard let job else {
                if self.stopping.load(ordering: .relaxed) { return }
                continue
            }
            job()
        }
    }
}
