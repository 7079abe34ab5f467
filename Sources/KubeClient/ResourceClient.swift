// ResourceClient.swift: typed verbs on one resource: get, list, watch, create, update, patch, apply, status,
// delete.

import AsyncHTTPClient
import Foundation
import KubeModel
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// Options of a list call.
public struct ListOptions: Sendable {
    public var labelSelector: String?
    public var fieldSelector: String?
    public var limit: Int?
    public var continueToken: String?
    public var resourceVersion: String?
    public var resourceVersionMatch: String?

    public init(
        labelSelector: String? = nil,
        fieldSelector: String? = nil,
        limit: Int? = nil,
        continueToken: String? = nil,
        resourceVersion: String? = nil,
        resourceVersionMatch: String? = nil
    ) {
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.limit = limit
        self.continueToken = continueToken
        self.resourceVersion = resourceVersion
        self.resourceVersionMatch = resourceVersionMatch
    }

    var query: [(String, String)] {
        var query: [(String, String)] = []
        if let labelSelector, !labelSelector.isEmpty { query.append(("labelSelector", labelSelector)) }
        if let fieldSelector, !fieldSelector.isEmpty { query.append(("fieldSelector", fieldSelector)) }
        if let limit { query.append(("limit", String(limit))) }
        if let continueToken, !continueToken.isEmpty { query.append(("continue", continueToken)) }
        if let resourceVersion { query.append(("resourceVersion", resourceVersion)) }
        if let resourceVersionMatch { query.append(("resourceVersionMatch", resourceVersionMatch)) }
        return query
    }
}

/// Options of a watch call.
public struct WatchOptions: Sendable {
    public var resourceVersion: String?
    public var labelSelector: String?
    public var fieldSelector: String?
    public var allowWatchBookmarks: Bool
    /// Asks the server to end the watch after this many seconds.
    public var timeoutSeconds: Int?
    public var sendInitialEvents: Bool

    public init(
        resourceVersion: String? = nil,
        labelSelector: String? = nil,
        fieldSelector: String? = nil,
        allowWatchBookmarks: Bool = true,
        timeoutSeconds: Int? = nil,
        sendInitialEvents: Bool = false
    ) {
        self.resourceVersion = resourceVersion
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.allowWatchBookmarks = allowWatchBookmarks
        self.timeoutSeconds = timeoutSeconds
        self.sendInitialEvents = sendInitialEvents
    }

    var query: [(String, String)] {
        var query: [(String, String)] = [("watch", "true")]
        if let resourceVersion { query.append(("resourceVersion", resourceVersion)) }
        if let labelSelector, !labelSelector.isEmpty { query.append(("labelSelector", labelSelector)) }
        if let fieldSelector, !fieldSelector.isEmpty { query.append(("fieldSelector", fieldSelector)) }
        if self.allowWatchBookmarks { query.append(("allowWatchBookmarks", "true")) }
        if let timeoutSeconds { query.append(("timeoutSeconds", String(timeoutSeconds))) }
        if self.sendInitialEvents {
            query.append(("sendInitialEvents", "true"))
            query.append(("resourceVersionMatch", "NotOlderThan"))
        }
        return query
    }
}

/// A patch body.
public enum Patch: Sendable {
    /// RFC 7386 JSON merge patch.
    case merge(JSONValue)
    /// RFC 6902 JSON patch operations.
    case json([JSONValue])
    /// Strategic merge patch (built-in kinds only).
    case strategic(JSONValue)

    var contentType: String {
        switch self {
        case .merge: return "application/merge-patch+json"
        case .json: return "application/json-patch+json"
        case .strategic: return "application/strategic-merge-patch+json"
        }
    }

    var body: JSONValue {
        switch self {
        case .merge(let value), .strategic(let value): return value
        case .json(let operations): return .array(operations)
        }
    }
}

/// Deletion propagation.
public struct PropagationPolicy: Sendable, Hashable, RawRepresentable {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let background = Self(rawValue: "Background")
    public static let foreground = Self(rawValue: "Foreground")
    public static let orphan = Self(rawValue: "Orphan")
}

/// Typed verbs on one resource, optionally scoped to a namespace.
public struct ResourceClient<Object: KubeObject>: Sendable {
    public let client: KubeClient
    public let type: ResourceType
    public let namespace: String?

    public init(client: KubeClient, type: ResourceType, namespace: String?) {
        self.client = client
        self.type = type
        self.namespace = type.namespaced ? namespace : nil
    }

