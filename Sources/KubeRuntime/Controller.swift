// Controller.swift: watches a primary kind plus owned and mapped kinds, and calls reconcile(key) with
// controller-runtime's result semantics and metric names.

import HearthBase
import KubeClient
import KubeModel
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// What a reconcile asks for next.
public struct ReconcileResult: Sendable, Hashable {
    /// Requeue after this delay (resets the failure backoff).
    public var requeueAfter: Duration?

    public init(requeueAfter: Duration? = nil) { self.requeueAfter = requeueAfter }

    /// Done until the next change.
    public static let done = ReconcileResult()
    /// Reconcile again after `delay`.
    public static func requeue(after delay: Duration) -> Self { .init(requeueAfter: delay) }
}

/// An error that retrying cannot fix: counted and logged, never requeued.
public struct TerminalError: Error, Sendable {
    public var cause: any Error & Sendable
    public init(_ cause: any Error & Sendable) { self.cause = cause }
}

/// A controller failure that no retry fixes: the process should stop and say why.
public struct ControllerError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum _Code: String { case cacheSyncTimeout }
        private let code: _Code
        private init(_ code: _Code) { self.code = code }
        /// A cache did not complete its first list in time (controller-runtime's "failed to wait for caches to
        /// sync"): a list the RBAC forbids, a missing CRD, an unreachable server.
        public static let cacheSyncTimeout = Code(.cacheSyncTimeout)
        public var description: String { self.code.rawValue }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(code: Code, message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        "ControllerError(\(self.code)): \(self.message)" + (self.cause.map { " (cause: \($0))" } ?? "")
    }
}

/// Level-triggered reconciliation of one object, read from the store by key.
public protocol Reconciler: Sendable {
    func reconcile(_ key: ObjectKey) async throws -> ReconcileResult
}

/// A reconciler from a closure.
public struct ReconcileFunction: Reconciler {
    let body: @Sendable (ObjectKey) async throws -> ReconcileResult
    public init(_ body: @escaping @Sendable (ObjectKey) async throws -> ReconcileResult) { self.body = body }
    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult { try await self.body(key) }
}

/// A controller: reflectors feeding stores and a work queue, and bounded workers calling the reconciler.
public struct Controller<Primary: KubeObject>: ServiceLifecycle.Service {
    /// Controller settings.
    public struct Configuration: Sendable {
        /// Workers (controller-runtime MaxConcurrentReconciles, default 1).
        public var maxConcurrentReconciles = 1
        /// Every object is enqueued again this often as a safety net (default 10 h, 0 disables).
        public var resyncPeriod: Duration = .seconds(36_000)
        public var watcher = Watcher<Primary>.Configuration()
        public var rateLimit = WorkQueue<ObjectKey>.RateLimit()
        /// How long workers wait for every cache's first list before the controller fails, naming the caches
        /// that did not list and their last error (controller-runtime's CacheSyncTimeout, 2 min).
        public var cacheSyncTimeout: Duration = .seconds(120)
        public init() {}
    }

    typealias Source = @Sendable (WorkQueue<ObjectKey>, Logger) async -> Void

    /// One cache the workers wait for: its name for errors, and the last failure of its watcher.
    struct CacheSync: Sendable {
        var name: String
        var wait: @Sendable () async -> Void
        var synced: @Sendable () -> Bool
        var lastFailure: WatchFailure
    }

    /// Why the controller stopped by itself.
    final class FailureBox: Sendable {
        let error = Mutex<ControllerError?>(nil)
    }

    /// The last failed list or watch of one watcher, as text.
    final class WatchFailure: Sendable {
        let last = Mutex<String?>(nil)
        func record(_ what: String, _ error: any Error) { self.last.withLock { $0 = "\(what): \(error)" } }
        var description: String? { self.last.withLock { $0 } }
    }

