// DeliverySpool.swift: the bounded queue between the sampler and Pyroscope. It holds batches (one per backend per
// upload interval) up to a byte budget and drops the oldest first when the budget is exceeded, counting what it
// dropped: while Pyroscope is down the agent's memory stays flat and the newest data wins.

import Foundation
import HearthAPI
import Synchronization

/// One series: its labels and its gzipped pprof profiles, each within the server's per-profile limits.
public struct ProfileSeries: Sendable, Hashable {
    public var labels: [String: String]
    public var profiles: [[UInt8]]

    public init(labels: [String: String], profiles: [[UInt8]]) {
        self.labels = labels
        self.profiles = profiles
    }

    var bytes: Int { self.profiles.reduce(0) { $0 + $1.count } }
}

/// What one upload interval produced for one backend.
public struct PushBatch: Sendable {
    public var id: UInt64 = 0
    public var backend: AgentConfiguration.Backend
    public var series: [ProfileSeries]
    /// The interval the profiles cover (for the legacy `/ingest` API's `from` and `until`).
    public var start: Date
    public var end: Date

    public init(backend: AgentConfiguration.Backend, series: [ProfileSeries], start: Date, end: Date) {
        self.backend = backend
        self.series = series
        self.start = start
        self.end = end
    }

    var bytes: Int { self.series.reduce(0) { $0 + $1.bytes } }
    var profileCount: Int { self.series.reduce(0) { $0 + $1.profiles.count } }
}

/// A bounded, drop-oldest FIFO of batches with an async wait for the next one.
public final class DeliverySpool: Sendable {
    struct State {
        var batches: [PushBatch] = []
        var bytes = 0
        var nextID: UInt64 = 1
        var droppedProfiles = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }

    public let limitBytes: Int
    private let state = Mutex(State())

    /// - Parameter limitBytes: the most compressed profile bytes held; the newest batch is always kept.
    public init(limitBytes: Int) {
        self.limitBytes = limitBytes
    }

    /// Adds a batch; returns how many profiles were dropped (oldest first) to stay within the budget.
    @discardableResult
    public func enqueue(_ batch: PushBatch) -> Int {
        let (dropped, waiters) = self.state.withLock { state -> (Int, [CheckedContinuation<Void, Never>]) in
            var batch = batch
            batch.id = state.nextID
            state.nextID += 1
            state.batches.append(batch)
            state.bytes += batch.bytes
            var dropped = 0
            while state.bytes > self.limitBytes, state.batches.count > 1 {
                let oldest = state.batches.removeFirst()
                state.bytes -= oldest.bytes
                dropped += oldest.profileCount
            }
            state.droppedProfiles += dropped
            let waiters = state.waiters
            state.waiters = []
            return (dropped, waiters)
        }
        for waiter in waiters { waiter.resume() }
        return dropped
    }

    /// The oldest batch, waiting until there is one; nil once closed and empty. It stays queued (and can be
    /// dropped by a newer batch) until ``remove(_:)``.
    public func first() async -> PushBatch? {
        while true {
            enum Next {
                case batch(PushBatch)
                case done
                case wait
            }
            let next = self.state.withLock { state -> Next in
                if let batch = state.batches.first { return .batch(batch) }
                return state.closed ? .done : .wait
            }
            switch next {
            case .batch(let batch): return batch
            case .done: return nil
            case .wait:
                await withCheckedContinuation { continuation in
                    let resumeNow = self.state.withLock { state -> Bool in
                        if !state.batches.isEmpty || state.closed { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    /// Removes a batch that was delivered or given up on (a no-op when it was already dropped).
    public func remove(_ id: UInt64) {
        self.state.withLock { state in
            if let index = state.batches.firstIndex(where: { $0.id == id }) {
                state.bytes -= state.batches.remove(at: index).bytes
            }
        }
    }

    /// Whether the batch is still queued (not dropped for a newer one).
    public func contains(_ id: UInt64) -> Bool {
        self.state.withLock { state in state.batches.contains { $0.id == id } }
    }

    /// Wakes waiters; ``first()`` returns nil once the spool is empty.
    public func close() {
        let waiters = self.state.withLock { state in
            state.closed = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Compressed profile bytes held now.
    public var bytes: Int { self.state.withLock { $0.bytes } }
    /// Batches held now.
    public var count: Int { self.state.withLock { $0.batches.count } }
    /// Profiles dropped so far.
    public var droppedProfiles: Int { self.state.withLock { $0.droppedProfiles } }
}
