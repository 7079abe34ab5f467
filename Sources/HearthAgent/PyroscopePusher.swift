// PyroscopePusher.swift: delivers spooled batches to Pyroscope, one delivery loop per backend (URL and tenant), so a
// backend that is slow, down or answering 429 never delays another's profiles. One `push.v1.PusherService/Push`
// request carries every series of a backend's interval (connect protocol, application/proto, keep-alive
// connections), split only to keep requests small; each request has a total deadline, body included. Retries 429,
// 5xx, 408 and transport errors with exponential backoff and jitter, waiting at least what `Retry-After` asks (up
// to a cap); never retries another 4xx (the data would be refused again). A server without the push API (404) gets
// the legacy `/ingest?format=pprof` API instead, one profile per request.

import AsyncHTTPClient
import CoreMetrics
import Foundation
import HearthAPI
import HearthBase
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
internal import SwiftProtobuf
import Synchronization

/// Sends batches from a ``DeliverySpool`` until shut down.
public final class PyroscopePusher: ServiceLifecycle.Service, Sendable {
    public struct Configuration: Sendable {
        /// The folder holding the credential files the configuration names.
        public var credentialsDirectory: String
        /// The total time one request may take, from connecting to the last byte of the answer.
        public var requestTimeout: Duration = .seconds(10)
        /// The longest `Retry-After` honoured: a backend cannot park its queue for longer.
        public var maxRetryAfter: Duration = .seconds(300)
        /// Backoff after the first failure, doubled per failure up to ``maxBackoff``, less up to half at random.
        /// The cap is two upload intervals: delivery resumes within half a minute of Pyroscope's return.
        public var minBackoff: Duration = .milliseconds(500)
        public var maxBackoff: Duration = .seconds(30)
        /// Compressed profile bytes per request; a batch above it is sent in several requests.
        public var maxRequestBytes = 4 << 20

        public init(credentialsDirectory: String) {
            self.credentialsDirectory = credentialsDirectory
        }
    }

    /// The outcome of one request.
    enum Outcome: Equatable {
        case delivered
        /// Not retried: the server refused the data (status and Grafana Pyroscope's message).
        case rejected(status: Int, message: String)
        /// Retried later, not before `retryAfter` when the server asked for it.
        case failed(code: String, message: String, retryAfter: Duration? = nil)
        /// The push API is missing: use `/ingest`.
        case noPushAPI
    }

    let spool: DeliverySpool
    let client: HTTPClient
    let configuration: Configuration
    let metrics: AgentMetrics
    let logger: Logger
    /// Backends (by URL) that answered 404 to the push API.
    let legacyBackends = Mutex<Set<String>>([])

