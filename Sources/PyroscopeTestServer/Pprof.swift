// Pprof.swift: decodes perftools.profiles.Profile with the server's own reader and applies Pyroscope's profile
// validation (pkg/validation ValidateProfile, plus the structural checks that decoding and normalization imply).

import Foundation
import HearthBase

/// Why the server refused a request: the connect code and the message Pyroscope would send.
struct Rejection: Error, Sendable, CustomStringConvertible {
    var code: ConnectCode
    var message: String
    var description: String { "\(self.code): \(self.message)" }

    static func invalid(_ message: String) -> Rejection { Rejection(code: .invalidArgument, message: message) }
}

enum PprofDecoder {
    private struct ValueType {
        var type: Int64 = 0
        var unit: Int64 = 0
    }

    private struct Label {
        var key: Int64 = 0
        var str: Int64 = 0
        var num: Int64 = 0
        var numUnit: Int64 = 0
    }

    private struct Sample {
        var locationIDs: [UInt64] = []
        var values: [Int64] = []
        var labels: [Label] = []
    }

    private struct Mapping {
        var id: UInt64 = 0
        var start: UInt64 = 0
        var limit: UInt64 = 0
        var offset: UInt64 = 0
        var filename: Int64 = 0
        var buildID: Int64 = 0
        var hasFunctions = false
    }

    private struct Location {
        var id: UInt64 = 0
        var mappingID: UInt64 = 0
        var address: UInt64 = 0
        var functionIDs: [UInt64] = []
    }

    private struct Function {
        var id: UInt64 = 0
        var name: Int64 = 0
        var systemName: Int64 = 0
        var filename: Int64 = 0
    }

    private struct Raw {
        var sampleTypes: [ValueType] = []
        var samples: [Sample] = []
        var mappings: [Mapping] = []
        var locations: [Location] = []
        var functions: [Function] = []
        var strings: [String] = []
        /// The first string table entry that is not UTF-8, reported after the other checks as Pyroscope orders them.
        var invalidUTF8: [UInt8]?
        var dropFrames: Int64 = 0
        var keepFrames: Int64 = 0
        var timeNanos: Int64 = 0
        var durationNanos: Int64 = 0
        var periodType: ValueType?
        var period: Int64 = 0
        var comments: [Int64] = []
        var defaultSampleType: Int64 = 0
    }

    /// Decodes and validates an uncompressed profile. `seriesLabels` is the series' label string for messages;
    /// a profile without `time_nanos` gets `defaultTime`.
    static func decode(
        _ bytes: [UInt8],
        limits: IngestionLimits,
        now: Date,
        defaultTime: Date? = nil,
        seriesLabels: String
    ) throws(Rejection) -> DecodedProfile {
        var raw: Raw
        do throws(ProtobufError) {
            raw = try self.parse(bytes)
        } catch {
            throw .invalid("failed to parse pprof: \(error.message)")
        }

        let nowNanos = Int64(now.timeIntervalSince1970 * 1e9)
        if raw.timeNanos > 0 {
            // Pyroscope compares at millisecond precision: valid when strictly inside the window.
            // A zero limit disables that side of the window.
            let millis = raw.timeNanos / 1_000_000
            let from = (nowNanos - limits.rejectOlderThan.nanoseconds) / 1_000_000
            let to = (nowNanos + limits.rejectNewerThan.nanoseconds) / 1_000_000
            let afterFrom = limits.rejectOlderThan == .zero || millis > from
            let beforeTo = limits.rejectNewerThan == .zero || millis < to
            if !(afterFrom && beforeTo) {
                throw .invalid(
                    "profile with labels '\(seriesLabels)' is outside of ingestion window (profile timestamp: "
                        + "\(formatMillis(millis)), the ingestion window starts at \(formatMillis(from)) and ends at "
                        + "\(formatMillis(to)))"
                )
            }
        } else {
            raw.timeNanos = defaultTime.map { Int64($0.timeIntervalSince1970 * 1e9) } ?? nowNanos
        }

        if raw.samples.count > limits.maxProfileStacktraceSamples {
            throw .invalid(
                "the profile with labels '\(seriesLabels)' exceeds the samples count limit "
                    + "(max_profile_stacktrace_samples, actual: \(raw.samples.count), "
                    + "limit: \(limits.maxProfileStacktraceSamples))"
            )
        }

        try self.validate(raw)
        return self.resolve(raw, depthLimit: limits.maxProfileStacktraceDepth)
    }

    // MARK: Parsing

