// Watcher.swift: list then watch, as an AsyncSequence that never gives up: resumes from the last
// resourceVersion, relists on 410 Gone, reconnects with backoff, and times out idle streams.

import KubeClient
import KubeModel
import Logging

/// What the watcher reports. A relist is `initStarted`, `initApply` for every object, then `initDone`; objects
/// seen before but not re-applied in between are gone.
public enum WatcherEvent<Object: KubeObject>: Sendable {
    case initStarted
    case initApply(Object)
    case initDone
    case apply(Object)
    case delete(Object)
}

/// A list+watch of one resource, as an AsyncSequence of ``WatcherEvent``.
///
/// The sequence ends only when the consuming task is cancelled. Failures are retried with ``Backoff``; failed
/// attempts 1, 2, 4, 8, ... are logged at info and the others at debug, so an unreachable server does not cause a
/// log storm.
public struct Watcher<Object: KubeObject>: AsyncSequence, Sendable {
    /// Watcher settings.
    public struct Configuration: Sendable {
        public var labelSelector: String?
        public var fieldSelector: String?
        /// List page size (default 500).
        public var pageSize: Int = 500
        /// Server-side watch timeout, randomized in [min, 2·min] per watch (default 150 s → 150–300 s).
        public var minTimeoutSeconds: Int = 150
        public var bookmarks: Bool = true
        public var backoff: Backoff = Backoff()
        /// Told of every failed list or watch (what failed, and why), before the retry: a controller keeps the
        /// last one to name it when its caches never sync.
        public var onFailure: (@Sendable (String, any Error) -> Void)?

        public init(labelSelector: String? = nil, fieldSelector: String? = nil) {
            self.labelSelector = labelSelector
            self.fieldSelector = fieldSelector
        }
    }

    public typealias Element = WatcherEvent<Object>

    public let resource: ResourceClient<Object>
    public let configuration: Configuration
    public let logger: Logger

    public init(_ resource: ResourceClient<Object>, configuration: Configuration = .init(), logger: Logger) {
        self.resource = resource
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "k8s.resource"] = "\(resource.type.qualifiedName)"
        self.logger = logger
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(resource: self.resource, configuration: self.configuration, logger: self.logger)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        enum State {
            case needList
            /// A list in progress: the next page's continue token. Pages are handed out as they arrive, so a list
            /// of 10,000 objects never holds more than one page of them before the store transforms them.
            case listing(continueToken: String)
            case needWatch
            case watching(WatchEventStream<Object>.AsyncIterator)
        }

        let resource: ResourceClient<Object>
        let configuration: Configuration
        let logger: Logger
        var state: State = .needList
        var pending: [Element] = []
        var pendingIndex = 0
        var resourceVersion = ""
        var backoff: Backoff
        var failures = 0

        init(resource: ResourceClient<Object>, configuration: Configuration, logger: Logger) {
            self.resource = resource
            self.configuration = configuration
            self.logger = logger
            self.backoff = configuration.backoff
        }

        mutating func fail(_ what: String, _ error: any Error) async -> Bool {
            self.failures += 1
            self.configuration.onFailure?(what, error)
            let delay = self.backoff.next()
            // Libraries log at info or below; attempts 1, 2, 4, 8, ... at info, the rest at debug, so an outage
            // that lasts hours logs a few dozen lines, not one per retry.
            let level: Logger.Level = self.failures & (self.failures - 1) == 0 ? .info : .debug
            self.logger.log(
                level: level,
                "\(what) failed; retrying",
                metadata: [
                    "error": "\(error)", "retry.in": "\(delay)", "retry.attempt": "\(self.failures)",
                ]
            )
            do { try await Task.sleep(for: delay) } catch { return false }
            return true
        }

        mutating func succeeded() {
            self.failures = 0
        }

        public mutating func next() async throws -> Element? {
            try await self.next(isolation: nil)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> Element? {
            while !Task.isCancelled {
                if self.pendingIndex < self.pending.count {
                    defer { self.pendingIndex += 1 }
                    return self.pending[self.pendingIndex]
                }
                self.pending.removeAll(keepingCapacity: true)
                self.pendingIndex = 0
                switch self.state {
                case .needList, .listing:
                    var options = ListOptions(
                        labelSelector: self.configuration.labelSelector,
                        fieldSelector: self.configuration.fieldSelector
                    )
                    options.limit = self.configuration.pageSize
                    let first: Bool
                    if case .listing(let token) = self.state {
                        options.continueToken = token
                        first = false
                    } else {
                        first = true
                    }
                    do {
                        let page = try await self.resource.list(options)
                        if first { self.resourceVersion = page.metadata.resourceVersion ?? "" }
                        self.pending = (first ? [.initStarted] : []) + page.items.map { .initApply($0) }
                        if let token = page.metadata.continue, !token.isEmpty {
                            self.state = .listing(continueToken: token)
                        } else {
                            self.pending.append(.initDone)
                            self.state = .needWatch
                            self.succeeded()
                            self.logger.debug("listed", metadata: ["k8s.rv": "\(self.resourceVersion)"])
                        }
                    } catch {
                        // A later page failed (its token may have expired): the list starts over, and its
                        // initStarted discards what the store received of this one.
                        self.state = .needList
                        if !(await self.fail("list", error)) { return nil }
                    }
                case .needWatch:
                    let minimum = Swift.max(1, self.configuration.minTimeoutSeconds)
                    let options = WatchOptions(
                        resourceVersion: self.resourceVersion,
                        labelSelector: self.configuration.labelSelector,
                        fieldSelector: self.configuration.fieldSelector,
                        allowWatchBookmarks: self.configuration.bookmarks,
                        timeoutSeconds: Int.random(in: minimum...(2 * minimum))
                    )
                    do {
                        let stream = try await self.resource.watch(options)
                        self.state = .watching(stream.makeAsyncIterator())
                    } catch let error as KubeError where error.code == .gone {
                        self.logger.info(
                            "watch resourceVersion expired; relisting",
                            metadata: ["k8s.rv": "\(self.resourceVersion)"]
                        )
                        self.state = .needList
                    } catch {
                        if !(await self.fail("watch", error)) { return nil }
                    }
                case .watching(var iterator):
                    let event: WatchEvent<Object>?
                    do {
                        event = try await iterator.next(isolation: actor)
                    } catch {
                        self.state = .needWatch
                        if Task.isCancelled { return nil }
                        if !(await self.fail("watch stream", error)) { return nil }
                        continue
                    }
                    guard let event else {
                        // The server ended the watch (its timeout): resume from the last version seen.
                        self.state = .needWatch
                        continue
                    }
                    self.state = .watching(iterator)
                    if let rv = event.object.metadata.resourceVersion, !rv.isEmpty, event.type != .error {
                        self.resourceVersion = rv
                    }
                    switch event.type {
                    case .added, .modified:
                        self.succeeded()
                        return .apply(event.object)
                    case .deleted:
                        self.succeeded()
                        return .delete(event.object)
                    case .bookmark:
                        self.succeeded()
                    case .error:
                        let status = event.status
                        if status?.code == 410 || status?.reason == "Expired" || status?.reason == "Gone" {
                            self.logger.info(
                                "watch resourceVersion expired; relisting",
                                metadata: ["k8s.rv": "\(self.resourceVersion)"]
                            )
                            self.state = .needList
                        } else {
                            self.state = .needWatch
                            let error = KubeError(httpStatus: status?.code ?? 500, status: status)
                            if !(await self.fail("watch", error)) { return nil }
                        }
                    default:
                        continue
                    }
                }
            }
            return nil
        }
    }
}
