// KubeTestServer+HTTP.swift: HTTP/1.1 routing on SwiftNIO, JSON and Table responses, chunked watch streams.

import Foundation
import KubeModel
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Synchronization
import Yams

struct HTTPRequest: Sendable {
    var method: String
    var path: String
    var query: [String: String]
    var headers: HTTPHeaders
    var body: ByteBuffer

    func header(_ name: String) -> String { self.headers[name].first ?? "" }
    func flag(_ name: String) -> Bool { ["true", "1"].contains(self.query[name] ?? "") }
    var wantsTable: Bool { self.header("accept").contains("as=Table") }
}

struct HTTPResponse: Sendable {
    var code: Int
    var body: ByteBuffer
    var contentType = "application/json"
    var headers: [(String, String)] = []
}

/// Thrown to close a connection without a clean end (fault injection).
struct DropConnection: Error {}

typealias Outbound = NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>

extension KubeTestServer {
    func handle(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let requestHead):
                        head = requestHead
                        body.clear()
                    case .body(var chunk):
                        body.writeBuffer(&chunk)
                    case .end:
                        guard let requestHead = head else { continue }
                        head = nil
                        try await self.respond(requestHead, body, outbound, channel: connection.channel)
                    }
                }
            }
        } catch {
            self.logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    func respond(_ head: HTTPRequestHead, _ body: ByteBuffer, _ outbound: Outbound, channel: any Channel) async throws {
        let components = URLComponents(string: head.uri)
        var query: [String: String] = [:]
        for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let request = HTTPRequest(
            method: head.method.rawValue,
            path: components?.path ?? head.uri,
            query: query,
            headers: head.headers,
            body: body
        )
        if request.path.hasPrefix("/_test/") {
            try await self.write(self.control(request), to: outbound)
            return
        }
        var record = KubeTestServer.RequestRecord(
            method: request.method,
            path: request.path,
            query: query,
            code: 0,
            userAgent: request.header("user-agent"),
            contentType: request.header("content-type"),
            verb: "discovery"
        )
        let (delay, fault) = self.faults.withLock { faults -> (Duration?, Int?) in
            for index in faults.failures.indices where faults.failures[index].remaining > 0 {
                let fault = faults.failures[index]
                if let path = fault.pathContains, !request.path.contains(path) { continue }
                if let method = fault.method, method != request.method { continue }
                faults.failures[index].remaining -= 1
                return (faults.delay, fault.code)
            }
            return (faults.delay, nil)
        }
        if let delay { try await Task.sleep(for: delay) }
        if let fault {
            let reason = fault == 429 ? "TooManyRequests" : fault == 503 ? "ServiceUnavailable" : "InternalError"
            var response = Self.json(
                APIError(code: fault, reason: reason, message: "injected fault \(fault)").status.json,
                code: fault
            )
            if fault == 429 { response.headers.append(("Retry-After", "1")) }
            record.code = fault
            record.verb = self.classify(request)
            self.log.withLock { $0.append(record) }
            try await self.write(response, to: outbound)
            return
        }
        do {
            if let watch = try self.prepareWatch(request) {
                record.verb = "watch"
                record.code = 200
                self.log.withLock { $0.append(record) }
                try await self.streamWatch(watch, request: request, outbound: outbound, channel: channel)
                return
            }
            let response = self.route(request, record: &record)
            record.code = response.code
            self.log.withLock { $0.append(record) }
            try await self.write(response, to: outbound)
        } catch let error as APIError {
            record.code = error.code
            self.log.withLock { $0.append(record) }
            try await self.write(Self.json(error.status.json, code: error.code), to: outbound)
        }
    }

    /// The Kubernetes verb of a request (`list` and `deletecollection` for collections).
    func classify(_ request: HTTPRequest) -> String {
        let verb = Self.verb(request)
        guard let target = try? self.target(request.path) else { return verb == "get" ? "discovery" : verb }
        if target.name == nil, verb == "get" { return "list" }
        if target.name == nil, verb == "delete" { return "deletecollection" }
        return verb
    }

    static func verb(_ request: HTTPRequest) -> String {
        switch request.method {
        case "GET": return request.flag("watch") ? "watch" : "get"
        case "POST": return "create"
        case "PUT": return "update"
        case "PATCH": return "patch"
        case "DELETE": return "delete"
        default: return request.method.lowercased()
        }
    }

    func write(_ response: HTTPResponse, to outbound: Outbound) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.readableBytes))
        headers.add(name: "Cache-Control", value: "no-cache, private")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: response.code), headers: headers)
        try await outbound.write(contentsOf: [.head(head), .body(.byteBuffer(response.body)), .end(nil)])
    }

    static func json(_ value: JSONValue, code: Int = 200, contentType: String = "application/json") -> HTTPResponse {
        HTTPResponse(code: code, body: ByteBuffer(bytes: value.serialized()), contentType: contentType)
    }

    // MARK: Routing

    struct Target {
        var info: ResourceInfo
        var namespace: String?
        var name: String?
        var subresource: String?
    }

    /// Resolves a resource path; nil for discovery paths handled elsewhere.
    func target(_ path: String) throws(APIError) -> Target? {
        let segments = path.split(separator: "/").map(String.init)
        var group = ""
        var version = ""
        var rest: ArraySlice<String>
        if segments.first == "api", segments.count >= 2 {
            version = segments[1]
            rest = segments[2...]
        } else if segments.first == "apis", segments.count >= 3 {
            group = segments[1]
            version = segments[2]
            rest = segments[3...]
        } else {
            return nil
        }
        if rest.isEmpty { return nil }
        return try self.state.withLock { state throws(APIError) -> Target? in
            var namespace: String?
            if rest.first == "namespaces", rest.count >= 3,
                let info = state.info(group: group, version: version, plural: rest[rest.startIndex + 2]),
                info.type.namespaced
            {
                namespace = rest[rest.startIndex + 1]
                rest = rest.dropFirst(2)
            }
            guard let info = state.info(group: group, version: version, plural: rest.first!) else {
                throw .unknownPath
            }
            let name = rest.count > 1 ? rest[rest.startIndex + 1] : nil
            let subresource = rest.count > 2 ? rest[rest.startIndex + 2] : nil
            if rest.count > 3 { throw .unknownPath }
            if let subresource, subresource != "status" || !info.hasStatus { throw .unknownPath }
            return Target(info: info, namespace: namespace, name: name, subresource: subresource)
        }
    }

    func route(_ request: HTTPRequest, record: inout RequestRecord) -> HTTPResponse {
        do {
            if let response = try self.discovery(request) { return response }
            guard let target = try self.target(request.path) else { throw APIError.unknownPath }
            record.verb = self.classify(request)
            _ = target
            return try self.serve(request, target)
        } catch let error as APIError {
            return Self.json(error.status.json, code: error.code)
        } catch {
            return Self.json(APIError.internalError("\(error)").status.json, code: 500)
        }
    }

    func discovery(_ request: HTTPRequest) throws -> HTTPResponse? {
        guard request.method == "GET" else { return nil }
        let path =
            request.path.hasSuffix("/") && request.path.count > 1 ? String(request.path.dropLast()) : request.path
        let segments = path.split(separator: "/").map(String.init)
        return try self.state.withLock { state throws -> HTTPResponse? in
            switch segments.count {
            case 1 where segments[0] == "version": return Self.json(ServerState.version)
            case 1 where segments[0] == "api":
                return Self.json(state.apiVersions(serverAddress: "\(self.configuration.host):\(self.port)"))
            case 1 where segments[0] == "apis": return Self.json(state.apiGroupList())
            case 2 where segments[0] == "api", 3 where segments[0] == "apis":
                let groupVersion = segments.dropFirst().joined(separator: "/")
                guard let list = state.apiResourceList(groupVersion: groupVersion) else { throw APIError.unknownPath }
                return Self.json(list)
            case 2 where segments[0] == "openapi" && segments[1] == "v3": return Self.json(state.openAPIRoot())
            case 4... where segments[0] == "openapi" && segments[1] == "v3":
                let groupVersion = segments.dropFirst(3).joined(separator: "/")
                guard let document = state.openAPIDocument(groupVersion: groupVersion) else {
                    throw APIError.unknownPath
                }
                return Self.json(document)
            case 1... where segments[0] == "openapi": throw APIError.unknownPath
            case 1 where segments[0] == "healthz" || segments[0] == "readyz" || segments[0] == "livez":
                return HTTPResponse(code: 200, body: ByteBuffer(string: "ok"), contentType: "text/plain")
            default: return nil
            }
        }
    }

    func decodeBody(_ request: HTTPRequest, yaml: Bool = false) throws(APIError) -> JSONValue {
        let contentType = request.header("content-type")
        if contentType.contains("protobuf") {
            return try KubeProtobuf.decode(Array(request.body.readableBytesView))
        }
        if let value = try? JSONValue.parse(request.body.readableBytesView) { return value }
        let data = Data(buffer: request.body)
        if yaml || contentType.contains("yaml"), let text = String(data: data, encoding: .utf8),
            let value = try? YAMLDecoder().decode(JSONValue.self, from: text)
        {
            return value
        }
        throw .badRequest("the body of the request could not be decoded as JSON")
    }

    /// A `propagationPolicy` value, refused as the API server refuses an unknown one.
    static func propagation(_ text: String?) throws(APIError) -> DeletionPropagation? {
        guard let text else { return nil }
        guard let policy = DeletionPropagation(rawValue: text) else {
            throw .badRequest(
                "propagationPolicy: Unsupported value: \"\(text)\": supported values: \"Orphan\", \"Background\", \"Foreground\""
            )
        }
        return policy
    }

    func context(
        _ request: HTTPRequest,
        _ info: ResourceInfo,
        apply: Bool = false
    ) throws(APIError) -> WriteContext {
        let userAgent = request.header("user-agent")
        let fallback = String(userAgent.prefix { $0 != "/" })
        let validation = request.query["fieldValidation"] ?? FieldValidation.warn.rawValue
        guard let fieldValidation = FieldValidation(rawValue: validation) else {
            throw .badRequest(
                "fieldValidation: Unsupported value: \"\(validation)\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            )
        }
        return WriteContext(
            manager: request.query["fieldManager"] ?? (apply ? "" : (fallback.isEmpty ? "unknown" : fallback)),
            fieldValidation: fieldValidation,
            dryRun: request.query["dryRun"] == "All",
            force: request.flag("force"),
            apiVersion: info.type.apiVersion
        )
    }

    func render(_ object: JSONObject, _ info: ResourceInfo, _ request: HTTPRequest, code: Int = 200) -> HTTPResponse {
        var object = object
        object["apiVersion"] = .string(info.type.apiVersion)
        if request.wantsTable, request.method == "GET" {
            let table = self.state.withLock {
                $0.table(
                    [object],
                    info,
                    includeObject: request.query["includeObject"],
                    listMeta: ["resourceVersion": object["metadata"]?["resourceVersion"] ?? ""]
                )
            }
            return Self.json(table, code: code, contentType: "application/json;as=Table;v=v1;g=meta.k8s.io")
        }
        return Self.json(.object(object), code: code)
    }

    func serve(_ request: HTTPRequest, _ target: Target) throws -> HTTPResponse {
        let info = target.info
        let namespace = target.namespace
        switch (request.method, target.name) {
        case ("GET", let name?):
            let object = try self.state.withLock { state throws(APIError) in
                try state.get(info, namespace: namespace, name: name)
            }
            return self.render(object, info, request)
        case ("GET", nil):
            let labels = try self.selector(request.query["labelSelector"])
            let fields = try self.selector(request.query["fieldSelector"])
            let limit = request.query["limit"].flatMap { Int($0) }
            if let token = request.query["continue"], !token.isEmpty, let rv = request.query["resourceVersion"],
                !rv.isEmpty, rv != "0"
            {
                throw APIError.badRequest("specifying resource version is not allowed when using continue")
            }
            let result = try self.state.withLock { state throws(APIError) in
                try state.list(
                    info,
                    namespace: namespace,
                    labels: labels,
                    fields: fields,
                    limit: limit,
                    continueToken: request.query["continue"]
                )
            }
            var listMeta: JSONObject = ["resourceVersion": .string(result.resourceVersion)]
            if let token = result.continueToken { listMeta["continue"] = .string(token) }
            if let remaining = result.remaining { listMeta["remainingItemCount"] = .int(Int64(remaining)) }
            if request.wantsTable {
                let table = self.state.withLock {
                    $0.table(result.items, info, includeObject: request.query["includeObject"], listMeta: listMeta)
                }
                return Self.json(table, contentType: "application/json;as=Table;v=v1;g=meta.k8s.io")
            }
            let items: [JSONValue] = result.items.map {
                var item = $0
                item["apiVersion"] = .string(info.type.apiVersion)
                return .object(item)
            }
            return Self.json(
                [
                    "kind": .string(info.listKind), "apiVersion": .string(info.type.apiVersion),
                    "metadata": .object(listMeta), "items": .array(items),
                ]
            )
        case ("POST", nil):
            if info.createOnly {
                var body = try self.decodeBody(request).objectValue ?? [:]
                body["status"] = ["allowed": true]
                return Self.json(.object(body), code: 201)
            }
            guard case .object(let body) = try self.decodeBody(request) else {
                throw APIError.badRequest("the body must be a JSON object")
            }
            let context = try self.context(request, info)
            let (object, warnings) = try self.state.withLock { state throws(APIError) in
                state.warnings = []
                let object = try state.create(info, namespace: namespace, body: body, context: context)
                return (object, state.warnings)
            }
            var response = self.render(object, info, request, code: 201)
            response.headers += warnings.map { ("Warning", "299 - \(KubeJSON.string(JSONValue.string($0)))") }
            return response
        case ("PUT", let name?):
            guard case .object(let body) = try self.decodeBody(request) else {
                throw APIError.badRequest("the body must be a JSON object")
            }
            let context = try self.context(request, info)
            let (object, warnings) = try self.state.withLock { state throws(APIError) in
                state.warnings = []
                let old = try state.get(info, namespace: namespace, name: name)
                if info.isCustom, (body["metadata"]?["resourceVersion"]?.stringValue ?? "").isEmpty {
                    throw APIError.invalid(
                        info,
                        name,
                        [.invalid("metadata.resourceVersion", .int(0), "must be specified for an update")]
                    )
                }
                let object = try state.commitUpdate(
                    info,
                    old: old,
                    candidate: body,
                    subresource: target.subresource,
                    context: context
                )
                return (object, state.warnings)
            }
            var response = self.render(object, info, request)
            response.headers += warnings.map { ("Warning", "299 - \(KubeJSON.string(JSONValue.string($0)))") }
            return response
        case ("PATCH", let name?):
            let contentType = request.header("content-type")
            let isApply = contentType.hasPrefix("application/apply-patch")
            let body = try self.decodeBody(request, yaml: isApply)
            let context = try self.context(request, info, apply: isApply)
            let result = try self.state.withLock { state throws(APIError) in
                try state.patch(
                    info,
                    namespace: namespace,
                    name: name,
                    contentType: contentType,
                    body: body,
                    subresource: target.subresource,
                    context: context
                )
            }
            return self.render(result.object, info, request, code: result.created ? 201 : 200)
        case ("DELETE", let name?):
            var options = request.body.readableBytes > 0 ? (try? self.decodeBody(request))?.objectValue ?? [:] : [:]
            if let policy = request.query["propagationPolicy"] { options["propagationPolicy"] = .string(policy) }
            let policy = try Self.propagation(options["propagationPolicy"]?.stringValue)
            let preconditions = (
                uid: options["preconditions"]?["uid"]?.stringValue,
                rv: options["preconditions"]?["resourceVersion"]?.stringValue
            )
            let dryRun = request.query["dryRun"] == "All"
            let outcome = try self.state.withLock { state throws(APIError) in
                try state.delete(
                    info,
                    namespace: namespace,
                    name: name,
                    policy: policy,
                    preconditions: preconditions,
                    dryRun: dryRun
                )
            }
            switch outcome {
            case .pending(let object): return self.render(object, info, request)
            case .removed(let object):
                return Self.json(
                    [
                        "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Success",
                        "details": [
                            "name": .string(name), "group": .string(info.type.group), "kind": .string(info.type.plural),
                            "uid": object["metadata"]?["uid"] ?? "",
                        ],
                    ]
                )
            }
        case ("DELETE", nil):
            let labels = try self.selector(request.query["labelSelector"])
            let fields = try self.selector(request.query["fieldSelector"])
            let policy = try Self.propagation(request.query["propagationPolicy"])
            try self.state.withLock { state throws(APIError) in
                let result = try state.list(
                    info,
                    namespace: namespace,
                    labels: labels,
                    fields: fields,
                    limit: nil,
                    continueToken: nil
                )
                for item in result.items {
                    let meta = ObjectMeta(object: item["metadata"]?.objectValue ?? [:])
                    _ = try? state.delete(
                        info,
                        namespace: meta.namespace,
                        name: meta.name ?? "",
                        policy: policy,
                        preconditions: (nil, nil)
                    )
                }
            }
            return Self.json(["kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Success"])
        default:
            throw APIError.methodNotAllowed(request.method.lowercased(), info)
        }
    }

    func selector(_ string: String?) throws(APIError) -> Selector {
        guard let string, !string.isEmpty else { return Selector() }
        do {
            return try Selector(parsing: string)
        } catch {
            throw .badRequest("unable to parse requirement: \(string)")
        }
    }

    // MARK: Control endpoints for out-of-process tests

    func control(_ request: HTTPRequest) -> HTTPResponse {
        switch request.path {
        case "/_test/compact": self.compactHistory()
        case "/_test/drop-watches": self.dropWatches()
        case "/_test/expire-watches": self.expireWatches()
        case "/_test/fail":
            self.injectFailures(
                code: Int(request.query["code"] ?? "500") ?? 500,
                count: Int(request.query["count"] ?? "1") ?? 1,
                pathContains: request.query["path"],
                method: request.query["method"]
            )
        case "/_test/delay":
            let ms = Int(request.query["ms"] ?? "0") ?? 0
            self.setDelay(ms > 0 ? .milliseconds(ms) : nil)
        case "/_test/split-watch-events": self.setSplitWatchEvents(request.flag("enabled"))
        case "/_test/requests":
            let records: [JSONValue] = self.requestLog.map {
                [
                    "method": .string($0.method), "path": .string($0.path), "verb": .string($0.verb),
                    "code": .int(Int64($0.code)), "userAgent": .string($0.userAgent),
                    "query": .object($0.query.mapValues(JSONValue.string)),
                ]
            }
            return Self.json(.array(records))
        default:
            return Self.json(APIError.unknownPath.status.json, code: 404)
        }
        return Self.json(["status": "ok"])
    }
}