    private static func parse(_ bytes: [UInt8]) throws(ProtobufError) -> Raw {
        var raw = Raw()
        var reader = ProtobufReader(bytes)
        while let field = try reader.next() {
            switch field.number {
            case 1: raw.sampleTypes.append(try self.valueType(reader.message(field)))
            case 2: raw.samples.append(try self.sample(reader.message(field)))
            case 3: raw.mappings.append(try self.mapping(reader.message(field)))
            case 4: raw.locations.append(try self.location(reader.message(field)))
            case 5: raw.functions.append(try self.function(reader.message(field)))
            case 6:
                let data = try reader.data(field)
                if let string = String(validating: data, as: UTF8.self) {
                    raw.strings.append(string)
                } else {
                    raw.strings.append("")
                    if raw.invalidUTF8 == nil { raw.invalidUTF8 = data }
                }
            case 7: raw.dropFrames = try reader.int64(field)
            case 8: raw.keepFrames = try reader.int64(field)
            case 9: raw.timeNanos = try reader.int64(field)
            case 10: raw.durationNanos = try reader.int64(field)
            case 11: raw.periodType = try self.valueType(reader.message(field))
            case 12: raw.period = try reader.int64(field)
            case 13: try reader.appendVarints(field, to: &raw.comments)
            case 14: raw.defaultSampleType = try reader.int64(field)
            default: break
            }
        }
        return raw
    }

    private static func valueType(_ message: ProtobufReader) throws(ProtobufError) -> ValueType {
        var reader = message
        var valueType = ValueType()
        while let field = try reader.next() {
            switch field.number {
            case 1: valueType.type = try reader.int64(field)
            case 2: valueType.unit = try reader.int64(field)
            default: break
            }
        }
        return valueType
    }

    private static func sample(_ message: ProtobufReader) throws(ProtobufError) -> Sample {
        var reader = message
        var sample = Sample()
        while let field = try reader.next() {
            switch field.number {
            case 1: try reader.appendVarints(field, to: &sample.locationIDs)
            case 2: try reader.appendVarints(field, to: &sample.values)
            case 3:
                var labelReader = try reader.message(field)
                var label = Label()
                while let labelField = try labelReader.next() {
                    switch labelField.number {
                    case 1: label.key = try labelReader.int64(labelField)
                    case 2: label.str = try labelReader.int64(labelField)
                    case 3: label.num = try labelReader.int64(labelField)
                    case 4: label.numUnit = try labelReader.int64(labelField)
                    default: break
                    }
                }
                sample.labels.append(label)
            default: break
            }
        }
        return sample
    }

    private static func mapping(_ message: ProtobufReader) throws(ProtobufError) -> Mapping {
        var reader = message
        var mapping = Mapping()
        while let field = try reader.next() {
            switch field.number {
            case 1: mapping.id = try reader.uint64(field)
            case 2: mapping.start = try reader.uint64(field)
            case 3: mapping.limit = try reader.uint64(field)
            case 4: mapping.offset = try reader.uint64(field)
            case 5: mapping.filename = try reader.int64(field)
            case 6: mapping.buildID = try reader.int64(field)
            case 7: mapping.hasFunctions = try reader.bool(field)
            default: break
            }
        }
        return mapping
    }

    private static func location(_ message: ProtobufReader) throws(ProtobufError) -> Location {
        var reader = message
        var location = Location()
        while let field = try reader.next() {
            switch field.number {
            case 1: location.id = try reader.uint64(field)
            case 2: location.mappingID = try reader.uint64(field)
            case 3: location.address = try reader.uint64(field)
            case 4:
                var lineReader = try reader.message(field)
                var functionID: UInt64 = 0
                while let lineField = try lineReader.next() {
                    if lineField.number == 1 { functionID = try lineReader.uint64(lineField) }
                }
                location.functionIDs.append(functionID)
            default: break
            }
        }
        return location
    }

    private static func function(_ message: ProtobufReader) throws(ProtobufError) -> Function {
        var reader = message
        var function = Function()
        while let field = try reader.next() {
            switch field.number {
            case 1: function.id = try reader.uint64(field)
            case 2: function.name = try reader.int64(field)
            case 3: function.systemName = try reader.int64(field)
            case 4: function.filename = try reader.int64(field)
            default: break
            }
        }
        return function
    }

    // MARK: Validation