    public let name: String
    public let store: Store<Primary>
    public let queue: WorkQueue<ObjectKey>
    let primary: ResourceClient<Primary>
    let reconciler: any Reconciler
    let configuration: Configuration
    let logger: Logger
    let metricsFactory: any MetricsFactory
    var sources: [Source] = []
    /// One per watched kind: workers start once every one has listed.
    var cacheSyncs: [CacheSync] = []
    /// Services that run beside the workers while the controller runs, started once the caches synced.
    var services: [any ServiceLifecycle.Service] = []
    let primaryFailure = WatchFailure()

    public init(
        name: String,
        watching primary: ResourceClient<Primary>,
        store: Store<Primary> = Store(),
        configuration: Configuration = .init(),
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        reconciler: any Reconciler
    ) {
        self.name = name
        self.primary = primary
        self.store = store
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "controller"] = "\(name)"
        self.logger = logger
        self.metricsFactory = metricsFactory
        self.reconciler = reconciler
        self.queue = WorkQueue(name: name, rateLimit: configuration.rateLimit, metricsFactory: metricsFactory)
    }

    /// Also watches a kind and maps each of its objects to primary keys.
    ///
    /// `mapsFirstList: false` skips the map for the objects of the first list: right for a map that only names
    /// primary objects, which the primary's own first list enqueues anyway. Ten thousand pods then cost no
    /// selector matching at start.
    public func watches<Other: KubeObject>(
        _ resource: ResourceClient<Other>,
        store: Store<Other> = Store(),
        configuration: Watcher<Other>.Configuration = .init(),
        mapsFirstList: Bool = true,
        map: @escaping @Sendable (Other) -> [ObjectKey]
    ) -> Self {
        var copy = self
        let failure = WatchFailure()
        var configuration = configuration
        configuration.onFailure = { what, error in failure.record(what, error) }
        copy.sources.append { [configuration] queue, logger in
            await Self.reflect(
                Watcher(resource, configuration: configuration, logger: logger),
                into: store,
                mapsFirstList: mapsFirstList
            ) { object in
                for key in map(object) { queue.add(key) }
            }
        }
        copy.cacheSyncs.append(
            CacheSync(
                name: Self.describe(resource, labelSelector: configuration.labelSelector),
                wait: { await store.waitUntilSynced() },
                synced: { store.hasSynced },
                lastFailure: failure
            )
        )
        return copy
    }

    /// Also runs `service` while the controller runs: started once every cache synced (so it reads complete
    /// caches), cancelled when the controller stops. Periodic work that only the leader may do goes here.
    public func running(_ service: some ServiceLifecycle.Service) -> Self {
        var copy = self
        copy.services.append(service)
        return copy
    }

    static func describe<Object: KubeObject>(_ resource: ResourceClient<Object>, labelSelector: String?) -> String {
        var name = resource.type.qualifiedName
        name +=
            resource.namespace.map { " in namespace \($0)" } ?? (resource.type.namespaced ? " (all namespaces)" : "")
        if let labelSelector { name += " with labels \(labelSelector)" }
        return name
    }

    /// Waits for every cache's first list, at most `cacheSyncTimeout`; past it, the error naming those that did not
    /// list.
    func cacheSyncFailure() async -> ControllerError? {
        let primaryStore = self.store
        let caches =
            [
                CacheSync(
                    name: Self.describe(self.primary, labelSelector: self.configuration.watcher.labelSelector),
                    wait: { await primaryStore.waitUntilSynced() },
                    synced: { primaryStore.hasSynced },
                    lastFailure: self.primaryFailure
                )
            ] + self.cacheSyncs
        let timeout = self.configuration.cacheSyncTimeout
        let synced = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for cache in caches { await cache.wait() }
                return !Task.isCancelled
            }
            group.addTask {
                do { try await Task.sleep(for: timeout) } catch { return true }
                return false
            }
            let first = await group.next() ?? true
            group.cancelAll()
            return first
        }
        guard !synced, !Task.isCancelled else { return nil }
        let missing = caches.filter { !$0.synced() }.map { cache in
            cache.name + (cache.lastFailure.description.map { " (last error: \($0))" } ?? " (no error reported)")
        }
        guard !missing.isEmpty else { return nil }
        return ControllerError(
            code: .cacheSyncTimeout,
            message: "controller \(self.name): caches not synced after \(timeout): "
                + missing.joined(separator: "; ")
        )
    }

    /// Also reconciles the keys an external source yields (controller-runtime's `source.Channel`, kube-rs's
    /// `reconcile_on`): a reconciler that changes shared state names the keys it affects here.
    public func reconcileOn(_ keys: AsyncStream<ObjectKey>) -> Self {
        var copy = self
        copy.sources.append { queue, _ in
            for await key in keys { queue.add(key) }
        }
        return copy
    }

    /// Also watches an owned kind: changes enqueue the controlling owner when it is of the primary kind.
    public func owns<Child: KubeObject>(
        _ resource: ResourceClient<Child>,
        store: Store<Child> = Store(),
        configuration: Watcher<Child>.Configuration = .init()
    ) -> Self {
        let kind = self.primary.type.kind
        let apiGroup = self.primary.type.group
        return self.watches(resource, store: store, configuration: configuration) { child in
            (child.metadata.ownerReferences ?? []).filter { owner in
                owner.controller == true && owner.kind == kind
                    && (owner.apiVersion ?? "").split(separator: "/").dropLast().joined(separator: "/") == apiGroup
            }.compactMap { owner in owner.name.map { ObjectKey(namespace: child.metadata.namespace, name: $0) } }
        }
    }

    /// Feeds a store from a watcher until cancelled, calling `changed` for every object event.
    static func reflect<Object: KubeObject>(
        _ watcher: Watcher<Object>,
        into store: Store<Object>,
        mapsFirstList: Bool = true,
        changed: @Sendable (Object) -> Void
    ) async {
        var relisted: [Object] = []
        var previous: [ObjectKey] = []
        var listedBefore = false
        do {
            for try await event in watcher {
                switch event {
                case .initStarted:
                    previous = store.keys
                    relisted = []
                    store.apply(event)
                case .initApply(let object):
                    // As the store keeps it (a pod without its spec): a relist may hold thousands until done.
                    if listedBefore || mapsFirstList { relisted.append(store.transform(object)) }
                    store.apply(event)
                case .initDone:
                    store.apply(event)
                    listedBefore = true
                    let seen = Set(
                        relisted.map { ObjectKey(namespace: $0.metadata.namespace, name: $0.metadata.name ?? "") }
                    )
                    for object in relisted { changed(object) }
                    // Objects gone during a relist still get a reconcile (as deletions).
                    for key in previous where !seen.contains(key) {
                        var ghost = Object()
                        ghost.metadata = ObjectMeta(name: key.name, namespace: key.namespace)
                        changed(ghost)
                    }
                    relisted = []
                case .apply(let object), .delete(let object):
                    store.apply(event)
                    changed(object)
                }
            }
        } catch {
            // The watcher only ends by cancellation.
        }
    }

    public func run() async throws {
        let queue = self.queue
        let logger = self.logger
        let dimensions = [("controller", self.name)]
        Gauge(
            label: "controller_runtime_max_concurrent_reconciles",
            dimensions: dimensions,
            factory: self.metricsFactory
        )
        .record(self.configuration.maxConcurrentReconciles)
        let primaryFailure = self.primaryFailure
        let watcherConfiguration = {
            var configuration = self.configuration.watcher
            configuration.onFailure = { what, error in primaryFailure.record(what, error) }
            return configuration
        }()
        let failure = FailureBox()
        try await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await Self.reflect(
                        Watcher(self.primary, configuration: watcherConfiguration, logger: logger),
                        into: self.store
                    ) { object in
                        queue.add(ObjectKey(namespace: object.metadata.namespace, name: object.metadata.name ?? ""))
                    }
                }
                for source in self.sources {
                    group.addTask { await source(queue, logger) }
                }
                group.addTask { await queue.runMetricsUpdates() }
                if self.configuration.resyncPeriod > .zero {
                    group.addTask {
                        while !Task.isCancelled {
                            do { try await Task.sleep(for: self.configuration.resyncPeriod) } catch { return }
                            for key in self.store.keys { queue.add(key) }
                        }
                    }
                }
                // Workers start once every cache has listed (controller-runtime's WaitForCacheSync), so a
                // reconcile never sees a half-filled cache.
                // A cache that never lists (a list the RBAC forbids) fails the controller loudly, naming it.
                group.addTask {
                    if let error = await self.cacheSyncFailure() {
                        logger.error("\(error.message)")
                        failure.error.withLock { $0 = error }
                        queue.shutdown()
                        return
                    }
                    guard !Task.isCancelled else { return }
                    logger.debug("caches synced; starting workers")
                    await withDiscardingTaskGroup { workers in
                        for _ in 0..<max(1, self.configuration.maxConcurrentReconciles) {
                            workers.addTask { await self.worker() }
                        }
                        for service in self.services {
                            workers.addTask {
                                do {
                                    try await service.run()
                                } catch {
                                    logger.warning("\(type(of: service)) ended", metadata: ["error": "\(error)"])
                                }
                            }
                        }
                    }
                }
                // Cancellation (not graceful shutdown) must also end the workers.
                await withTaskCancellationHandler {
                    await queue.drained()
                } onCancel: {
                    queue.shutdown()
                }
                // Shut down and every started reconcile finished: stop the watchers.
                group.cancelAll()
            }
        } onGracefulShutdown: {
            queue.shutdown()
        }
        if let error = failure.error.withLock({ $0 }) { throw error }
    }

    func worker() async {
        let dimensions = [("controller", self.name)]
        let active = Gauge(
            label: "controller_runtime_active_workers",
            dimensions: dimensions,
            factory: self.metricsFactory
        )
        let time = Metrics.Timer(
            label: "controller_runtime_reconcile_time_seconds",
            dimensions: dimensions,
            factory: self.metricsFactory
        )
        while let key = await self.queue.next() {
            var logger = self.logger
            logger[metadataKey: "k8s.object"] = "\(key)"
            active.record(self.queue.processingCount)
            let start = ContinuousClock.now
            let result: String
            do {
                let outcome = try await self.reconciler.reconcile(key)
                if let delay = outcome.requeueAfter {
                    self.queue.forget(key)
                    self.queue.add(key, after: delay)
                    result = "requeue_after"
                } else {
                    self.queue.forget(key)
                    result = "success"
                }
            } catch let error as TerminalError {
                self.queue.forget(key)
                logger.info("reconcile failed terminally", metadata: ["error": "\(error.cause)"])
                Counter(
                    label: "controller_runtime_terminal_reconcile_errors_total",
                    dimensions: dimensions,
                    factory: self.metricsFactory
                ).increment()
                Counter(
                    label: "controller_runtime_reconcile_errors_total",
                    dimensions: dimensions,
                    factory: self.metricsFactory
                ).increment()
                result = "error"
            } catch {
                // The first failure of a key is news (an RBAC denial, a webhook): say it with the server's
                // message. Its retries, with backoff, are at debug, so a lasting failure is no log storm.
                let level: Logger.Level = self.queue.failures(key) == 0 ? .warning : .debug
                self.queue.addRateLimited(key)
                logger.log(
                    level: level,
                    "reconcile failed; requeued with backoff",
                    metadata: ["error": "\(error)", "reconcile.failures": "\(self.queue.failures(key))"]
                )
                Counter(
                    label: "controller_runtime_reconcile_errors_total",
                    dimensions: dimensions,
                    factory: self.metricsFactory
                ).increment()
                result = "error"
            }
            time.recordNanoseconds((.now - start).nanoseconds)
            Counter(
                label: "controller_runtime_reconcile_total",
                dimensions: dimensions + [("result", result)],
                factory: self.metricsFactory
            ).increment()
            self.queue.done(key)
            active.record(self.queue.processingCount)
        }
    }
}
