// KubeTestServer+Watch.swift: watch streams: initial events, history replay, selectors, bookmarks, timeouts,
// 410 Gone after compaction, Table events, and fault injection.

import Foundation
import KubeModel
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Synchronization

struct WatchSetup: Sendable {
    var id: UUID
    var target: KubeTestServer.Target
    var labels: Selector
    var fields: Selector
    var stream: AsyncStream<WatchSignal>
    /// Events to send before live ones; nil when the requested version was compacted away.
    var initial: [(WatchEventType, JSONObject)]
    var backlog: [StoredEvent]?
    var requestedRV: String
    var currentRV: Int64
    var initialEventsEnd: Bool
}

struct WatchExpired: Error {}

extension KubeTestServer {
    func prepareWatch(_ request: HTTPRequest) throws -> WatchSetup? {
        guard request.method == "GET", request.flag("watch") else { return nil }
        guard let target = try self.target(request.path), target.name == nil else { return nil }
        let labels = try self.selector(request.query["labelSelector"])
        let fields = try self.selector(request.query["fieldSelector"])
        let rvString = request.query["resourceVersion"] ?? ""
        let sendInitial = request.flag("sendInitialEvents")
        if sendInitial, request.query["resourceVersionMatch"] != "NotOlderThan" {
            throw APIError.invalid(
                target.info,
                "",
                [
                    .forbidden(
                        "resourceVersionMatch",
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
                    )
                ]
            )
        }
        if !sendInitial, request.query["resourceVersionMatch"] != nil {
            throw APIError.invalid(
                target.info,
                "",
                [
                    .forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
                    )
                ]
            )
        }
        let (stream, continuation) = AsyncStream<WatchSignal>.makeStream()
        let id = UUID()
        let synthetic = rvString.isEmpty || rvString == "0" || sendInitial
        let requested = Int64(rvString)
        if rvString != "", requested == nil {
            throw APIError.badRequest("invalid resource version: \(rvString)")
        }
        let setup = try self.state.withLock { state throws -> WatchSetup in
            try state.validateFieldSelector(fields, target.info)
            if let requested, requested > state.rv {
                var error = APIError(
                    code: 504,
                    reason: "Timeout",
                    message: "Timeout: Too large resource version: \(requested), current: \(state.rv)",
                    details: .init(causes: [
                        StatusCause(reason: "ResourceVersionTooLarge", message: "Too large resource version")
                    ])
                )
                error.status.details?.retryAfterSeconds = 1
                throw error
            }
            var initial: [(WatchEventType, JSONObject)] = []
            if synthetic {
                initial = (state.objects[target.info.storageKey] ?? [:]).sorted { $0.key < $1.key }.map(\.value)
                    .filter {
                        state.matches($0, target.info, namespace: target.namespace, labels: labels, fields: fields)
                    }
                    .map { (.added, $0) }
            }
            let backlog = state.subscribe(
                id: id,
                from: synthetic ? nil : requested,
                continuation: continuation
            )
            return WatchSetup(
                id: id,
                target: target,
                labels: labels,
                fields: fields,
                stream: stream,
                initial: initial,
                backlog: backlog,
                requestedRV: rvString,
                currentRV: state.rv,
                initialEventsEnd: sendInitial
            )
        }
        continuation.onTermination = { [weak self] _ in self?.state.withLock { $0.unsubscribe(id: id) } }
        return setup
    }

    func streamWatch(_ watch: WatchSetup, request: HTTPRequest, outbound: Outbound, channel: any Channel) async throws {
        defer { self.state.withLock { $0.unsubscribe(id: watch.id) } }
        let info = watch.target.info
        let table = request.wantsTable
        let contentType = table ? "application/json;as=Table;v=v1;g=meta.k8s.io" : "application/json"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Cache-Control", value: "no-cache, private")
        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
        var sentColumns = false
        let split = self.faults.withLock { $0.splitWatchEvents }

        func send(_ type: WatchEventType, _ object: JSONObject) async throws {
            var object = object
            if type != .error { object["apiVersion"] = .string(info.type.apiVersion) }
            var payload = JSONValue.object(object)
            if table, type != .error, type != .bookmark {
                payload = self.state.withLock {
                    $0.table(
                        [object],
                        info,
                        includeObject: request.query["includeObject"],
                        listMeta: ["resourceVersion": object["metadata"]?["resourceVersion"] ?? ""],
                        withColumns: !sentColumns
                    )
                }
                sentColumns = true
            }
            var data = JSONValue.object(["type": .string(type.rawValue), "object": payload]).serialized()
            data.append(UInt8(ascii: "\n"))
            if split, data.count > 2 {
                let middle = data.count / 2
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: data[..<middle]))))
                try await Task.sleep(for: .milliseconds(20))
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: data[middle...]))))
            } else {
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: data))))
            }
        }

        guard let backlog = watch.backlog else {
            let status = APIError.gone("too old resource version: \(watch.requestedRV) (\(watch.currentRV))").status
            try await send(.error, status.object)
            try await outbound.write(.end(nil))
            return
        }
        for (type, object) in watch.initial { try await send(type, object) }
        if watch.initialEventsEnd {
            try await send(
                .bookmark,
                [
                    "kind": .string(info.type.kind),
                    "metadata": [
                        "resourceVersion": .string(String(watch.currentRV)),
                        "annotations": ["k8s.io/initial-events-end": "true"],
                    ],
                ]
            )
        }
        func deliver(_ event: StoredEvent) async throws {
            guard event.storageKey == info.storageKey else { return }
            if self.state.withLock({ $0.expiredWatchers.contains(watch.id) }) {
                let status = APIError.gone("too old resource version: \(lastRV) (\(event.rv))").status
                try await send(.error, status.object)
                throw WatchExpired()
            }
            let target = watch.target
            let newMatch = self.state.withLock {
                $0.matches(event.object, info, namespace: target.namespace, labels: watch.labels, fields: watch.fields)
            }
            let oldMatch =
                event.old.map { old in
                    self.state.withLock {
                        $0.matches(old, info, namespace: target.namespace, labels: watch.labels, fields: watch.fields)
                    }
                } ?? false
            switch event.type {
            case .added where newMatch: try await send(.added, event.object)
            case .modified where newMatch: try await send(oldMatch ? .modified : .added, event.object)
            case .modified where oldMatch: try await send(.deleted, event.object)
            case .deleted where newMatch || oldMatch: try await send(.deleted, event.object)
            default: break
            }
        }
        var lastRV = Int64(watch.requestedRV) ?? watch.currentRV
        for event in backlog {
            try await deliver(event)
            lastRV = event.rv
        }
        let bookmarks = request.flag("allowWatchBookmarks")
        let clock = ContinuousClock()
        let deadline = request.query["timeoutSeconds"].flatMap { Int($0) }.map { clock.now + .seconds($0) }
        var lastBookmark = clock.now
        for await signal in watch.stream {
            switch signal {
            case .event(let event):
                if event.rv <= lastRV { continue }
                do {
                    try await deliver(event)
                } catch is WatchExpired {
                    try await outbound.write(.end(nil))
                    return
                }
                lastRV = event.rv
            case .tick(let rv):
                if !channel.isActive { return }
                if let deadline, clock.now >= deadline {
                    try await outbound.write(.end(nil))
                    return
                }
                if bookmarks, clock.now - lastBookmark >= self.configuration.bookmarkInterval, rv >= lastRV {
                    lastBookmark = clock.now
                    lastRV = rv
                    try await send(
                        .bookmark,
                        ["kind": .string(info.type.kind), "metadata": ["resourceVersion": .string(String(rv))]]
                    )
                }
            case .drop:
                throw DropConnection()
            }
        }
    }
}
