// Ingestion.swift: decoding of PushRequest, the legacy /ingest parameters, and Pyroscope's series label validation
// (pkg/validation ValidateLabels), shared by both routes.

import Foundation

enum Ingestion {
    /// A `RawProfileSeries` as sent: labels in order (duplicates kept, to be rejected), and its raw samples.
    struct PushSeries {
        var labels: [(name: String, value: String)]
        var samples: [(profile: [UInt8], id: String)]
    }

    /// Decodes `push.v1.PushRequest`.
    static func decodePush(_ body: [UInt8]) throws(Rejection) -> [PushSeries] {
        do throws(ProtobufError) {
            var series: [PushSeries] = []
            var reader = ProtobufReader(body)
            while let field = try reader.next() {
                guard field.number == 1 else { continue }
                var seriesReader = try reader.message(field)
                var entry = PushSeries(labels: [], samples: [])
                while let seriesField = try seriesReader.next() {
                    switch seriesField.number {
                    case 1:
                        var labelReader = try seriesReader.message(seriesField)
                        var name = ""
                        var value = ""
                        while let labelField = try labelReader.next() {
                            if labelField.number == 1 { name = try labelReader.string(labelField) }
                            if labelField.number == 2 { value = try labelReader.string(labelField) }
                        }
                        entry.labels.append((name, value))
                    case 2:
                        var sampleReader = try seriesReader.message(seriesField)
                        var profile: [UInt8] = []
                        var id = ""
                        while let sampleField = try sampleReader.next() {
                            if sampleField.number == 1 { profile = try sampleReader.data(sampleField) }
                            if sampleField.number == 2 { id = try sampleReader.string(sampleField) }
                        }
                        entry.samples.append((profile, id))
                    default: break
                    }
                }
                series.append(entry)
            }
            return series
        } catch {
            // connect-go's wording for a body that does not unmarshal.
            throw .invalid("unmarshal into *v1.PushRequest: \(error.message)")
        }
    }

    // MARK: Labels

    /// Validates series labels as Pyroscope does, after defaulting `service_name`; returns them as a dictionary.
    static func validateLabels(
        _ pairs: [(name: String, value: String)],
        limits: IngestionLimits
    ) throws(Rejection) -> [String: String] {
        var pairs = pairs
        // The distributor appends a default when the value is empty or missing (an empty one then duplicates).
        if (pairs.first { $0.name == "service_name" }?.value ?? "").isEmpty {
            pairs.append(("service_name", "unknown_service"))
        }
        pairs.sort { $0.name < $1.name }
        let rendered = self.render(pairs)
        if pairs.count > limits.maxLabelNamesPerSeries {
            throw .invalid(
                "profile series '\(rendered)' has \(pairs.count) label names; limit \(limits.maxLabelNamesPerSeries)"
            )
        }
        let metricName = pairs.first { $0.name == "__name__" }?.value ?? ""
        guard self.isValidMetricName(metricName) else {
            throw .invalid("invalid labels '\(rendered)' with error: invalid metric name")
        }
        var last = ""
        for (name, value) in pairs {
            if name.utf8.count > limits.maxLabelNameLength {
                throw .invalid("profile with labels '\(rendered)' has label name too long: '\(name)'")
            }
            if value.utf8.count > limits.maxLabelValueLength {
                throw .invalid("profile with labels '\(rendered)' has label value too long: '\(value)'")
            }
            if !self.isValidLabelName(name) {
                throw .invalid("invalid labels '\(rendered)' with error: invalid label name '\(name)'")
            }
            // Values are valid UTF-8 already: the protobuf string decoder rejected the others.
            if name == last {
                throw .invalid("profile with labels '\(rendered)' has duplicate label name: '\(name)'")
            }
            last = name
        }
        return Dictionary(pairs.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    /// `{name="value", ...}`, as Prometheus renders a label set.
    static func render(_ pairs: [(name: String, value: String)]) -> String {
        let body = pairs.map { pair in
            let escaped = pair.value.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
            return "\(pair.name)=\"\(escaped)\""
        }
        return "{" + body.joined(separator: ", ") + "}"
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`.
    static func isValidLabelName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first.isLetter || first == UInt8(ascii: "_") else { return false }
        return name.utf8.allSatisfy { $0.isLetter || $0.isDigit || $0 == UInt8(ascii: "_") }
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` (a Prometheus metric name; empty is invalid).
    static func isValidMetricName(_ name: String) -> Bool {
        let colon = UInt8(ascii: ":")
        let underscore = UInt8(ascii: "_")
        guard let first = name.utf8.first, first.isLetter || first == underscore || first == colon else {
            return false
        }
        return name.utf8.allSatisfy { $0.isLetter || $0.isDigit || $0 == underscore || $0 == colon }
    }

    // MARK: Legacy /ingest

    /// Parses `name=APP{k=v,k2=v2}` into the application name and its labels.
    static func parseIngestName(
        _ name: String
    ) throws(Rejection) -> (app: String, labels: [(name: String, value: String)]) {
        guard let open = name.firstIndex(of: "{") else {
            let app = name.trimmingCharacters(in: .whitespaces)
            guard !app.isEmpty else { throw .invalid("name is required") }
            return (app, [])
        }
        guard name.hasSuffix("}") else { throw .invalid("invalid name \(name): missing closing brace") }
        let app = name[..<open].trimmingCharacters(in: .whitespaces)
        guard !app.isEmpty else { throw .invalid("invalid name \(name): empty application name") }
        let inner = name[name.index(after: open)..<name.index(before: name.endIndex)]
        var labels: [(name: String, value: String)] = []
        for item in inner.split(separator: ",", omittingEmptySubsequences: true) {
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw .invalid("invalid name \(name): label \(trimmed) has no value")
            }
            let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard self.isValidLabelName(key) else { throw .invalid("invalid name \(name): invalid label name \(key)") }
            labels.append((key, value))
        }
        return (app, labels)
    }

    /// The `__name__` Pyroscope derives from a pprof's sample types on the legacy route.
    static func metricName(sampleTypes: [DecodedProfile.ValueType]) -> String {
        var last = ""
        for sampleType in sampleTypes {
            let type = sampleType.type
            last = type
            if type == "wall" { return "wall" }
            if type.contains("cpu") { return "process_cpu" }
            if type.contains("alloc_") || type.contains("inuse_") || type == "space" || type == "objects" {
                return "memory"
            }
            if type.contains("mutex_") { return "mutex" }
            if type.contains("block_") { return "block" }
            if type.contains("goroutine") { return "goroutines" }
        }
        return last
    }

    /// The series labels of a legacy ingest: the derived `__name__`, `service_name` (the app name, unless the
    /// labels carry one, then the app name goes to `app_name`), and the labels from `name`.
    static func ingestLabels(
        app: String,
        labels: [(name: String, value: String)],
        metricName: String
    ) -> [(name: String, value: String)] {
        var pairs: [(name: String, value: String)] = [("__name__", metricName)]
        pairs += labels.filter { $0.name != "__name__" }
        if labels.contains(where: { $0.name == "service_name" }) {
            if !labels.contains(where: { $0.name == "app_name" }) { pairs.append(("app_name", app)) }
        } else {
            pairs.append(("service_name", app))
        }
        return pairs
    }
}

extension UInt8 {
    fileprivate var isLetter: Bool { (self >= 0x41 && self <= 0x5A) || (self >= 0x61 && self <= 0x7A) }
    fileprivate var isDigit: Bool { self >= 0x30 && self <= 0x39 }
}
