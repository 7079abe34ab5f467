// PyroscopeTestServer+HTTP.swift: HTTP/1.1 on SwiftNIO, routing, fault hooks, and the two ingestion routes with
// the responses Pyroscope sends (connect error JSON on the push route, plain text on /ingest).

import Foundation
import HTTPTestServing
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Synchronization

struct HTTPResponse: Sendable {
    var status: Int
    var body: [UInt8] = []
    var contentType = "text/plain; charset=utf-8"
    var headers: [(String, String)] = []
    /// For the request log.
    var connectCode: String?
    var errorMessage: String?

    static func text(_ status: Int, _ message: String) -> HTTPResponse {
        HTTPResponse(status: status, body: Array((message + "\n").utf8), errorMessage: status >= 400 ? message : nil)
    }

    /// A connect unary error: `{"code": ..., "message": ...}`.
    static func connect(_ code: ConnectCode, _ message: String, status: Int? = nil) -> HTTPResponse {
        struct Body: Encodable {
            var code: String
            var message: String
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        let body = (try? encoder.encode(Body(code: code.name, message: message))).map(Array.init) ?? []
        return HTTPResponse(
            status: status ?? code.httpStatus,
            body: body,
            contentType: "application/json",
            connectCode: code.name,
            errorMessage: message
        )
    }
}

/// A request as received (the shared test server's type).
typealias HTTPRequest = TestHTTPRequest

extension PyroscopeTestServer {
    // MARK: Routing

    static let pushPath = "/push.v1.PusherService/Push"

    func respond(_ request: HTTPRequest) async throws -> HTTPResponse {
        var record = RequestRecord(
            method: request.head.method.rawValue,
            path: request.path,
            status: 0,
            tenant: request.header("X-Scope-OrgID").flatMap { $0.isEmpty ? nil : $0 },
            authorizationPresent: request.header("Authorization") != nil,
            contentType: request.header("Content-Type"),
            contentEncoding: request.header("Content-Encoding"),
            userAgent: request.header("User-Agent"),
            bodyBytes: request.bodyBytes,
            seriesCount: 0,
            profileCount: 0,
            receivedAt: Date()
        )
        var accepted: [ReceivedSeries] = []
        let response: HTTPResponse
        switch request.path {
        case "/ready":
            if request.head.method != .GET {
                response = Self.methodNotAllowed("GET")
            } else if self.isDown {
                response = .text(503, "not ready")
            } else {
                response = HTTPResponse(status: 200, body: Array("ready\n".utf8))
            }
        case Self.pushPath where self.pushAPIEnabled:
            response = try await self.ingestion(request, route: .push, record: &record, accepted: &accepted)
        case "/ingest":
            response = try await self.ingestion(request, route: .ingest, record: &record, accepted: &accepted)
        default:
            // Go's net/http answer, also what an old server without the push API sends for it.
            response = .text(404, "404 page not found")
        }
        record.status = response.status
        record.connectCode = response.connectCode
        record.errorMessage = response.errorMessage
        self.record(record, accepted: accepted)
        if response.status >= 400 {
            self.logger.debug(
                "rejected request",
                metadata: [
                    "http.path": "\(request.path)", "http.status": "\(response.status)",
                    "error": "\(response.errorMessage ?? "")",
                ]
            )
        }
        return response
    }

    static func methodNotAllowed(_ allowed: String) -> HTTPResponse {
        var response = HTTPResponse.text(405, "method not allowed")
        response.headers.append(("Allow", allowed))
        return response
    }