    private static func validate(_ raw: Raw) throws(Rejection) {
        guard !raw.sampleTypes.isEmpty else { throw .invalid("profile has no sample types") }
        guard raw.strings.first == "" else { throw .invalid("string table must start with an empty string") }

        let count = raw.strings.count
        func check(_ index: Int64, _ what: @autoclosure () -> String) throws(Rejection) {
            guard index >= 0, index < count else {
                throw .invalid("\(what()) string index \(index) out of range (string table has \(count) entries)")
            }
        }
        for valueType in raw.sampleTypes {
            try check(valueType.type, "sample type")
            try check(valueType.unit, "sample type unit")
        }
        if let periodType = raw.periodType {
            try check(periodType.type, "period type")
            try check(periodType.unit, "period type unit")
        }
        try check(raw.dropFrames, "drop_frames")
        try check(raw.keepFrames, "keep_frames")
        try check(raw.defaultSampleType, "default_sample_type")
        for comment in raw.comments { try check(comment, "comment") }
        for mapping in raw.mappings {
            try check(mapping.filename, "mapping filename")
            try check(mapping.buildID, "mapping build_id")
        }
        for function in raw.functions {
            try check(function.name, "function name")
            try check(function.systemName, "function system_name")
            try check(function.filename, "function filename")
        }
        for sample in raw.samples {
            for label in sample.labels {
                try check(label.key, "label key")
                try check(label.str, "label value")
                try check(label.numUnit, "label num_unit")
            }
        }

        for location in raw.locations where location.id == 0 { throw .invalid("location id is 0") }
        for function in raw.functions where function.id == 0 { throw .invalid("function id is 0") }

        let functionIDs = Set(raw.functions.map(\.id))
        for location in raw.locations {
            for id in location.functionIDs where !functionIDs.contains(id) {
                throw .invalid("location \(location.id) references unknown function id \(id)")
            }
        }
        let locationIDs = Set(raw.locations.map(\.id))
        for sample in raw.samples {
            for id in sample.locationIDs where !locationIDs.contains(id) {
                throw .invalid("sample references unknown location id \(id)")
            }
            guard sample.values.count == raw.sampleTypes.count else {
                throw .invalid(
                    "sample has \(sample.values.count) values, want \(raw.sampleTypes.count) (one per sample type)"
                )
            }
        }

        for valueType in raw.sampleTypes where raw.strings[Int(valueType.type)].contains("-") {
            throw .invalid("sample type contains -")
        }
        if let invalid = raw.invalidUTF8 {
            throw .invalid("invalid utf8 string hex: \(invalid.map { String(format: "%02x", $0) }.joined())")
        }
    }

    // MARK: Resolution

    private static func resolve(_ raw: Raw, depthLimit: Int) -> DecodedProfile {
        let strings = raw.strings
        var functionNames: [UInt64: String] = [:]
        for function in raw.functions { functionNames[function.id] = strings[Int(function.name)] }
        var frames: [UInt64: [String]] = [:]
        for location in raw.locations {
            // Lines are leaf-most first: an inlined callee precedes its caller.
            frames[location.id] =
                location.functionIDs.isEmpty
                ? ["0x" + String(location.address, radix: 16)]
                : location.functionIDs.map { functionNames[$0] ?? "" }
        }

        var truncated = 0
        var samples: [DecodedProfile.Sample] = []
        samples.reserveCapacity(raw.samples.count)
        for sample in raw.samples {
            var ids = sample.locationIDs[...]
            if depthLimit > 0, ids.count > depthLimit {
                // Pyroscope keeps the root side: location_id[0] is the leaf.
                ids = ids.suffix(depthLimit)
                truncated += 1
            }
            var stack: [String] = []
            stack.reserveCapacity(ids.count)
            for id in ids { stack.append(contentsOf: frames[id] ?? []) }
            var labels: [String: String] = [:]
            var numericLabels: [String: Int64] = [:]
            for label in sample.labels {
                let key = strings[Int(label.key)]
                if label.str != 0 {
                    labels[key] = strings[Int(label.str)]
                } else {
                    numericLabels[key] = label.num
                }
            }
            samples.append(
                DecodedProfile.Sample(stack: stack, values: sample.values, labels: labels, numericLabels: numericLabels)
            )
        }

        func valueType(_ raw: ValueType) -> DecodedProfile.ValueType {
            DecodedProfile.ValueType(type: strings[Int(raw.type)], unit: strings[Int(raw.unit)])
        }
        return DecodedProfile(
            sampleTypes: raw.sampleTypes.map(valueType),
            periodType: raw.periodType.map(valueType),
            period: raw.period,
            timeNanos: raw.timeNanos,
            durationNanos: raw.durationNanos,
            defaultSampleType: strings[Int(raw.defaultSampleType)],
            comments: raw.comments.map { strings[Int($0)] },
            samples: samples,
            mappings: raw.mappings.map {
                DecodedProfile.Mapping(
                    id: $0.id,
                    start: $0.start,
                    limit: $0.limit,
                    fileOffset: $0.offset,
                    file: strings[Int($0.filename)],
                    buildID: strings[Int($0.buildID)],
                    hasFunctions: $0.hasFunctions
                )
            },
            locationCount: raw.locations.count,
            functionCount: raw.functions.count,
            truncatedStacks: truncated
        )
    }

    private static func formatMillis(_ millis: Int64) -> String {
        Date(timeIntervalSince1970: Double(millis) / 1000).formatted(.iso8601)
    }
}
