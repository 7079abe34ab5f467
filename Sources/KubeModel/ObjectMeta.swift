// ObjectMeta.swift: metav1.ObjectMeta, OwnerReference, ListMeta and time helpers.

import Foundation

/// metav1.ObjectMeta.
public struct ObjectMeta: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(name: String? = nil, namespace: String? = nil, labels: [String: String]? = nil) {
        self.object = [:]
        self.name = name
        self.namespace = namespace
        self.labels = labels
    }

    public var name: String? {
        get { self.get("name") }
        set { self.set("name", newValue) }
    }
    public var generateName: String? {
        get { self.get("generateName") }
        set { self.set("generateName", newValue) }
    }
    public var namespace: String? {
        get { self.get("namespace") }
        set { self.set("namespace", newValue) }
    }
    public var uid: String? {
        get { self.get("uid") }
        set { self.set("uid", newValue) }
    }
    public var resourceVersion: String? {
        get { self.get("resourceVersion") }
        set { self.set("resourceVersion", newValue) }
    }
    public var generation: Int64? {
        get { self.get("generation") }
        set { self.set("generation", newValue) }
    }
    public var creationTimestamp: String? {
        get { self.get("creationTimestamp") }
        set { self.set("creationTimestamp", newValue) }
    }
    public var deletionTimestamp: String? {
        get { self.get("deletionTimestamp") }
        set { self.set("deletionTimestamp", newValue) }
    }
    public var deletionGracePeriodSeconds: Int64? {
        get { self.get("deletionGracePeriodSeconds") }
        set { self.set("deletionGracePeriodSeconds", newValue) }
    }
    public var labels: [String: String]? {
        get { self.get("labels") }
        set { self.set("labels", newValue) }
    }
    public var annotations: [String: String]? {
        get { self.get("annotations") }
        set { self.set("annotations", newValue) }
    }
    public var finalizers: [String]? {
        get { self.get("finalizers") }
        set { self.set("finalizers", newValue) }
    }
    public var ownerReferences: [OwnerReference]? {
        get { self.get("ownerReferences") }
        set { self.set("ownerReferences", newValue) }
    }
    public var managedFields: [ManagedFieldsEntry]? {
        get { self.get("managedFields") }
        set { self.set("managedFields", newValue) }
    }

    /// True once a DELETE has started (finalizers pending).
    public var isBeingDeleted: Bool { self.deletionTimestamp != nil }
}

/// metav1.OwnerReference.
public struct OwnerReference: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(
        apiVersion: String,
        kind: String,
        name: String,
        uid: String,
        controller: Bool? = nil,
        blockOwnerDeletion: Bool? = nil
    ) {
        self.object = [:]
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.uid = uid
        self.controller = controller
        self.blockOwnerDeletion = blockOwnerDeletion
    }

    public var apiVersion: String? {
        get { self.get("apiVersion") }
        set { self.set("apiVersion", newValue) }
    }
    public var kind: String? {
        get { self.get("kind") }
        set { self.set("kind", newValue) }
    }
    public var name: String? {
        get { self.get("name") }
        set { self.set("name", newValue) }
    }
    public var uid: String? {
        get { self.get("uid") }
        set { self.set("uid", newValue) }
    }
    public var controller: Bool? {
        get { self.get("controller") }
        set { self.set("controller", newValue) }
    }
    public var blockOwnerDeletion: Bool? {
        get { self.get("blockOwnerDeletion") }
        set { self.set("blockOwnerDeletion", newValue) }
    }
}

/// metav1.ManagedFieldsEntry.
public struct ManagedFieldsEntry: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public var manager: String? {
        get { self.get("manager") }
        set { self.set("manager", newValue) }
    }
    public var operation: String? {
        get { self.get("operation") }
        set { self.set("operation", newValue) }
    }
    public var apiVersion: String? {
        get { self.get("apiVersion") }
        set { self.set("apiVersion", newValue) }
    }
    public var time: String? {
        get { self.get("time") }
        set { self.set("time", newValue) }
    }
    public var subresource: String? {
        get { self.get("subresource") }
        set { self.set("subresource", newValue) }
    }
    public var fieldsV1: JSONValue? {
        get { self.get("fieldsV1") }
        set { self.set("fieldsV1", newValue) }
    }
}