    /// The checks shared by both ingestion routes, then the route itself.
    func ingestion(
        _ request: HTTPRequest,
        route: IngestRoute,
        record: inout RequestRecord,
        accepted: inout [ReceivedSeries]
    ) async throws -> HTTPResponse {
        guard request.head.method == .POST else { return Self.methodNotAllowed("POST") }
        func error(_ code: ConnectCode, _ message: String, status: Int? = nil) -> HTTPResponse {
            route == .push
                ? .connect(code, message, status: status) : .text(status ?? code.httpStatus, message)
        }

        let (delay, down, fault, authentication, limits) = self.state.withLock {
            state -> (Duration?, Bool, Failure?, Authentication, IngestionLimits) in
            var fault: Failure?
            if !state.down, let index = state.failures.firstIndex(where: { $0.remaining > 0 }) {
                fault = state.failures[index]
                state.failures[index].remaining -= 1
                if state.failures[index].remaining == 0 { state.failures.remove(at: index) }
            }
            return (state.delay, state.down, fault, state.authentication, state.limits)
        }
        if let delay { try await Task.sleep(for: delay) }
        if down { return error(.unavailable, "no healthy upstream (server is down)") }
        if let fault {
            var response = error(fault.code, "injected failure", status: fault.status)
            if fault.status == 429 { response.headers.append(("Retry-After", "1")) }
            return response
        }
        if !Self.authorized(request.header("Authorization"), authentication) {
            var response = error(.unauthenticated, "authentication required: missing or invalid credentials")
            let challenge = if case .basic = authentication { "Basic realm=\"pyroscope\"" } else { "Bearer" }
            response.headers.append(("WWW-Authenticate", challenge))
            return response
        }
        if request.bodyTooLarge {
            return error(
                .resourceExhausted,
                "request body too large: \(request.bodyBytes) bytes, limit \(limits.maxRequestBodyBytes)",
                status: 413
            )
        }
        let now = Date()
        do throws(RouteError) {
            switch route {
            case .push:
                return try self.push(request, limits: limits, now: now, record: &record, accepted: &accepted)
            case .ingest:
                return try self.ingest(request, limits: limits, now: now, record: &record, accepted: &accepted)
            }
        } catch {
            return route == .push
                ? .connect(error.code, error.message, status: error.status) : .text(error.status, error.message)
        }
    }