    /// The same resource in another namespace.
    public func inNamespace(_ namespace: String?) -> Self {
        Self(client: self.client, type: self.type, namespace: namespace)
    }

    func itemPath(_ name: String, subresource: String? = nil) -> String {
        self.type.path(namespace: self.namespace, name: name, subresource: subresource)
    }

    var collectionPath: String { self.type.path(namespace: self.namespace) }

    func encode<T: Encodable>(_ value: T) throws -> Data {
        do { return try KubeJSON.encode(value) } catch {
            throw KubeError(code: .decoding, message: "cannot encode \(T.self): \(error)", cause: error)
        }
    }

    func writeQuery(fieldManager: String?, dryRun: Bool, force: Bool? = nil) -> [(String, String)] {
        var query: [(String, String)] = []
        if let fieldManager { query.append(("fieldManager", fieldManager)) }
        if let force { query.append(("force", force ? "true" : "false")) }
        if dryRun { query.append(("dryRun", "All")) }
        return query
    }

    // MARK: Read

    public func get(_ name: String) async throws -> Object {
        try await self.client.send(KubeRequest(method: .GET, path: self.itemPath(name))).decode(Object.self)
    }

    /// The object, or nil when it does not exist.
    public func getIfExists(_ name: String) async throws -> Object? {
        do { return try await self.get(name) } catch let error as KubeError where error.code == .notFound { return nil }
    }

    /// One page of a list.
    public func list(_ options: ListOptions = .init()) async throws -> ObjectList<Object> {
        try await self.client.send(KubeRequest(method: .GET, path: self.collectionPath, query: options.query))
            .decode(ObjectList<Object>.self)
    }

    /// Every page of a list (following `continue`), with the first page's resourceVersion.
    public func listAll(
        _ options: ListOptions = .init(),
        pageSize: Int = 500
    ) async throws
        -> (items: [Object], resourceVersion: String)
    {
        var options = options
        options.limit = pageSize
        var items: [Object] = []
        var resourceVersion: String?
        while true {
            let page = try await self.list(options)
            items += page.items
            resourceVersion = resourceVersion ?? page.metadata.resourceVersion
            guard let token = page.metadata.continue, !token.isEmpty else { break }
            options.continueToken = token
            options.resourceVersion = nil
        }
        return (items, resourceVersion ?? "")
    }

    /// Opens a watch. Events are decoded one line at a time as the caller iterates.
    public func watch(_ options: WatchOptions = .init()) async throws -> WatchEventStream<Object> {
        var timeout = self.client.configuration.timeout
        if let seconds = options.timeoutSeconds { timeout = max(timeout, .seconds(seconds + 5)) }
        let body = try await self.client.stream(
            KubeRequest(method: .GET, path: self.collectionPath, query: options.query, timeout: timeout)
        )
        return WatchEventStream(body: body)
    }

    // MARK: Write

    public func create(_ object: Object, fieldManager: String? = nil, dryRun: Bool = false) async throws -> Object {
        try await self.client.send(
            KubeRequest(
                method: .POST,
                path: self.collectionPath,
                query: self.writeQuery(fieldManager: fieldManager, dryRun: dryRun),
                body: try self.encode(object)
            )
        ).decode(Object.self)
    }

    /// PUT; the object's resourceVersion is the precondition (409 ``KubeError/Code/conflict`` when stale).
    public func update(_ object: Object, fieldManager: String? = nil, dryRun: Bool = false) async throws -> Object {
        try await self.client.send(
            KubeRequest(
                method: .PUT,
                path: self.itemPath(object.metadata.name ?? ""),
                query: self.writeQuery(fieldManager: fieldManager, dryRun: dryRun),
                body: try self.encode(object)
            )
        ).decode(Object.self)
    }

    /// PUT on `/status`.
    public func updateStatus(_ object: Object, fieldManager: String? = nil) async throws -> Object {
        try await self.client.send(
            KubeRequest(
                method: .PUT,
                path: self.itemPath(object.metadata.name ?? "", subresource: "status"),
                query: self.writeQuery(fieldManager: fieldManager, dryRun: false),
                body: try self.encode(object)
            )
        ).decode(Object.self)
    }