/// metav1.ListMeta.
public struct ListMeta: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public var resourceVersion: String? {
        get { self.get("resourceVersion") }
        set { self.set("resourceVersion", newValue) }
    }
    public var `continue`: String? {
        get { self.get("continue") }
        set { self.set("continue", newValue) }
    }
    public var remainingItemCount: Int64? {
        get { self.get("remainingItemCount") }
        set { self.set("remainingItemCount", newValue) }
    }
}

/// RFC 3339 timestamps as Kubernetes writes them: seconds for `Time`, microseconds for `MicroTime`.
///
/// Written by hand for UTC (the proleptic Gregorian calendar's days-from-civil arithmetic): agents renew a
/// Lease every few seconds and the operator stamps every condition, and Foundation's ISO 8601 style goes
/// through ICU's calendar, which costs more than the rest of a renewal.
public enum KubeTime {
    /// Formats `Time` (seconds precision).
    public static func format(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        return self.civil(seconds) + "Z"
    }

    /// Formats `MicroTime` (`2025-01-01T00:00:00.000000Z`).
    public static func formatMicro(_ date: Date) -> String {
        // To the nearest microsecond (a Double holds today's times to about 0.2 µs).
        let total = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let seconds = total >= 0 ? total / 1_000_000 : (total - 999_999) / 1_000_000
        let fraction = String(total - seconds * 1_000_000)
        return self.civil(seconds) + "." + String(repeating: "0", count: 6 - fraction.count) + fraction + "Z"
    }

    /// Parses `Time` or `MicroTime`: `YYYY-MM-DDTHH:MM:SS`, optional fraction (any number of digits), then `Z` or
    /// an offset `±HH:MM`; `t` and `z` in lower case too, as RFC 3339 allows.
    public static func parse(_ string: String) -> Date? {
        let bytes = Array(string.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[range] {
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int64(byte - 0x30)
            }
            return value
        }
        guard bytes.count >= 20, bytes[4] == 0x2D, bytes[7] == 0x2D, bytes[10] | 0x20 == 0x74, bytes[13] == 0x3A,
            bytes[16] == 0x3A, let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...self.daysIn(month: month, year: year)).contains(day), hour < 24,
            minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction = 0.0
        if bytes[index] == 0x2E {
            let digits = bytes[(index + 1)...].prefix { $0 >= 0x30 && $0 <= 0x39 }
            let text = "0." + String(decoding: digits, as: UTF8.self)
            guard !digits.isEmpty, let value = Double(text) else { return nil }
            fraction = value
            index += 1 + digits.count
        }
        var offset: Int64 = 0
        if index == bytes.count - 1, bytes[index] | 0x20 == 0x7A {
            offset = 0
        } else if index == bytes.count - 6, bytes[index] == 0x2B || bytes[index] == 0x2D, bytes[index + 3] == 0x3A,
            let hours = number((index + 1)..<(index + 3)), let minutes = number((index + 4)..<(index + 6)),
            hours < 24, minutes < 60
        {
            offset = (hours * 3600 + minutes * 60) * (bytes[index] == 0x2D ? -1 : 1)
        } else {
            return nil
        }
        let days = self.daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    /// `YYYY-MM-DDTHH:MM:SS` of a Unix time in UTC.
    private static func civil(_ unix: Int64) -> String {
        let days = unix >= 0 ? unix / 86_400 : (unix - 86_399) / 86_400
        let secondOfDay = unix - days * 86_400
        // Days since 0000-03-01, in 400-year eras (Howard Hinnant's civil_from_days).
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) + "T" + pad(secondOfDay / 3600, 2) + ":"
            + pad(secondOfDay % 3600 / 60, 2) + ":" + pad(secondOfDay % 60, 2)
    }

    /// Days from 1970-01-01 to a date (Howard Hinnant's days_from_civil).
    private static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let year = month <= 2 ? year - 1 : year
        let era = (year >= 0 ? year : year - 399) / 400
        let yearOfEra = year - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