    static func authorized(_ header: String?, _ authentication: Authentication) -> Bool {
        switch authentication {
        case .none:
            return true
        case .bearer(let token):
            return header == "Bearer \(token)"
        case .basic(let user, let password):
            guard let header, header.hasPrefix("Basic "),
                let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces))
            else { return false }
            return decoded == Data("\(user):\(password)".utf8)
        }
    }

    // MARK: Push

    /// A rejection with the HTTP status to send (connect's mapping unless overridden).
    struct RouteError: Error {
        var code: ConnectCode
        var message: String
        var status: Int

        init(_ rejection: Rejection, status: Int? = nil) {
            self.code = rejection.code
            self.message = rejection.message
            self.status = status ?? rejection.code.httpStatus
        }

        init(_ code: ConnectCode, _ message: String, status: Int? = nil) {
            self.init(Rejection(code: code, message: message), status: status)
        }
    }

    func push(
        _ request: HTTPRequest,
        limits: IngestionLimits,
        now: Date,
        record: inout RequestRecord,
        accepted: inout [ReceivedSeries]
    ) throws(RouteError) -> HTTPResponse {
        if let version = request.header("Connect-Protocol-Version"), version != "1" {
            throw RouteError(.invalidArgument, "connect-protocol-version must be \"1\": got \"\(version)\"")
        }
        let mediaType = Self.mediaType(request.header("Content-Type"))
        guard mediaType == "application/proto" else {
            // connect-go also serves application/json; this double supports the binary codec only.
            let reason =
                mediaType == "application/json"
                ? "application/json is valid for Pyroscope but not supported by this test double"
                : "unsupported content type \"\(request.header("Content-Type") ?? "")\""
            throw RouteError(.unimplemented, reason, status: 415)
        }
        var body = request.body
        switch request.header("Content-Encoding")?.lowercased() ?? "" {
        case "", "identity": break
        case "gzip":
            body = try self.gunzip(body, limit: limits.maxRequestBodyBytes, tooLargeStatus: 413) { size in
                "request body too large: \(size) bytes decompressed, limit \(limits.maxRequestBodyBytes)"
            }
        case let encoding:
            throw RouteError(.unimplemented, "unknown compression \"\(encoding)\": supported encodings are gzip")
        }

        let series: [Ingestion.PushSeries]
        do throws(Rejection) {
            series = try Ingestion.decodePush(body)
        } catch {
            throw RouteError(error)
        }
        record.seriesCount = series.count
        record.profileCount = series.reduce(0) { $0 + $1.samples.count }

        var received: [ReceivedSeries] = []
        for entry in series {
            let labels: [String: String]
            do throws(Rejection) {
                labels = try Ingestion.validateLabels(entry.labels, limits: limits)
            } catch {
                throw RouteError(error)
            }
            let rendered = Ingestion.render(labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
            for sample in entry.samples {
                let gzipped = Gunzip.isGzip(sample.profile)
                let raw = try self.profileBytes(sample.profile, limits: limits, labels: rendered, tooLargeStatus: nil)
                let profile: DecodedProfile
                do throws(Rejection) {
                    profile = try PprofDecoder.decode(raw, limits: limits, now: now, seriesLabels: rendered)
                } catch {
                    throw RouteError(error)
                }
                received.append(
                    ReceivedSeries(
                        labels: labels,
                        tenant: record.tenant,
                        profile: profile,
                        receivedAt: now,
                        route: .push,
                        sampleID: sample.id,
                        rawProfileBytes: sample.profile.count,
                        rawProfileGzipped: gzipped
                    )
                )
            }
        }
        guard !received.isEmpty else { throw RouteError(.invalidArgument, "no profiles received") }
        accepted = received
        return HTTPResponse(status: 200, contentType: "application/proto")
    }

    /// A raw profile, decompressed when it starts with the gzip magic, within the profile size limit.
    func profileBytes(
        _ bytes: [UInt8],
        limits: IngestionLimits,
        labels: String,
        tooLargeStatus: Int?
    ) throws(RouteError) -> [UInt8] {
        let message = { (size: Int) in
            "the profile with labels '\(labels)' exceeds the size limit (max_profile_size_byte, actual: \(size), "
                + "limit: \(limits.maxProfileSizeBytes))"
        }
        if Gunzip.isGzip(bytes) {
            return try self.gunzip(bytes, limit: limits.maxProfileSizeBytes, tooLargeStatus: tooLargeStatus, message)
        }
        guard bytes.count <= limits.maxProfileSizeBytes else {
            throw RouteError(.invalidArgument, message(bytes.count), status: tooLargeStatus)
        }
        return bytes
    }

    func gunzip(
        _ bytes: [UInt8],
        limit: Int,
        tooLargeStatus: Int?,
        _ message: (Int) -> String
    ) throws(RouteError) -> [UInt8] {
        do {
            switch try Gunzip.decompress(bytes, limit: limit) {
            case .data(let data): return data
            case .tooLarge(let size): throw RouteError(.invalidArgument, message(size), status: tooLargeStatus)
            }
        } catch let error as RouteError {
            throw error
        } catch {
            throw RouteError(.invalidArgument, "\(error)")
        }
    }

    static func mediaType(_ contentType: String?) -> String {
        (contentType ?? "").split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
    }

    // MARK: Legacy ingest

    func ingest(
        _ request: HTTPRequest,
        limits: IngestionLimits,
        now: Date,
        record: inout RequestRecord,
        accepted: inout [ReceivedSeries]
    ) throws(RouteError) -> HTTPResponse {
        // Bad parameters are 400; a profile Pyroscope cannot ingest is 422, one over the size limit 413.
        guard let name = request.query["name"], !name.isEmpty else {
            throw RouteError(.invalidArgument, "name is required")
        }
        let parsed: (app: String, labels: [(name: String, value: String)])
        do throws(Rejection) {
            parsed = try Ingestion.parseIngestName(name)
        } catch {
            throw RouteError(error)
        }
        let format = request.query["format"]?.lowercased() ?? ""
        guard format == "pprof" else {
            throw RouteError(
                .invalidArgument,
                "unsupported format \"\(format)\": this test double ingests format=pprof only"
            )
        }
        var from: Date?
        for key in ["from", "until"] {
            guard let value = request.query[key], !value.isEmpty else { continue }
            guard let seconds = Int64(value) else { throw RouteError(.invalidArgument, "invalid \(key): \(value)") }
            if key == "from" { from = Date(timeIntervalSince1970: Double(seconds)) }
        }
        if Self.mediaType(request.header("Content-Type")).hasPrefix("multipart/") {
            throw RouteError(.invalidArgument, "multipart bodies are not supported by this test double", status: 422)
        }
        record.seriesCount = 1
        record.profileCount = 1

        let provisional = Ingestion.render(parsed.labels)
        let raw = try self.profileBytes(request.body, limits: limits, labels: provisional, tooLargeStatus: 413)
        let profile: DecodedProfile
        do throws(Rejection) {
            profile = try PprofDecoder.decode(
                raw,
                limits: limits,
                now: now,
                defaultTime: from,
                seriesLabels: provisional
            )
        } catch {
            throw RouteError(error, status: 422)
        }
        let pairs = Ingestion.ingestLabels(
            app: parsed.app,
            labels: parsed.labels,
            metricName: Ingestion.metricName(sampleTypes: profile.sampleTypes)
        )
        let labels: [String: String]
        do throws(Rejection) {
            labels = try Ingestion.validateLabels(pairs, limits: limits)
        } catch {
            throw RouteError(error, status: 422)
        }
        accepted = [
            ReceivedSeries(
                labels: labels,
                tenant: record.tenant,
                profile: profile,
                receivedAt: now,
                route: .ingest,
                sampleID: "",
                rawProfileBytes: request.body.count,
                rawProfileGzipped: Gunzip.isGzip(request.body)
            )
        ]
        return HTTPResponse(status: 200)
    }
}