    public init(
        spool: DeliverySpool,
        client: HTTPClient = .shared,
        configuration: Configuration,
        metrics: AgentMetrics,
        logger: Logger
    ) {
        self.spool = spool
        self.client = client
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { loops in
                // One loop per backend, started when its first batch arrives; each ends once the spool is closed
                // and its queue is empty.
                var known: Set<AgentConfiguration.Backend> = []
                while let backend = await self.spool.nextBackend(notIn: known) {
                    known.insert(backend)
                    loops.addTask { await self.deliverAll(to: backend) }
                }
                await loops.waitForAll()
            }
        } onGracefulShutdown: {
            self.spool.close()
        }
    }

    /// Delivers one backend's batches in order, with its own backoff.
    private func deliverAll(to backend: AgentConfiguration.Backend) async {
        var failures = 0
        while let batch = await self.spool.first(for: backend) {
            if Task.isCancelled { break }
            switch await self.deliver(batch) {
            case .delivered:
                failures = 0
                self.spool.remove(batch.id)
            case .rejected(let status, let message):
                // Sending it again would be refused again.
                self.drop(batch, "Pyroscope refused profiles; they are dropped", code: "\(status)", message)
            case .failed(let code, let message, _) where Task.isShuttingDownGracefully:
                // Stopping: one try each, no waiting for a backend that is down.
                self.drop(batch, "Pyroscope push failed while stopping; the profiles are dropped", code: code, message)
            case .failed(let code, let message, let retryAfter):
                failures += 1
                let backoff = Self.backoff(failures: failures, configuration: self.configuration)
                let delay = retryAfter.map { max(backoff, min($0, self.configuration.maxRetryAfter)) } ?? backoff
                let log = failures == 1 ? Logger.Level.warning : .debug
                self.logger.log(
                    level: log,
                    "Pyroscope push failed; retrying",
                    metadata: [
                        "pyroscope.url": "\(batch.backend.url)", "push.code": "\(code)",
                        "push.error": "\(message.prefix(512))", "push.retryIn": "\(delay)",
                        "push.failures": "\(failures)",
                    ]
                )
                // A shutdown ends the wait early (the loop then tries once more and gives up).
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
            case .noPushAPI:
                // `deliver` switches to /ingest itself; a 404 there too is a rejection.
                self.spool.remove(batch.id)
            }
            self.metrics.spoolBytes.record(self.spool.bytes)
        }
    }

    /// Gives up on a batch, saying why once.
    private func drop(_ batch: PushBatch, _ what: Logger.Message, code: String, _ message: String) {
        self.logger.warning(
            what,
            metadata: [
                "pyroscope.url": "\(batch.backend.url)", "push.code": "\(code)",
                "pyroscope.message": "\(message.prefix(512))",
            ]
        )
        self.spool.remove(batch.id)
    }

    /// The delay before the next try: doubling from `minBackoff`, capped, less up to half at random so a fleet
    /// of agents does not retry in step.
    static func backoff(failures: Int, configuration: Configuration) -> Duration {
        let base = configuration.minBackoff * (1 << min(max(failures - 1, 0), 20))
        let capped = min(base, configuration.maxBackoff)
        return capped * Double.random(in: 0.5...1.0)
    }

    /// Sends one batch (in as many requests as its size needs).
    func deliver(_ batch: PushBatch) async -> Outcome {
        let legacy = self.legacyBackends.withLock { $0.contains(batch.backend.url) }
        if legacy { return await self.ingest(batch) }
        for chunk in Self.chunks(batch.series, maxBytes: self.configuration.maxRequestBytes) {
            // A chunk delivered before a failure is sent again on retry: Pyroscope deduplicates nothing, but
            // chunks are whole series, so the cost is a duplicate series, never a broken one. Most batches are one
            // chunk.
            let outcome = await self.push(chunk, backend: batch.backend)
            switch outcome {
            case .delivered: continue
            case .noPushAPI:
                self.legacyBackends.withLock { _ = $0.insert(batch.backend.url) }
                self.logger.notice(
                    "Pyroscope has no push API (404); using /ingest",
                    metadata: ["pyroscope.url": "\(batch.backend.url)"]
                )
                return await self.ingest(batch)
            default: return outcome
            }
        }
        return .delivered
    }

    /// Splits series into request-sized groups (a series is never split across requests).
    static func chunks(_ series: [ProfileSeries], maxBytes: Int) -> [[ProfileSeries]] {
        var chunks: [[ProfileSeries]] = []
        var current: [ProfileSeries] = []
        var bytes = 0
        for item in series {
            if !current.isEmpty, bytes + item.bytes > maxBytes {
                chunks.append(current)
                current = []
                bytes = 0
            }
            current.append(item)
            bytes += item.bytes
        }
        if !current.isEmpty { chunks.append(current) }
        return chunks
    }

    /// The body of a push request.
    static func pushRequestBody(_ series: [ProfileSeries]) throws -> [UInt8] {
        var request = Push_V1_PushRequest()
        request.series = series.map { item in
            var message = Push_V1_RawProfileSeries()
            message.labels = item.labels.sorted { $0.key < $1.key }.map { name, value in
                var pair = Types_V1_LabelPair()
                pair.name = name
                pair.value = value
                return pair
            }
            message.samples = item.profiles.map { profile in
                var sample = Push_V1_RawSample()
                sample.rawProfile = Data(profile)
                return sample
            }
            return message
        }
        return try request.serializedBytes()
    }

    func push(_ series: [ProfileSeries], backend: AgentConfiguration.Backend) async -> Outcome {
        let body: [UInt8]
        do {
            body = try Self.pushRequestBody(series)
        } catch {
            return .rejected(status: 0, message: "encoding the push request failed: \(error)")
        }
        var request = HTTPClientRequest(url: backend.url + "/push.v1.PusherService/Push")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/proto")
        request.headers.add(name: "Connect-Protocol-Version", value: "1")
        request.body = .bytes(ByteBuffer(bytes: body))
        let outcome = await self.send(request, backend: backend, bytes: body.count)
        if outcome == .delivered {
            self.metrics.profilesPushed.increment(by: series.reduce(0) { $0 + $1.profiles.count })
        }
        return outcome
    }

    /// The legacy API: one request per profile, `name=SERVICE{label=value,…}`.
    func ingest(_ batch: PushBatch) async -> Outcome {
        for series in batch.series {
            for profile in series.profiles {
                var request = HTTPClientRequest(url: Self.ingestURL(batch.backend.url, labels: series.labels, batch))
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/octet-stream")
                request.body = .bytes(ByteBuffer(bytes: profile))
                let outcome = await self.send(request, backend: batch.backend, bytes: profile.count)
                guard outcome == .delivered else { return outcome }
                self.metrics.profilesPushed.increment()
            }
        }
        return .delivered
    }

    static func ingestURL(_ base: String, labels: [String: String], _ batch: PushBatch) -> String {
        let service = labels["service_name"] ?? "unknown_service"
        let rest = labels.filter { $0.key != "service_name" && $0.key != "__name__" }.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        var components = URLComponents()
        components.queryItems = [
            URLQueryItem(name: "name", value: "\(service){\(rest)}"),
            URLQueryItem(name: "format", value: "pprof"),
            URLQueryItem(name: "from", value: "\(Int(batch.start.timeIntervalSince1970))"),
            URLQueryItem(name: "until", value: "\(Int(batch.end.timeIntervalSince1970))"),
        ]
        // `+` and `{}` must be escaped for Pyroscope's query parser.
        let query = (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
        return base + "/ingest?" + query
    }

    /// Sends one request with the backend's tenant and credentials and classifies the answer.
    func send(_ request: HTTPClientRequest, backend: AgentConfiguration.Backend, bytes: Int) async -> Outcome {
        var request = request
        if let tenant = backend.tenantID { request.headers.add(name: "X-Scope-OrgID", value: tenant) }
        do {
            if let authorization = try self.authorization(for: backend) {
                request.headers.add(name: "Authorization", value: authorization)
            }
        } catch {
            self.metrics.pushFailure(code: "credentials")
            return .failed(code: "credentials", message: "\(error)")
        }
        let clock = ContinuousClock()
        let start = clock.now
        do {
            // One deadline for the whole exchange: a server that answers its head and then drips its body holds
            // this backend's loop for `requestTimeout` at most.
            let timeout = self.configuration.requestTimeout
            let (status, text, retryAfter) = try await withDeadline(timeout) { [client = self.client, request] in
                let response = try await client.execute(request, timeout: .init(timeout))
                let text = String(buffer: try await response.body.collect(upTo: 64 << 10))
                return (Int(response.status.code), text, response.headers.first(name: "Retry-After"))
            }
            self.metrics.pushDuration.recordNanoseconds(start.duration(to: clock.now).nanoseconds)
            self.metrics.pushRequest(code: "\(status)")
            switch status {
            case 200..<300:
                self.metrics.bytesPushed.increment(by: bytes)
                return .delivered
            case 404 where request.url.hasSuffix("/push.v1.PusherService/Push"):
                return .noPushAPI
            case 408, 429, 500..<600:
                self.metrics.pushFailure(code: "\(status)")
                return .failed(code: "\(status)", message: text, retryAfter: retryAfter.flatMap { Self.retryAfter($0) })
            default:
                self.metrics.pushFailure(code: "\(status)")
                return .rejected(status: status, message: text)
            }
        } catch {
            self.metrics.pushRequest(code: "error")
            self.metrics.pushFailure(code: "error")
            return .failed(code: "error", message: String(describing: error))
        }
    }

    /// `Basic …` or `Bearer …` from the credential files, read at every request so rotated Secrets apply
    /// without a restart (kubelet swaps mounted files in place). Never logged.
    func authorization(for backend: AgentConfiguration.Backend) throws -> String? {
        let directory = self.configuration.credentialsDirectory
        func read(_ file: String) throws -> String {
            let path = directory + "/" + file
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CredentialError(message: "credential file \(path) cannot be read")
            }
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
        }
        if let file = backend.bearerTokenFile { return "Bearer " + (try read(file)) }
        if let basic = backend.basicAuth {
            let password = try read(basic.passwordFile)
            return "Basic " + Data("\(basic.username):\(password)".utf8).base64EncodedString()
        }
        return nil
    }

    /// A `Retry-After` header's delay: delta-seconds, or an HTTP date (RFC 9110 §10.2.3); nil when unreadable.
    static func retryAfter(_ value: String, now: Date = Date()) -> Duration? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Int64(trimmed), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        return .milliseconds(Int64(max(0, date.timeIntervalSince(now)) * 1000))
    }

}

/// The request did not finish within its deadline.
struct DeadlineExceeded: Error, CustomStringConvertible {
    var limit: Duration
    var description: String { "no complete answer within \(self.limit)" }
}

/// Runs `body`, cancelling it when `limit` passes first.
func withDeadline<Value: Sendable>(
    _ limit: Duration,
    _ body: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    try await withThrowingTaskGroup(of: Value?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw DeadlineExceeded(limit: limit)
        }
        return value
    }
}

/// A credential file named by the configuration is missing or unreadable.
struct CredentialError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}
