// Status.swift: metav1.Status (errors) and metav1.Condition.

import Foundation

/// metav1.Status, the body of every API error.
public struct Status: KubeObject {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(code: Int, reason: String, message: String, details: StatusDetails? = nil) {
        self.object = ["kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure"]
        self.code = code
        self.reason = reason
        self.message = message
        if let details { self.details = details }
    }

    public var status: String? {
        get { self.get("status") }
        set { self.set("status", newValue) }
    }
    public var message: String? {
        get { self.get("message") }
        set { self.set("message", newValue) }
    }
    public var reason: String? {
        get { self.get("reason") }
        set { self.set("reason", newValue) }
    }
    public var code: Int? {
        get { self.get("code") }
        set { self.set("code", newValue) }
    }
    public var details: StatusDetails? {
        get { self.get("details") }
        set { self.set("details", newValue) }
    }
}

/// metav1.StatusDetails.
public struct StatusDetails: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(name: String? = nil, group: String? = nil, kind: String? = nil, causes: [StatusCause]? = nil) {
        self.object = [:]
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes
    }

    public var name: String? {
        get { self.get("name") }
        set { self.set("name", newValue) }
    }
    public var group: String? {
        get { self.get("group") }
        set { self.set("group", newValue) }
    }
    public var kind: String? {
        get { self.get("kind") }
        set { self.set("kind", newValue) }
    }
    public var uid: String? {
        get { self.get("uid") }
        set { self.set("uid", newValue) }
    }
    public var causes: [StatusCause]? {
        get { self.get("causes") }
        set { self.set("causes", newValue) }
    }
    public var retryAfterSeconds: Int? {
        get { self.get("retryAfterSeconds") }
        set { self.set("retryAfterSeconds", newValue) }
    }
}

/// metav1.StatusCause.
public struct StatusCause: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(reason: String, message: String, field: String? = nil) {
        self.object = [:]
        self.reason = reason
        self.message = message
        self.field = field
    }

    public var reason: String? {
        get { self.get("reason") }
        set { self.set("reason", newValue) }
    }
    public var message: String? {
        get { self.get("message") }
        set { self.set("message", newValue) }
    }
    public var field: String? {
        get { self.get("field") }
        set { self.set("field", newValue) }
    }
}

/// metav1.Condition.
public struct Condition: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(
        type: String,
        status: String,
        reason: String,
        message: String = "",
        observedGeneration: Int64? = nil,
        lastTransitionTime: Date = Date()
    ) {
        self.object = [:]
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.observedGeneration = observedGeneration
        self.lastTransitionTime = KubeTime.format(lastTransitionTime)
    }

    public var type: String? {
        get { self.get("type") }
        set { self.set("type", newValue) }
    }
    /// `True`, `False` or `Unknown`.
    public var status: String? {
        get { self.get("status") }
        set { self.set("status", newValue) }
    }
    public var reason: String? {
        get { self.get("reason") }
        set { self.set("reason", newValue) }
    }
    public var message: String? {
        get { self.get("message") }
        set { self.set("message", newValue) }
    }
    public var observedGeneration: Int64? {
        get { self.get("observedGeneration") }
        set { self.set("observedGeneration", newValue) }
    }
    public var lastTransitionTime: String? {
        get { self.get("lastTransitionTime") }
        set { self.set("lastTransitionTime", newValue) }
    }
}

extension Array where Element == Condition {
    /// The condition of a type.
    public subscript(type type: String) -> Condition? { self.first { $0.type == type } }

    /// Sets a condition, keeping `lastTransitionTime` unless the status flips (kstatus / apimachinery semantics).
    /// Returns true when anything changed.
    @discardableResult
    public mutating func set(_ condition: Condition) -> Bool {
        guard let index = self.firstIndex(where: { $0.type == condition.type }) else {
            self.append(condition)
            return true
        }
        var updated = condition
        if self[index].status == condition.status {
            updated.lastTransitionTime = self[index].lastTransitionTime
        }
        if self[index] == updated { return false }
        self[index] = updated
        return true
    }
}
