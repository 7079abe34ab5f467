// PprofEncoder.swift: a CPUProfile encoded as pprof (`perftools.profiles.Profile`), plain or gzipped, for
// `go tool pprof`, Grafana Pyroscope and Parca: strings interned; mappings, functions and locations deduplicated.

import FoundationEssentials
import HearthBase
internal import SwiftProtobuf

/// Encodes a ``CPUProfile`` as pprof (`perftools.profiles.Profile`), the format of `go tool pprof`, Grafana
/// Pyroscope and Parca.
///
/// The profile it writes:
/// - `sample_type` is `[samples/count, cpu/nanoseconds]` and each sample's values are `[count, count × period]`
///   (the layout of Go's `runtime/pprof` CPU profiles; ``Options/SampleTypes/cpuOnly`` writes just
///   `cpu/nanoseconds`, like the legacy Pyroscope eBPF agent). `default_sample_type` is `cpu`.
/// - `period_type` is `cpu/nanoseconds` and `period` is `1e9 / frequency`.
/// - `time_nanos` is the start time and `duration_nanos` the duration.
/// - One `Location` per distinct frame (in practice per mapping and address), each with one `Line` naming a
///   deduplicated `Function`; locations are linked to mappings.
/// - The profile's mappings, plus one derived from the frames for every module without one (the kernel's
///   `[kernel.kallsyms]` included), with build ids; `has_functions` is set when every frame in the mapping was
///   resolved, so a server-side symbolizer knows which ones it could improve.
/// - String labels from ``ProfileSample/labels`` and numeric ones from ``ProfileSample/numericLabels``.
public enum PprofEncoder {
    /// What to put in the profile.
    public struct Options: Sendable {
        /// The sample types to write.
        public struct SampleTypes: Hashable, Sendable {
            private enum Value: Hashable, Sendable {
                case countAndCPU
                case cpuOnly
            }
            private let value: Value

            /// `[samples/count, cpu/nanoseconds]`, values `[count, count × period]`. Pyroscope stores both series
            /// (`process_cpu:samples:count:cpu:nanoseconds` and `process_cpu:cpu:nanoseconds:cpu:nanoseconds`).
            public static let countAndCPU = SampleTypes(value: .countAndCPU)
            /// `[cpu/nanoseconds]`, value `[count × period]`: the legacy Pyroscope eBPF agent's layout.
            public static let cpuOnly = SampleTypes(value: .cpuOnly)

            var includesCount: Bool { self.value == .countAndCPU }
        }

        /// The sample types to write; ``SampleTypes/countAndCPU`` by default.
        public var sampleTypes: SampleTypes
        /// Free-form comments shown by `go tool pprof` (for example the tool that wrote the profile).
        public var comments: [String]

        /// Creates options.
        public init(sampleTypes: SampleTypes = .countAndCPU, comments: [String] = []) {
            self.sampleTypes = sampleTypes
            self.comments = comments
        }
    }

    /// Encodes `profile` as a serialized, uncompressed pprof `Profile` message.
    /// - Parameters:
    ///   - profile: The profile to encode.
    ///   - options: What to put in the profile.
    /// - Returns: The protobuf bytes.
    /// - Throws: An error from SwiftProtobuf if serialization fails.
    public static func encode(_ profile: CPUProfile, options: Options = Options()) throws -> [UInt8] {
        let message = self.makeMessage(profile, options: options)
        return try message.serializedBytes()
    }

    /// Encodes `profile` as a gzip-compressed pprof file, the form `go tool pprof` and Pyroscope expect.
    ///
    /// Compresses at level 1 (fastest), as Go's `runtime/pprof` and the profiling agents do: profiles are
    /// small, and the agent's CPU budget matters more than a few bytes.
    /// - Parameters:
    ///   - profile: The profile to encode.
    ///   - options: What to put in the profile.
    /// - Returns: The gzip bytes.
    /// - Throws: An error from SwiftProtobuf or ``GzipError``.
    public static func encodeGzipped(_ profile: CPUProfile, options: Options = Options()) throws -> [UInt8] {
        try Gzip.compress(self.encode(profile, options: options), level: 1)
    }

