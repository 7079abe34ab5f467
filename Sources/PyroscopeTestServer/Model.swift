// Model.swift: what the server records and what tests read: accepted series with their decoded profiles, the
// request log, limits, and the connect error codes of Pyroscope's API.

import Foundation

/// A connect protocol error code and the HTTP status the connect protocol maps it to.
public struct ConnectCode: Hashable, Sendable, CustomStringConvertible {
    /// The code as written in the error body (`invalid_argument`).
    public var name: String
    /// The HTTP status of a unary connect response carrying this code.
    public var httpStatus: Int

    public init(name: String, httpStatus: Int) {
        self.name = name
        self.httpStatus = httpStatus
    }

    public static let invalidArgument = ConnectCode(name: "invalid_argument", httpStatus: 400)
    public static let unauthenticated = ConnectCode(name: "unauthenticated", httpStatus: 401)
    public static let permissionDenied = ConnectCode(name: "permission_denied", httpStatus: 403)
    public static let notFound = ConnectCode(name: "not_found", httpStatus: 404)
    public static let resourceExhausted = ConnectCode(name: "resource_exhausted", httpStatus: 429)
    public static let internalError = ConnectCode(name: "internal", httpStatus: 500)
    public static let unimplemented = ConnectCode(name: "unimplemented", httpStatus: 501)
    public static let unavailable = ConnectCode(name: "unavailable", httpStatus: 503)
    public static let deadlineExceeded = ConnectCode(name: "deadline_exceeded", httpStatus: 504)
    public static let unknown = ConnectCode(name: "unknown", httpStatus: 500)

    /// The code sent with `status` when none is given: the inverse of ``httpStatus``.
    public static func forHTTPStatus(_ status: Int) -> ConnectCode {
        let known: [ConnectCode] = [
            .invalidArgument, .unauthenticated, .permissionDenied, .notFound, .resourceExhausted, .internalError,
            .unimplemented, .unavailable, .deadlineExceeded,
        ]
        return known.first { $0.httpStatus == status } ?? ConnectCode(name: "unknown", httpStatus: status)
    }

    public var description: String { self.name }
}

/// Required credentials on the ingestion routes (`/ready` is always open).
public enum Authentication: Hashable, Sendable {
    /// No credentials required (Pyroscope's default).
    case none
    /// `Authorization: Basic base64(user:password)`, as Grafana Cloud expects.
    case basic(user: String, password: String)
    /// `Authorization: Bearer TOKEN`.
    case bearer(token: String)
}

/// Server-side limits, defaulting to Pyroscope's documented defaults.
public struct IngestionLimits: Hashable, Sendable {
    /// `max_profile_size_bytes`: the largest decompressed profile (4 MiB).
    public var maxProfileSizeBytes = 4 * 1024 * 1024
    /// `max_profile_stacktrace_samples`: samples per profile (16,000).
    public var maxProfileStacktraceSamples = 16_000
    /// `max_profile_stacktrace_depth`: deeper stacks are truncated, not rejected (1,000).
    public var maxProfileStacktraceDepth = 1_000
    /// `max_label_names_per_series` (30).
    public var maxLabelNamesPerSeries = 30
    /// `max_label_name_length` (1,024).
    public var maxLabelNameLength = 1_024
    /// `max_label_value_length` (2,048).
    public var maxLabelValueLength = 2_048
    /// `reject_older_than`: profiles stamped earlier than now minus this are rejected (1 h).
    public var rejectOlderThan: Duration = .seconds(3_600)
    /// `reject_newer_than`: profiles stamped later than now plus this are rejected (10 min).
    public var rejectNewerThan: Duration = .seconds(600)
    /// The largest request body, compressed or not (256 MiB); larger bodies get 413.
    public var maxRequestBodyBytes = 256 * 1024 * 1024

    public init() {}
}

/// Which API delivered a series.
public enum IngestRoute: String, Hashable, Sendable, Codable {
    /// `POST /push.v1.PusherService/Push`.
    case push
    /// `POST /ingest` (legacy).
    case ingest
}

/// One accepted profile with its series labels: one per `RawSample` of a push (or one per `/ingest` request).
public struct ReceivedSeries: Sendable {
    /// The series labels as the server stores them: validated, with `service_name` defaulted.
    public var labels: [String: String]
    /// The `X-Scope-OrgID` header, nil when absent.
    public var tenant: String?
    public var profile: DecodedProfile
    public var receivedAt: Date
    public var route: IngestRoute
    /// The `RawSample.ID` of a push (empty when unset, and for `/ingest`).
    public var sampleID: String
    /// The size of `raw_profile` as received (gzip-compressed or not).
    public var rawProfileBytes: Int
    /// Whether `raw_profile` was gzip-compressed.
    public var rawProfileGzipped: Bool
}

/// A pprof profile as the server decoded it, with names resolved through the string table.
public struct DecodedProfile: Sendable {
    public struct ValueType: Hashable, Sendable {
        public var type: String
        public var unit: String

        public init(type: String, unit: String) {
            self.type = type
            self.unit = unit
        }
    }

