// WorkQueue.swift: client-go's workqueue semantics: dedupe, one worker per key, delayed adds, per-key
// exponential failure backoff, shutdown that drains.

import Foundation
import HeapModule
import HearthBase
import Metrics
import Synchronization

/// A work queue of keys.
///
/// - An item added several times before a worker takes it is processed once.
/// - An item is never handed to two workers at once: added while processing, it is queued again after ``done(_:)``.
/// - ``add(_:after:)`` delays an item; ``addRateLimited(_:)`` delays it by a per-key exponential backoff that
///   ``forget(_:)`` resets.
public final class WorkQueue<Key: Hashable & Sendable>: Sendable {
    /// Per-item failure backoff (controller-runtime: 5 ms doubling to 1000 s).
    public struct RateLimit: Sendable {
        public var base: Duration
        public var maximum: Duration
        public init(base: Duration = .milliseconds(5), maximum: Duration = .seconds(1000)) {
            self.base = base
            self.maximum = maximum
        }
    }

    struct State {
        var queue: [Key] = []
        var head = 0
        var queued: Set<Key> = []
        var processing: Set<Key> = []
        var dirty: Set<Key> = []
        /// Each delayed item's due time (the truth), and the same in a min-heap by due time so the next due item
        /// is found in O(log n): a controller requeues every target, so thousands wait here at once. Heap entries
        /// whose due time no longer matches `delayed` are stale and skipped.
        var delayed: [Key: ContinuousClock.Instant] = [:]
        var dueHeap = Heap<DueItem>()
        var failures: [Key: Int] = [:]
        var addedAt: [Key: ContinuousClock.Instant] = [:]
        var startedAt: [Key: ContinuousClock.Instant] = [:]
        var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
        var generation = 0
        var shuttingDown = false
        /// Callers of ``WorkQueue/drained()``: resumed once shut down with nothing in progress.
        var drainWaiters: [UUID: CheckedContinuation<Void, Never>] = [:]

        /// The drain waiters to resume, when the queue is shut down and idle.
        mutating func drainedWaiters() -> [CheckedContinuation<Void, Never>] {
            guard self.shuttingDown, self.processing.isEmpty else { return [] }
            defer { self.drainWaiters = [:] }
            return Array(self.drainWaiters.values)
        }

        var depth: Int { self.queue.count - self.head }

        mutating func enqueue(_ key: Key, now: ContinuousClock.Instant) -> [CheckedContinuation<Void, Never>] {
            if self.processing.contains(key) {
                self.dirty.insert(key)
                return []
            }
            guard self.queued.insert(key).inserted else { return [] }
            self.queue.append(key)
            self.addedAt[key] = now
            return self.wake()
        }

        mutating func wake() -> [CheckedContinuation<Void, Never>] {
            self.generation += 1
            let waiters = Array(self.waiters.values)
            self.waiters.removeAll()
            return waiters
        }

        /// Moves due delayed items to the queue; returns the waiters to resume (dropping them would leave their
        /// `next()` calls suspended forever).
        mutating func promoteDue(now: ContinuousClock.Instant) -> [CheckedContinuation<Void, Never>] {
            var waiters: [CheckedContinuation<Void, Never>] = []
            while let item = self.dueHeap.min, item.due <= now {
                self.dueHeap.removeMin()
                guard self.delayed[item.key] == item.due else { continue }
                self.delayed.removeValue(forKey: item.key)
                waiters += self.enqueue(item.key, now: now)
            }
            return waiters
        }

        /// When the next delayed item falls due (stale heap entries are dropped on the way).
        mutating func nextDue() -> ContinuousClock.Instant? {
            while let item = self.dueHeap.min, self.delayed[item.key] != item.due {
                self.dueHeap.removeMin()
            }
            return self.dueHeap.min?.due
        }

        /// Delays `key` until `due`; true when that is sooner than every other delayed item (sleeping workers
        /// wait for the earliest one, so only then do they need waking).
        mutating func delay(_ key: Key, until due: ContinuousClock.Instant) -> Bool {
            let earliest = self.nextDue()
            self.delayed[key] = due
            self.dueHeap.insert(DueItem(due: due, key: key))
            return earliest.map { due < $0 } ?? true
        }
    }

    struct DueItem: Comparable {
        var due: ContinuousClock.Instant
        var key: Key
        static func < (left: DueItem, right: DueItem) -> Bool { left.due < right.due }
    }