    static func makeMessage(_ profile: CPUProfile, options: Options) -> Perftools_Profiles_Profile {
        var builder = PprofBuilder(profile: profile)
        return builder.build(options: options)
    }
}

/// Builds the message: interns strings, and deduplicates mappings, functions and locations.
private struct PprofBuilder {
    private let profile: CPUProfile
    private var message = Perftools_Profiles_Profile()
    private var strings: [String: Int64] = ["": 0]
    private var functions: [String: UInt64] = [:]
    private var locations: [LocationKey: UInt64] = [:]
    private var frameLocations: [ProfileFrame: UInt64] = [:]
    /// Mappings by file, each list sorted by start address.
    private var mappingsByFile: [String: [(mapping: ProfileMapping, id: UInt64)]] = [:]
    private var mappingIDs: [ProfileMapping: UInt64] = [:]
    /// Per mapping id, whether every frame placed in it was resolved.
    private var mappingResolved: [UInt64: Bool] = [:]

    init(profile: CPUProfile) {
        self.profile = profile
        self.message.stringTable = [""]
    }

    mutating func build(options: PprofEncoder.Options) -> Perftools_Profiles_Profile {
        let period = self.profile.periodNanoseconds
        let cpu = self.valueType("cpu", "nanoseconds")
        if options.sampleTypes.includesCount {
            self.message.sampleType = [self.valueType("samples", "count"), cpu]
        } else {
            self.message.sampleType = [cpu]
        }
        self.message.periodType = cpu
        self.message.period = period
        self.message.defaultSampleType = self.string("cpu")
        self.message.timeNanos = Self.nanoseconds(since1970: self.profile.startTime)
        self.message.durationNanos = self.profile.duration.nanoseconds
        self.message.comment = options.comments.map { self.string($0) }

        self.registerMappings()
        self.addDerivedMappings()

        self.message.sample.reserveCapacity(self.profile.samples.count)
        for sample in self.profile.samples where sample.count > 0 {
            var encoded = Perftools_Profiles_Sample()
            encoded.locationID = sample.frames.map { self.location(for: $0) }
            let (cpuValue, overflow) = sample.count.multipliedReportingOverflow(by: period)
            let cpuNanoseconds = overflow ? Int64.max : cpuValue
            encoded.value = options.sampleTypes.includesCount ? [sample.count, cpuNanoseconds] : [cpuNanoseconds]
            for key in sample.labels.keys.sorted() {
                var label = Perftools_Profiles_Label()
                label.key = self.string(key)
                label.str = self.string(sample.labels[key]!)
                encoded.label.append(label)
            }
            for key in sample.numericLabels.keys.sorted() {
                var label = Perftools_Profiles_Label()
                label.key = self.string(key)
                label.num = sample.numericLabels[key]!
                encoded.label.append(label)
            }
            self.message.sample.append(encoded)
        }

        for index in self.message.mapping.indices {
            let id = self.message.mapping[index].id
            self.message.mapping[index].hasFunctions_p = self.mappingResolved[id] ?? false
        }
        return self.message
    }

    // MARK: Strings

    private mutating func string(_ value: String) -> Int64 {
        if let index = self.strings[value] { return index }
        let index = Int64(self.message.stringTable.count)
        self.message.stringTable.append(value)
        self.strings[value] = index
        return index
    }

    private mutating func valueType(_ type: String, _ unit: String) -> Perftools_Profiles_ValueType {
        var valueType = Perftools_Profiles_ValueType()
        valueType.type = self.string(type)
        valueType.unit = self.string(unit)
        return valueType
    }

    // MARK: Mappings

    private mutating func registerMappings() {
        for mapping in self.profile.mappings where self.mappingIDs[mapping] == nil {
            self.appendMapping(mapping)
        }
    }

    /// Modules that frames refer to but no mapping covers get a mapping spanning their frames' addresses.
    private mutating func addDerivedMappings() {
        var derived: [String: ProfileMapping] = [:]
        var order: [String] = []
        for sample in self.profile.samples {
            for frame in sample.frames where self.existingMapping(for: frame) == nil {
                if var mapping = derived[frame.module] {
                    mapping.start = min(mapping.start, frame.address)
                    mapping.limit = max(mapping.limit, frame.address &+ 1)
                    if mapping.buildID == nil { mapping.buildID = frame.buildID }
                    derived[frame.module] = mapping
                } else {
                    derived[frame.module] = ProfileMapping(
                        start: frame.address,
                        limit: frame.address &+ 1,
                        fileOffset: 0,
                        file: frame.module,
                        buildID: frame.buildID
                    )
                    order.append(frame.module)
                }
            }
        }
        for module in order {
            self.appendMapping(derived[module]!)
        }
    }

