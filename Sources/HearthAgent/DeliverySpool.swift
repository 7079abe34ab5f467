// DeliverySpool.swift: the bounded queues between the sampler and Pyroscope. They hold batches (one per backend per
// upload interval), one FIFO per backend, up to one byte budget; when it is exceeded the fullest backend loses its
// oldest batch, counted: while a Pyroscope is down the agent's memory stays flat, the newest data wins, and one
// backend's outage never costs another backend its profiles.

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

/// A bounded spool with one FIFO per backend (URL and tenant) and an async wait for each backend's next batch.
///
/// Backends share the byte budget fairly: when it is exceeded, the oldest batch of the backend holding the most
/// bytes is dropped, so a backend that is down or slow loses its own oldest profiles, never another backend's.
public final class DeliverySpool: Sendable {
    struct State {
        var queues: [AgentConfiguration.Backend: [PushBatch]] = [:]
        var bytesByBackend: [AgentConfiguration.Backend: Int] = [:]
        var bytes = 0
        var count = 0
        var nextID: UInt64 = 1
        var droppedProfiles = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        var closed = false

        /// The backend whose oldest batch goes first when the budget is exceeded: the one holding the most bytes,
        /// never the batch `keeping` alone.
        func largestQueue(keeping: UInt64) -> AgentConfiguration.Backend? {
            self.queues.filter { $0.value.first.map { $0.id != keeping } ?? false }
                .max { self.bytesByBackend[$0.key, default: 0] < self.bytesByBackend[$1.key, default: 0] }?.key
        }

        mutating func removeFirst(of backend: AgentConfiguration.Backend) -> PushBatch {
            self.remove(at: 0, of: backend)
        }

        /// Takes a batch out of its backend's queue, keeping the byte counts and dropping an emptied queue.
        mutating func remove(at index: Int, of backend: AgentConfiguration.Backend) -> PushBatch {
            let batch = self.queues[backend]!.remove(at: index)
            self.account(batch, sign: -1)
            if self.queues[backend]!.isEmpty { self.queues[backend] = nil }
            return batch
        }

        mutating func account(_ batch: PushBatch, sign: Int) {
            self.bytes += sign * batch.bytes
            self.count += sign
            self.bytesByBackend[batch.backend, default: 0] += sign * batch.bytes
            if self.bytesByBackend[batch.backend] == 0 { self.bytesByBackend[batch.backend] = nil }
        }
    }

    public let limitBytes: Int
    private let state = Mutex(State())

    /// - Parameter limitBytes: the most compressed profile bytes held; the newest batch is always kept.
    public init(limitBytes: Int) {
        self.limitBytes = limitBytes
    }

    /// Adds a batch; returns how many profiles were dropped (the oldest of the fullest backend first) to stay
    /// within the budget.
    @discardableResult
    public func enqueue(_ batch: PushBatch) -> Int {
        let (dropped, waiters) = self.state.withLock { state -> (Int, [CheckedContinuation<Void, Never>]) in
            var batch = batch
            batch.id = state.nextID
            state.nextID += 1
            state.queues[batch.backend, default: []].append(batch)
            state.account(batch, sign: 1)
            var dropped = 0
            while state.bytes > self.limitBytes, let fullest = state.largestQueue(keeping: batch.id) {
                dropped += state.removeFirst(of: fullest).profileCount
            }
            state.droppedProfiles += dropped
            let waiters = state.waiters
            state.waiters = []
            return (dropped, waiters)
        }
        for waiter in waiters { waiter.resume() }
        return dropped
    }

    /// The oldest batch of any backend, waiting until there is one; nil once closed and empty. It stays queued
    /// (and can be dropped by a newer batch) until ``remove(_:)``.
    public func first() async -> PushBatch? {
        await self.next { state in
            state.queues.values.compactMap(\.first).min { $0.id < $1.id }
        }
    }

    /// The oldest batch for `backend`, waiting until there is one; nil once closed and empty for it.
    public func first(for backend: AgentConfiguration.Backend) async -> PushBatch? {
        await self.next { state in state.queues[backend]?.first }
    }

    /// A backend with batches queued that is not in `known`, waiting until there is one; nil once closed and no
    /// such backend is left. The pusher starts one delivery loop per backend it returns.
    public func nextBackend(notIn known: Set<AgentConfiguration.Backend>) async -> AgentConfiguration.Backend? {
        await self.next { state in state.queues.keys.first { !known.contains($0) } }
    }

    private func next<Value: Sendable>(_ find: @Sendable (State) -> Value?) async -> Value? {
        while true {
            // nil: wait; .some(nil): closed with nothing found.
            let next = self.state.withLock { state -> Value?? in
                if let value = find(state) { return .some(value) }
                return state.closed ? .some(nil) : nil
            }
            switch next {
            case .some(let found): return found
            case .none:
                await withCheckedContinuation { continuation in
                    let resumeNow = self.state.withLock { state -> Bool in
                        if find(state) != nil || state.closed { return true }
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
            for (backend, batches) in state.queues {
                if let index = batches.firstIndex(where: { $0.id == id }) {
                    _ = state.remove(at: index, of: backend)
                    return
                }
            }
        }
    }

    /// Whether the batch is still queued (not dropped for a newer one).
    public func contains(_ id: UInt64) -> Bool {
        self.state.withLock { state in state.queues.values.contains { $0.contains { $0.id == id } } }
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
    /// Compressed profile bytes held now for one backend.
    public func bytes(for backend: AgentConfiguration.Backend) -> Int {
        self.state.withLock { $0.bytesByBackend[backend, default: 0] }
    }
    /// Batches held now.
    public var count: Int { self.state.withLock { $0.count } }
    /// Profiles dropped so far.
    public var droppedProfiles: Int { self.state.withLock { $0.droppedProfiles } }
}
