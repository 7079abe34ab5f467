// ProfileSink.swift: the seam between the node sampler and where its profiles go. The sampler hands over each
// interval's profiles, one per series, as `CPUProfile` values; a sink decides how they are encoded, split and
// delivered. Grafana Pyroscope's limits live in `PyroscopeSink`, not in the sampler.

import CoreMetrics
import Foundation
import HearthAPI
import HearthProfile
import Logging

/// One series' profile of an interval, and the backend it goes to.
public struct SeriesProfile: Sendable {
    public var backend: AgentConfiguration.Backend
    /// The series' labels (`service_name` and the target's labels).
    public var labels: [String: String]
    public var profile: CPUProfile

    public init(backend: AgentConfiguration.Backend, labels: [String: String], profile: CPUProfile) {
        self.backend = backend
        self.labels = labels
        self.profile = profile
    }
}

/// Where the node sampler's profiles go at the end of each interval.
public protocol ProfileSink: Sendable {
    /// Takes the profiles of the interval `start..<end`, in a stable order (by labels). Called on the sampling
    /// thread: it must not block.
    func accept(_ profiles: [SeriesProfile], start: Date, end: Date)
}

/// Encodes profiles as gzipped pprof within Grafana Pyroscope's limits and spools one batch per backend, which
/// ``PyroscopePusher`` delivers.
public struct PyroscopeSink: ProfileSink {
    /// Per profile, as Grafana Pyroscope's defaults enforce them (`max-profile-stacktrace-samples`,
    /// `max-profile-size-bytes`, uncompressed).
    public static let maxSamplesPerProfile = 16_000
    public static let maxProfileBytes = 4 << 20

    let spool: DeliverySpool
    let metrics: AgentMetrics
    let logger: Logger

    public init(spool: DeliverySpool, metrics: AgentMetrics, logger: Logger) {
        self.spool = spool
        self.metrics = metrics
        self.logger = logger
    }

    public func accept(_ profiles: [SeriesProfile], start: Date, end: Date) {
        var byBackend: [AgentConfiguration.Backend: [ProfileSeries]] = [:]
        for series in profiles {
            do {
                let encoded = try Self.encode(series.profile)
                byBackend[series.backend, default: []].append(ProfileSeries(labels: series.labels, profiles: encoded))
            } catch {
                self.logger.error(
                    "encoding a profile failed; its samples are dropped",
                    metadata: ["series.service": "\(series.labels["service_name"] ?? "")", "error": "\(error)"]
                )
            }
        }
        for (backend, series) in byBackend {
            let dropped = self.spool.enqueue(PushBatch(backend: backend, series: series, start: start, end: end))
            if dropped > 0 {
                self.metrics.spoolDroppedProfiles.increment(by: dropped)
                self.logger.warning(
                    "spool full: dropped the oldest profiles",
                    metadata: ["spool.dropped": "\(dropped)", "spool.limitBytes": "\(self.spool.limitBytes)"]
                )
            }
        }
        self.metrics.spoolBytes.record(self.spool.bytes)
    }

    /// Encodes a profile as gzipped pprof, split into several profiles when it exceeds the server's limits.
    static func encode(
        _ profile: CPUProfile,
        maxSamples: Int = Self.maxSamplesPerProfile,
        maxBytes: Int = Self.maxProfileBytes
    ) throws -> [[UInt8]] {
        let options = PprofEncoder.Options(sampleTypes: .cpuOnly, comments: ["hearth-agent"])
        var result: [[UInt8]] = []
        var pending: [[ProfileSample]] = stride(from: 0, to: profile.samples.count, by: maxSamples).map {
            Array(profile.samples[$0..<min($0 + maxSamples, profile.samples.count)])
        }
        while let samples = pending.popLast() {
            var part = profile
            part.samples = samples
            let bytes = try PprofEncoder.encode(part, options: options)
            if bytes.count > maxBytes, samples.count > 1 {
                let half = samples.count / 2
                pending.append(Array(samples[half..<samples.count]))
                pending.append(Array(samples[0..<half]))
                continue
            }
            result.append(try Gzip.compress(bytes, level: 1))
        }
        return result
    }
}
