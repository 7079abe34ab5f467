// APIError.swift: errors answered as metav1.Status bodies, shaped like k8s.io/apiserver's.

import KubeModel

/// An error answered to the client as a `metav1.Status`.
struct APIError: Error, Sendable {
    var status: Status
    var code: Int { self.status.code ?? 500 }

    init(_ status: Status) { self.status = status }

    init(code: Int, reason: String, message: String, details: StatusDetails? = nil) {
        self.status = Status(code: code, reason: reason, message: message, details: details)
    }

    static func notFound(_ info: ResourceInfo, _ name: String) -> Self {
        .init(
            code: 404,
            reason: "NotFound",
            message: "\(info.type.qualifiedName) \"\(name)\" not found",
            details: .init(name: name, group: info.type.group, kind: info.type.plural)
        )
    }
    static func namespaceNotFound(_ namespace: String) -> Self {
        .init(
            code: 404,
            reason: "NotFound",
            message: "namespaces \"\(namespace)\" not found",
            details: .init(name: namespace, group: "", kind: "namespaces")
        )
    }
    static let unknownPath = Self(
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource",
        details: .init()
    )
    static func alreadyExists(_ info: ResourceInfo, _ name: String) -> Self {
        .init(
            code: 409,
            reason: "AlreadyExists",
            message: "\(info.type.qualifiedName) \"\(name)\" already exists",
            details: .init(name: name, group: info.type.group, kind: info.type.plural)
        )
    }
    static func conflict(_ info: ResourceInfo, _ name: String, _ why: String? = nil) -> Self {
        .init(
            code: 409,
            reason: "Conflict",
            message: "Operation cannot be fulfilled on \(info.type.qualifiedName) \"\(name)\": "
                + (why
                    ?? "the object has been modified; please apply your changes to the latest version and try again"),
            details: .init(name: name, group: info.type.group, kind: info.type.plural)
        )
    }
    static func invalid(_ info: ResourceInfo, _ name: String, _ errors: [FieldError]) -> Self {
        let kindGroup = info.type.group.isEmpty ? info.type.kind : "\(info.type.kind).\(info.type.group)"
        let joined =
            errors.count == 1 ? errors[0].description : "[" + errors.map(\.description).joined(separator: ", ") + "]"
        return .init(
            code: 422,
            reason: "Invalid",
            message: "\(kindGroup) \"\(name)\" is invalid: \(joined)",
            details: .init(name: name, group: info.type.group, kind: info.type.kind, causes: errors.map(\.cause))
        )
    }
    static func badRequest(_ message: String) -> Self { .init(code: 400, reason: "BadRequest", message: message) }
    static func forbidden(_ message: String) -> Self { .init(code: 403, reason: "Forbidden", message: message) }
    static func gone(_ message: String) -> Self { .init(code: 410, reason: "Expired", message: message) }
    static func methodNotAllowed(_ verb: String, _ info: ResourceInfo) -> Self {
        .init(
            code: 405,
            reason: "MethodNotAllowed",
            message: "\(verb) is not supported on resources of kind \"\(info.type.qualifiedName)\""
        )
    }
    static func unsupportedMediaType(_ message: String) -> Self {
        .init(code: 415, reason: "UnsupportedMediaType", message: message)
    }
    static func internalError(_ message: String) -> Self {
        .init(
            code: 500,
            reason: "InternalError",
            message: "Internal error occurred: \(message)",
            details: .init(causes: [StatusCause(object: ["message": .string(message)])])
        )
    }
}
