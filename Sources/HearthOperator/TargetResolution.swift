// TargetResolution.swift: what one ProfilingTarget means for the agent: its validated spec, its resolved
// Pyroscope URL and its credentials, looked up in the target's own namespace. Pure: lookups are injected, so the
// reconciler (informer stores) and `render -f` (objects from a file) share it.

import Foundation
import HearthAPI
import KubeModel

/// Read access to the objects a target references.
public protocol ClusterLookup: Sendable {
    func secret(namespace: String, name: String) -> Secret?
    func service(namespace: String, name: String) -> Service?
}

/// A problem that keeps a target from working, with a CamelCase reason and a message naming the cause.
public struct TargetProblem: Sendable, Hashable {
    public var reason: String
    public var message: String
    public init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }
}

/// A target resolved against the cluster.
public struct ResolvedTarget: Sendable {
    public var key: ObjectKey
    public var generation: Int64
    /// Spec violations (Stalled).
    public var violations: [SpecViolation] = []
    public var suspended = false
    public var deleting = false
    /// A missing Secret or key.
    public var credentialProblem: TargetProblem?
    /// No backend, or the Service (port) is missing.
    public var backendProblem: TargetProblem?
    /// The push URL, when known.
    public var pyroscopeURL: String?
    public var tenantID: String?
    /// Agent Secret key → base64 value (never logged).
    public var credentials: [String: String] = [:]
    /// `namespace/name@resourceVersion` of each Secret read (for the config hash; values are never hashed).
    public var secretVersions: [String] = []
    /// The agent configuration entry, when the target is part of the agent configuration.
    public var entry: AgentConfiguration.Target?

    /// Active targets keep the agent running.
    public var isActive: Bool { !self.deleting && !self.suspended && self.violations.isEmpty }
}

/// File names of copied credentials in the agent Secret (`NAMESPACE.NAME.password`).
enum CredentialFile {
    static func password(_ key: ObjectKey) -> String { "\(key.namespace ?? "").\(key.name).password" }
    static func token(_ key: ObjectKey) -> String { "\(key.namespace ?? "").\(key.name).token" }
}

/// Resolves targets.
public struct TargetResolver: Sendable {
    public var configuration: OperatorConfiguration
    public var lookup: any ClusterLookup

    public init(configuration: OperatorConfiguration, lookup: any ClusterLookup) {
        self.configuration = configuration
        self.lookup = lookup
    }