    public let name: String
    public let rateLimit: RateLimit
    /// Where the queue reads the time and waits for delays (a manual clock in tests).
    public let clock: any WorkQueueClock
    let state = Mutex(State())
    let depthGauge: Gauge
    let addsCounter: Counter
    let retriesCounter: Counter
    let queueDuration: Metrics.Timer
    let workDuration: Metrics.Timer
    let unfinishedWorkGauge: Gauge
    let longestRunningGauge: Gauge

    public init(
        name: String,
        rateLimit: RateLimit = .init(),
        clock: any WorkQueueClock = ContinuousWorkQueueClock(),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.name = name
        self.rateLimit = rateLimit
        self.clock = clock
        let dimensions = [("name", name), ("controller", name)]
        self.depthGauge = Gauge(label: "workqueue_depth", dimensions: dimensions, factory: metricsFactory)
        self.addsCounter = Counter(label: "workqueue_adds_total", dimensions: dimensions, factory: metricsFactory)
        self.retriesCounter = Counter(label: "workqueue_retries_total", dimensions: dimensions, factory: metricsFactory)
        self.queueDuration = Metrics.Timer(
            label: "workqueue_queue_duration_seconds",
            dimensions: dimensions,
            factory: metricsFactory
        )
        self.workDuration = Metrics.Timer(
            label: "workqueue_work_duration_seconds",
            dimensions: dimensions,
            factory: metricsFactory
        )
        self.unfinishedWorkGauge = Gauge(
            label: "workqueue_unfinished_work_seconds",
            dimensions: dimensions,
            factory: metricsFactory
        )
        self.longestRunningGauge = Gauge(
            label: "workqueue_longest_running_processor_seconds",
            dimensions: dimensions,
            factory: metricsFactory
        )
    }

    /// How often ``runMetricsUpdates(every:)`` refreshes the in-progress gauges (client-go: 500 ms).
    public static var unfinishedWorkUpdatePeriod: Duration { .milliseconds(500) }

    /// The work in progress as client-go's `updateUnfinishedWork` measures it: the summed seconds every item being
    /// processed has run so far, and the seconds of the longest-running one (both 0 when nothing is processing).
    public func unfinishedWork(
        now: ContinuousClock.Instant? = nil
    ) -> (unfinishedSeconds: Double, longestRunningSeconds: Double) {
        let now = now ?? self.clock.now
        let ages = self.state.withLock { state in state.startedAt.values.map { now - $0 } }
        var total = 0.0
        var longest = 0.0
        for age in ages {
            let seconds = age.seconds
            total += seconds
            longest = max(longest, seconds)
        }
        return (total, longest)
    }

    /// Records `workqueue_unfinished_work_seconds` and `workqueue_longest_running_processor_seconds` now.
    public func updateUnfinishedWork() {
        let (total, longest) = self.unfinishedWork()
        self.unfinishedWorkGauge.record(total)
        self.longestRunningGauge.record(longest)
    }

    /// Refreshes the in-progress gauges periodically (as client-go's `updateUnfinishedWorkLoop` does) until the
    /// queue shuts down or the task is cancelled.
    public func runMetricsUpdates(every period: Duration = .milliseconds(500)) async {
        while !self.isShuttingDown && !Task.isCancelled {
            self.updateUnfinishedWork()
            do { try await self.clock.sleep(until: self.clock.now + period) } catch { break }
        }
        self.updateUnfinishedWork()
    }

    /// Adds an item now.
    public func add(_ key: Key) {
        let (waiters, depth) = self.state.withLock { state -> ([CheckedContinuation<Void, Never>], Int) in
            guard !state.shuttingDown else { return ([], state.depth) }
            state.delayed.removeValue(forKey: key)
            return (state.enqueue(key, now: self.clock.now), state.depth)
        }
        self.addsCounter.increment()
        self.depthGauge.record(depth)
        for waiter in waiters { waiter.resume() }
    }