    private mutating func appendMapping(_ mapping: ProfileMapping) {
        let id = UInt64(self.message.mapping.count + 1)
        var encoded = Perftools_Profiles_Mapping()
        encoded.id = id
        encoded.memoryStart = mapping.start
        encoded.memoryLimit = mapping.limit
        encoded.fileOffset = mapping.fileOffset
        encoded.filename = self.string(mapping.file)
        if let buildID = mapping.buildID, !buildID.isEmpty {
            encoded.buildID = self.string(buildID)
        }
        self.message.mapping.append(encoded)
        self.mappingIDs[mapping] = id
        var list = self.mappingsByFile[mapping.file, default: []]
        let insertAt = list.firstIndex { $0.mapping.start > mapping.start } ?? list.endIndex
        list.insert((mapping, id), at: insertAt)
        self.mappingsByFile[mapping.file] = list
    }

    /// The mapping of the frame's module that contains its address; for a module with a single mapping, that
    /// mapping even when the address falls outside it (frames and mappings may come from different snapshots).
    private func existingMapping(for frame: ProfileFrame) -> UInt64? {
        guard let list = self.mappingsByFile[frame.module], !list.isEmpty else { return nil }
        // The last mapping starting at or before the address.
        var low = 0
        var high = list.count
        while low < high {
            let middle = (low + high) / 2
            if list[middle].mapping.start <= frame.address { low = middle + 1 } else { high = middle }
        }
        if low > 0, list[low - 1].mapping.contains(frame.address) { return list[low - 1].id }
        if list.count == 1 { return list[0].id }
        // Overlapping ranges (a derived mapping may span real ones): any mapping that contains the address.
        return list.first { $0.mapping.contains(frame.address) }?.id
    }

    // MARK: Functions and locations

    private mutating func function(named name: String) -> UInt64 {
        if let id = self.functions[name] { return id }
        let id = UInt64(self.message.function.count + 1)
        var function = Perftools_Profiles_Function()
        function.id = id
        function.name = self.string(name)
        function.systemName = function.name
        self.message.function.append(function)
        self.functions[name] = id
        return id
    }

    /// One location per (mapping, address), and per function name should two frames at one address disagree.
    private mutating func location(for frame: ProfileFrame) -> UInt64 {
        if let id = self.frameLocations[frame] { return id }
        let mappingID = self.existingMapping(for: frame) ?? 0
        let key = LocationKey(mappingID: mappingID, address: frame.address, function: frame.displayName)
        if let id = self.locations[key] {
            self.frameLocations[frame] = id
            return id
        }
        let id = UInt64(self.message.location.count + 1)
        var location = Perftools_Profiles_Location()
        location.id = id
        location.address = frame.address
        location.mappingID = mappingID
        if mappingID != 0 {
            self.mappingResolved[mappingID] = (self.mappingResolved[mappingID] ?? true) && frame.isResolved
        }
        var line = Perftools_Profiles_Line()
        line.functionID = self.function(named: frame.displayName)
        location.line = [line]
        self.message.location.append(location)
        self.locations[key] = id
        self.frameLocations[frame] = id
        return id
    }

    private static func nanoseconds(since1970 date: Date) -> Int64 {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite, abs(seconds) < 9.2e9 else { return 0 }
        return Int64((seconds * 1e9).rounded())
    }
}

private struct LocationKey: Hashable {
    var mappingID: UInt64
    var address: UInt64
    var function: String
}

extension Perftools_Profiles_Profile {
    /// Decodes a pprof profile, gzip-compressed or not.
    init(pprof bytes: [UInt8]) throws {
        let raw = Gzip.isCompressed(bytes) ? try Gzip.decompress(bytes) : bytes
        try self.init(serializedBytes: raw)
    }
}