    public func resolve(_ target: ProfilingTarget) -> ResolvedTarget {
        let key = target.objectKey
        let namespace = key.namespace ?? ""
        let spec = target.spec
        var resolved = ResolvedTarget(key: key, generation: target.metadata.generation ?? 0)
        resolved.deleting = target.metadata.isBeingDeleted
        resolved.suspended = spec.isSuspended
        resolved.violations = spec.violations()
        guard resolved.violations.isEmpty else { return resolved }

        // Backend: the target's own, else the operator's default.
        let ownBackend = spec.pyroscope
        guard let backend = ownBackend ?? self.configuration.defaultBackend else {
            resolved.backendProblem = TargetProblem(
                reason: ConditionReason.noBackend,
                message: "spec.pyroscope is not set and the operator has no default Pyroscope backend "
                    + "(--default-pyroscope-url or --default-pyroscope-service)"
            )
            return resolved
        }
        resolved.tenantID = backend.tenantID
        if let url = backend.url {
            resolved.pyroscopeURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        } else if let reference = backend.serviceRef, let name = reference.name {
            let serviceNamespace = reference.namespace ?? (ownBackend != nil ? namespace : self.configuration.namespace)
            let port = reference.port ?? ServiceReference.defaultPort
            resolved.pyroscopeURL = "\(reference.scheme ?? "http")://\(name).\(serviceNamespace).svc:\(port)"
            if let service = self.lookup.service(namespace: serviceNamespace, name: name) {
                let ports = (service.spec.ports ?? []).compactMap(\.port)
                if !ports.contains(port) {
                    resolved.backendProblem = TargetProblem(
                        reason: ConditionReason.servicePortNotFound,
                        message: "Service \(serviceNamespace)/\(name) has no port \(port) (ports: "
                            + "\(ports.map(String.init).joined(separator: ", ")))"
                    )
                }
            } else {
                resolved.backendProblem = TargetProblem(
                    reason: ConditionReason.serviceNotFound,
                    message: "Service \(serviceNamespace)/\(name) (spec.pyroscope.serviceRef) not found"
                )
            }
        }

        // Credentials: only from the target's own namespace, and only for the target's own backend. The agent
        // configuration names them by file inside the agent's credentials folder.
        var pyroscope = AgentConfiguration.Backend(url: resolved.pyroscopeURL ?? "", tenantID: backend.tenantID)
        if let ownBackend {
            if let basic = ownBackend.basicAuth, let reference = basic.passwordSecretRef {
                let file = CredentialFile.password(key)
                if let value = self.copy(
                    reference,
                    field: "spec.pyroscope.basicAuth.passwordSecretRef",
                    namespace: namespace,
                    into: &resolved
                ) {
                    resolved.credentials[file] = value
                }
                pyroscope.basicAuth = AgentConfiguration.BasicAuth(username: basic.username ?? "", passwordFile: file)
            }
            if let reference = ownBackend.bearerTokenSecretRef {
                let file = CredentialFile.token(key)
                if let value = self.copy(
                    reference,
                    field: "spec.pyroscope.bearerTokenSecretRef",
                    namespace: namespace,
                    into: &resolved
                ) {
                    resolved.credentials[file] = value
                }
                pyroscope.bearerTokenFile = file
            }
        }

        guard !resolved.deleting, !resolved.suspended, resolved.credentialProblem == nil,
            resolved.pyroscopeURL != nil
        else { return resolved }
        let selector = spec.selector ?? LabelSelector()
        // The CRD defaults serviceName to the default template; only a different template is the user's choice,
        // which lets a pod's `pyroscope.io/service_name` annotation name the service otherwise.
        let serviceName = spec.effectiveServiceName
        resolved.entry = AgentConfiguration.Target(
            namespace: namespace,
            name: key.name,
            selector: AgentConfiguration.Selector(
                matchLabels: selector.matchLabels,
                matchExpressions: selector.matchExpressions?.map {
                    AgentConfiguration.Selector.Requirement(
                        key: $0.key ?? "",
                        operator: $0.operator ?? "",
                        values: $0.values
                    )
                }
            ),
            profiles: spec.effectiveProfiles,
            sampleRate: spec.effectiveSampleRate,
            serviceName: serviceName == AgentConfiguration.defaultServiceName ? nil : serviceName,
            labels: spec.labels ?? [:],
            pyroscope: pyroscope
        )
        return resolved
    }

    /// Copies one Secret key (base64, as stored) or records why it cannot.
    func copy(
        _ reference: SecretKeyReference,
        field: String,
        namespace: String,
        into resolved: inout ResolvedTarget
    )
        -> String?
    {
        let name = reference.name ?? ""
        let key = reference.key ?? ""
        guard let secret = self.lookup.secret(namespace: namespace, name: name) else {
            resolved.credentialProblem =
                resolved.credentialProblem
                ?? TargetProblem(
                    reason: ConditionReason.secretNotFound,
                    message: "Secret \(namespace)/\(name) (\(field)) not found"
                )
            return nil
        }
        resolved.secretVersions.append("\(namespace)/\(name)@\(secret.metadata.resourceVersion ?? "")")
        if let value = secret.data?[key] { return value }
        if let value = secret.stringData?[key] { return Data(value.utf8).base64EncodedString() }
        resolved.credentialProblem =
            resolved.credentialProblem
            ?? TargetProblem(
                reason: ConditionReason.secretKeyMissing,
                message: "Secret \(namespace)/\(name) has no key \"\(key)\" (\(field))"
            )
        return nil
    }
}