    public func patch(
        _ name: String,
        _ patch: Patch,
        fieldManager: String? = nil,
        subresource: String? = nil,
        dryRun: Bool = false
    ) async throws -> Object {
        try await self.client.send(
            KubeRequest(
                method: .PATCH,
                path: self.itemPath(name, subresource: subresource),
                query: self.writeQuery(fieldManager: fieldManager, dryRun: dryRun),
                body: try self.encode(patch.body),
                contentType: patch.contentType
            )
        ).decode(Object.self)
    }

    public func patchStatus(_ name: String, _ patch: Patch, fieldManager: String? = nil) async throws -> Object {
        try await self.patch(name, patch, fieldManager: fieldManager, subresource: "status")
    }

    /// Server-side apply: the object is the manager's full intent for the fields it owns.
    public func apply(
        _ object: Object,
        fieldManager: String,
        force: Bool = false,
        subresource: String? = nil,
        dryRun: Bool = false
    ) async throws -> Object {
        try await self.client.send(
            KubeRequest(
                method: .PATCH,
                path: self.itemPath(object.metadata.name ?? "", subresource: subresource),
                query: self.writeQuery(fieldManager: fieldManager, dryRun: dryRun, force: force),
                body: try self.encode(object),
                contentType: "application/apply-patch+yaml"
            )
        ).decode(Object.self)
    }

    /// Server-side apply on `/status`.
    public func applyStatus(_ object: Object, fieldManager: String, force: Bool = false) async throws -> Object {
        try await self.apply(object, fieldManager: fieldManager, force: force, subresource: "status")
    }

    /// Deletes an object. Returns the object when deletion is pending on finalizers, nil when it is gone.
    @discardableResult
    public func delete(
        _ name: String,
        propagationPolicy: PropagationPolicy? = nil,
        preconditionUID: String? = nil,
        preconditionResourceVersion: String? = nil,
        gracePeriodSeconds: Int? = nil
    ) async throws
        -> Object?
    {
        var options: JSONObject = ["kind": "DeleteOptions", "apiVersion": "v1"]
        if let propagationPolicy { options["propagationPolicy"] = .string(propagationPolicy.rawValue) }
        if let gracePeriodSeconds { options["gracePeriodSeconds"] = .int(Int64(gracePeriodSeconds)) }
        var preconditions: JSONObject = [:]
        if let preconditionUID { preconditions["uid"] = .string(preconditionUID) }
        if let preconditionResourceVersion { preconditions["resourceVersion"] = .string(preconditionResourceVersion) }
        if !preconditions.isEmpty { options["preconditions"] = .object(preconditions) }
        let response = try await self.client.send(
            KubeRequest(method: .DELETE, path: self.itemPath(name), body: try self.encode(JSONValue.object(options)))
        )
        let value = try response.decode(JSONValue.self)
        if value["kind"]?.stringValue == "Status" { return nil }
        return Object(json: value)
    }

    /// Deletes every object matching a label selector.
    public func deleteCollection(labelSelector: String? = nil) async throws {
        var query: [(String, String)] = []
        if let labelSelector { query.append(("labelSelector", labelSelector)) }
        _ = try await self.client.send(KubeRequest(method: .DELETE, path: self.collectionPath, query: query))
    }
}

/// The events of one watch request, decoded line by line from the streamed body (pull-based: nothing is read
/// until the consumer asks). Lines split across chunks are reassembled.
public struct WatchEventStream<Object: KubeObject>: AsyncSequence, Sendable {
    public typealias Element = WatchEvent<Object>
    let body: HTTPClientResponse.Body

    public struct AsyncIterator: AsyncIteratorProtocol {
        var lines: NIODecodedAsyncSequence<HTTPClientResponse.Body, NIOSplitLinesMessageDecoder>.AsyncIterator

        public mutating func next() async throws -> WatchEvent<Object>? {
            try await self.next(isolation: nil)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> WatchEvent<Object>? {
            let line: ByteBuffer?
            do {
                line = try await self.lines.next(isolation: actor)
            } catch {
                if let error = error as? HTTPClientError, error == .readTimeout {
                    throw KubeError(code: .timeout, message: "watch: no data within the idle timeout", cause: error)
                }
                throw KubeError(code: .transport, message: "watch stream failed: \(error)", cause: error)
            }
            guard let line else { return nil }
            do {
                return try WatchEvent(line: JSONValue.parse(line.readableBytesView))
            } catch {
                throw KubeError(code: .decoding, message: "watch: undecodable event: \(error)", cause: error)
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(lines: self.body.splitLines(maximumBufferSize: 64 << 20).makeAsyncIterator())
    }
}
