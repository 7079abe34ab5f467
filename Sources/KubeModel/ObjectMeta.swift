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
public enum KubeTime {
    /// Formats `Time` (seconds precision).
    public static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: false))
    }

    /// Formats `MicroTime` (`2025-01-01T00:00:00.000000Z`).
    public static func formatMicro(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let micros = Int(((date.timeIntervalSince1970 - seconds) * 1_000_000).rounded(.down))
        let base = format(Date(timeIntervalSince1970: seconds))
        let fraction = String(micros)
        return String(base.dropLast()) + "." + String(repeating: "0", count: max(0, 6 - fraction.count)) + fraction
            + "Z"
    }

    /// Parses `Time` or `MicroTime`.
    public static func parse(_ string: String) -> Date? {
        if let date = try? Date(string, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: false)) {
            return date
        }
        // Fractional seconds: parse the whole-second part and add the fraction by hand (any number of digits).
        guard let dot = string.firstIndex(of: "."), let zone = string.lastIndex(where: { $0 == "Z" || $0 == "+" })
        else { return nil }
        let whole = String(string[..<dot]) + String(string[zone...])
        guard let base = try? Date(whole, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: false)),
            let fraction = Double("0" + string[dot..<zone])
        else { return nil }
        return base.addingTimeInterval(fraction)
    }
}