    /// Adds an item after a delay (an earlier pending delay wins).
    public func add(_ key: Key, after delay: Duration) {
        if delay <= .zero { return self.add(key) }
        let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.shuttingDown else { return [] }
            let due = self.clock.now + delay
            if let existing = state.delayed[key], existing <= due { return [] }
            return state.delay(key, until: due) ? state.wake() : []
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Adds an item after its per-key failure backoff and counts a retry.
    public func addRateLimited(_ key: Key) {
        let delay = self.state.withLock { state -> Duration in
            let failures = state.failures[key, default: 0]
            state.failures[key] = failures + 1
            let factor = pow(2.0, Double(min(failures, 40)))
            return min(self.rateLimit.maximum, self.rateLimit.base * factor)
        }
        self.retriesCounter.increment()
        self.add(key, after: delay)
    }

    /// Resets the failure backoff of an item.
    public func forget(_ key: Key) { self.state.withLock { _ = $0.failures.removeValue(forKey: key) } }

    /// The number of failures recorded for an item.
    public func failures(_ key: Key) -> Int { self.state.withLock { $0.failures[key, default: 0] } }

    /// Items waiting (not processing, not delayed).
    public var depth: Int { self.state.withLock { $0.depth } }

    /// Items waiting for their delay (a requeue after, or a failure backoff).
    public var delayedCount: Int { self.state.withLock { $0.delayed.count } }

    /// Items being processed.
    public var processingCount: Int { self.state.withLock { $0.processing.count } }

    /// Callers of ``next()`` waiting for an item.
    public var waitingCount: Int { self.state.withLock { $0.waiters.count } }

    enum Step {
        case item(Key, ContinuousClock.Instant?)
        case wait(generation: Int, until: ContinuousClock.Instant?)
        case finished
    }

    /// Takes the next item, waiting for one; nil once the queue shuts down. Call ``done(_:)`` afterwards.
    public func next() async -> Key? {
        while true {
            let now = self.clock.now
            var woken: [CheckedContinuation<Void, Never>] = []
            let step = self.state.withLock { state -> Step in
                if state.shuttingDown { return .finished }
                woken = state.promoteDue(now: now)
                if state.head < state.queue.count {
                    let key = state.queue[state.head]
                    state.head += 1
                    if state.head > 1024, state.head * 2 > state.queue.count {
                        state.queue.removeFirst(state.head)
                        state.head = 0
                    }
                    state.queued.remove(key)
                    state.processing.insert(key)
                    state.startedAt[key] = now
                    return .item(key, state.addedAt.removeValue(forKey: key))
                }
                return .wait(generation: state.generation, until: state.nextDue())
            }
            // Other workers waiting for a change: promoted items are one.
            for waiter in woken { waiter.resume() }
            switch step {
            case .finished:
                return nil
            case .item(let key, let addedAt):
                if let addedAt { self.queueDuration.recordNanoseconds((now - addedAt).nanoseconds) }
                self.depthGauge.record(self.depth)
                return key
            case .wait(let generation, let until):
                if Task.isCancelled { return nil }
                await self.waitForChange(generation: generation, until: until)
            }
        }
    }

    private func waitForChange(generation: Int, until: ContinuousClock.Instant?) async {
        let id = UUID()
        await withTaskGroup(of: Void.self) { group in
            if let until {
                group.addTask { try? await self.clock.sleep(until: until) }
            }
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let resumeNow = self.state.withLock { state -> Bool in
                            if state.generation != generation || state.shuttingDown || Task.isCancelled { return true }
                            state.waiters[id] = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    self.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Marks an item finished; if it was added while processing, it is queued again.
    public func done(_ key: Key) {
        let (waiters, started) = self.state.withLock {
            state -> ([CheckedContinuation<Void, Never>], ContinuousClock.Instant?) in
            state.processing.remove(key)
            let started = state.startedAt.removeValue(forKey: key)
            if state.dirty.remove(key) != nil, !state.shuttingDown {
                return (state.enqueue(key, now: self.clock.now), started)
            }
            return (state.drainedWaiters(), started)
        }
        if let started { self.workDuration.recordNanoseconds((self.clock.now - started).nanoseconds) }
        self.updateUnfinishedWork()
        for waiter in waiters { waiter.resume() }
    }

    /// Stops handing out items; waiting ``next()`` calls return nil.
    public func shutdown() {
        let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.shuttingDown = true
            return state.wake() + state.drainedWaiters()
        }
        for waiter in waiters { waiter.resume() }
    }

    public var isShuttingDown: Bool { self.state.withLock { $0.shuttingDown } }

    /// Returns once the queue is shut down and no item is in progress: every started reconcile finished.
    public func drained() async {
        let id = UUID()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = self.state.withLock { state -> Bool in
                if state.shuttingDown, state.processing.isEmpty { return true }
                state.drainWaiters[id] = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

/// The time source of a ``WorkQueue``: the continuous clock in production; tests pass a manual clock, so delays
/// and durations are exact and no test sleeps.
public protocol WorkQueueClock: Sendable {
    var now: ContinuousClock.Instant { get }
    /// Returns at `deadline` (at once if it passed); throws when the task is cancelled.
    func sleep(until deadline: ContinuousClock.Instant) async throws
}

/// The continuous clock.
public struct ContinuousWorkQueueClock: WorkQueueClock {
    public init() {}
    public var now: ContinuousClock.Instant { .now }
    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        try await Task.sleep(until: deadline, clock: .continuous)
    }
}