    public struct Sample: Sendable {
        /// Function names, leaf first (inlined frames expanded); a location without lines shows as `0xADDRESS`.
        public var stack: [String]
        public var values: [Int64]
        /// String labels (`Label.str`).
        public var labels: [String: String]
        /// Numeric labels (`Label.num`).
        public var numericLabels: [String: Int64]
    }

    public struct Mapping: Hashable, Sendable {
        public var id: UInt64
        public var start: UInt64
        public var limit: UInt64
        public var fileOffset: UInt64
        public var file: String
        public var buildID: String
        public var hasFunctions: Bool
    }

    public var sampleTypes: [ValueType]
    public var periodType: ValueType?
    public var period: Int64
    /// Nanoseconds since 1970; a profile sent with 0 gets the time the server received it, as Pyroscope does.
    public var timeNanos: Int64
    public var durationNanos: Int64
    public var defaultSampleType: String
    public var comments: [String]
    public var samples: [Sample]
    public var mappings: [Mapping]
    public var locationCount: Int
    public var functionCount: Int
    /// How many samples had their stack truncated to `max_profile_stacktrace_depth`.
    public var truncatedStacks: Int

    /// The index of the sample type named `type` (and `unit`, when given).
    public func valueIndex(type: String, unit: String? = nil) -> Int? {
        self.sampleTypes.firstIndex { $0.type == type && (unit == nil || $0.unit == unit) }
    }

    /// The sum of value `index` over all samples.
    public func total(valueIndex index: Int = 0) -> Int64 {
        self.samples.reduce(0) { $0 &+ (index < $1.values.count ? $1.values[index] : 0) }
    }

    /// Per function name, value `index` summed over the samples whose stack contains it anywhere (inclusive,
    /// counted once per sample even under recursion).
    public func inclusiveTotals(valueIndex index: Int = 0) -> [String: Int64] {
        var totals: [String: Int64] = [:]
        for sample in self.samples where index < sample.values.count {
            for name in Set(sample.stack) { totals[name, default: 0] &+= sample.values[index] }
        }
        return totals
    }

    /// Per function name, value `index` summed over the samples where it is the leaf (self time).
    public func leafTotals(valueIndex index: Int = 0) -> [String: Int64] {
        var totals: [String: Int64] = [:]
        for sample in self.samples where index < sample.values.count {
            if let leaf = sample.stack.first { totals[leaf, default: 0] &+= sample.values[index] }
        }
        return totals
    }

    /// Value `index` summed over the samples whose stack contains `function`.
    public func inclusiveTotal(of function: String, valueIndex index: Int = 0) -> Int64 {
        self.samples.reduce(0) { total, sample in
            index < sample.values.count && sample.stack.contains(function) ? total &+ sample.values[index] : total
        }
    }

    /// Value `index` summed over the samples whose leaf is `function`.
    public func leafTotal(of function: String, valueIndex index: Int = 0) -> Int64 {
        self.samples.reduce(0) { total, sample in
            index < sample.values.count && sample.stack.first == function ? total &+ sample.values[index] : total
        }
    }
}

/// One answered request (of any route). Credentials are never stored, only whether some were sent.
public struct RequestRecord: Hashable, Sendable {
    public var method: String
    public var path: String
    public var status: Int
    /// The connect code of an error on the push route, nil on success and on other routes.
    public var connectCode: String?
    /// The error message sent back, nil on success.
    public var errorMessage: String?
    public var tenant: String?
    public var authorizationPresent: Bool
    public var contentType: String?
    public var contentEncoding: String?
    public var userAgent: String?
    /// The body size as received (before decompression).
    public var bodyBytes: Int
    /// Series in the request (0 when it could not be decoded).
    public var seriesCount: Int
    /// Raw profiles in the request (0 when it could not be decoded).
    public var profileCount: Int
    public var receivedAt: Date
}

/// Totals for the benchmark: request counts by status, and what was accepted.
public struct ServerSummary: Codable, Hashable, Sendable {
    /// Requests by HTTP status, keyed by the status as a string (JSON object keys).
    public var requestsByStatus: [String: Int]
    public var requestsTotal: Int
    /// Accepted profiles (one per `RawSample`).
    public var series: Int
    /// pprof `Sample` messages in accepted profiles.
    public var samples: Int
    /// The sum of value 0 over accepted samples.
    public var valueTotal: Int64
    /// Request body bytes as received.
    public var bodyBytes: Int
}

/// An error of the test server's own API (not of the emulated HTTP API).
public struct PyroscopeTestServerError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case alreadyStarted
            case timeout
        }
        private let value: Value

        /// ``PyroscopeTestServer/start(host:port:)`` was called on a running server.
        public static let alreadyStarted = Code(value: .alreadyStarted)
        /// A wait timed out before its condition held.
        public static let timeout = Code(value: .timeout)

        public var description: String {
            switch self.value {
            case .alreadyStarted: "alreadyStarted"
            case .timeout: "timeout"
            }
        }
    }

    public var code: Code
    public var message: String
    public var description: String { "PyroscopeTestServerError(\(self.code)): \(self.message)" }
}
