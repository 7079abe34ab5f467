// ManifestReader.swift: multi-document YAML (or JSON) manifests into JSON trees, and `render -f`: every object the
// operator would apply for the targets in a file, with Secrets and Services from the same file as the cluster.

import Foundation
import HearthAPI
import KubeModel
import Yams

/// Reads Kubernetes manifests.
public enum ManifestReader {
    /// Every non-empty document; `kind: List` items are flattened.
    public static func documents(yaml: String) throws -> [JSONObject] {
        var result: [JSONObject] = []
        do {
            for node in try Yams.compose_all(yaml: yaml) {
                guard case .object(let object) = self.json(node) else { continue }
                if object["kind"]?.stringValue == "List", let items = object["items"]?.arrayValue {
                    result += items.compactMap { $0.objectValue }
                } else if !object.isEmpty {
                    result.append(object)
                }
            }
        } catch {
            throw OperatorError(code: .invalidInput, message: "not valid YAML: \(error)", cause: error)
        }
        return result
    }

    static func json(_ node: Yams.Node) -> JSONValue {
        switch node {
        case .mapping(let mapping):
            var object: JSONObject = [:]
            for (key, value) in mapping { object[key.string ?? ""] = self.json(value) }
            return .object(object)
        case .sequence(let sequence):
            return .array(sequence.map { self.json($0) })
        case .scalar(let scalar):
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .null: return .null
            case .bool: return node.bool.map { .bool($0) } ?? .string(scalar.string)
            case .int: return node.int.map { .int(Int64($0)) } ?? .string(scalar.string)
            case .float: return node.float.map { .double($0) } ?? .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .alias:
            return .null
        }
    }
}

/// Objects given in a file, used as the cluster by `render`.
struct ManifestLookup: ClusterLookup {
    var secrets: [ObjectKey: Secret] = [:]
    var services: [ObjectKey: Service] = [:]
    func secret(namespace: String, name: String) -> Secret? {
        self.secrets[ObjectKey(namespace: namespace, name: name)]
    }
    func service(namespace: String, name: String) -> Service? {
        self.services[ObjectKey(namespace: namespace, name: name)]
    }
}

/// `hearth-operator render`: a preview for GitOps reviews.
public enum ManifestRenderer {
    /// The YAML of every object the operator would apply for the ProfilingTargets in `yaml`. Secret values are
    /// replaced by `REDACTED`. Targets without a namespace get `defaultNamespace`.
    public static func render(
        yaml: String,
        configuration: OperatorConfiguration,
        defaultNamespace: String = "default"
    )
        throws -> String
    {
        var lookup = ManifestLookup()
        var targets: [ProfilingTarget] = []
        for document in try ManifestReader.documents(yaml: yaml) {
            var meta = ObjectMeta(object: document["metadata"]?.objectValue ?? [:])
            if meta.namespace == nil { meta.namespace = defaultNamespace }
            let key = ObjectKey(namespace: meta.namespace, name: meta.name ?? "")
            switch (document["apiVersion"]?.stringValue, document["kind"]?.stringValue) {
            case (ProfilingTarget.resourceType.apiVersion?, ProfilingTarget.resourceType.kind?):
                var target = ProfilingTarget(object: document)
                target.metadata = meta
                if target.metadata.generation == nil { target.metadata.generation = 1 }
                targets.append(target)
            case ("v1"?, "Secret"?):
                var secret = Secret(object: document)
                secret.metadata = meta
                lookup.secrets[key] = secret
            case ("v1"?, "Service"?):
                var service = Service(object: document)
                service.metadata = meta
                lookup.services[key] = service
            default:
                continue
            }
        }
        guard !targets.isEmpty else {
            throw OperatorError(
                code: .invalidInput,
                message: "no ProfilingTarget (profiling.hearth.dev/v1alpha1) in the input"
            )
        }
        let resolver = TargetResolver(configuration: configuration, lookup: lookup)
        let resolved = targets.map { resolver.resolve($0) }
        var out = ""
        for target in resolved {
            var notes: [String] = []
            if !target.violations.isEmpty {
                notes.append("invalid spec: " + target.violations.map(\.description).joined(separator: "; "))
            }
            if target.suspended { notes.append("suspended") }
            if let problem = target.credentialProblem { notes.append("\(problem.reason): \(problem.message)") }
            if let problem = target.backendProblem { notes.append("\(problem.reason): \(problem.message)") }
            let state = target.entry != nil ? "included" : "excluded"
            out +=
                "# \(target.key): \(state)" + (notes.isEmpty ? "" : " (" + notes.joined(separator: "; ") + ")") + "\n"
        }
        guard resolved.contains(where: { $0.isActive }) else {
            return out + "# no active target: the agent objects would be deleted\n"
        }
        var objects = AgentRenderer(configuration: configuration).render(resolved)
        if let data = objects.secret.data { objects.secret.data = data.mapValues { _ in "REDACTED" } }
        return out + YAMLRendering.documents(objects.all)
    }
}
