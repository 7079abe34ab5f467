// ProfilingTarget+Validation.swift: the schema's CEL rules and patterns, checked again in code. The API server
// normally rejects such objects, but an older CRD, a server without CEL, or `render -f` input can still carry
// them; the reconciler then reports Stalled=True with reason InvalidSpec instead of rolling out a bad config.

import KubeModel

/// One problem with a spec: the field and a message a user can act on.
public struct SpecViolation: Sendable, Hashable, CustomStringConvertible {
    public var field: String
    public var message: String
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { "\(self.field): \(self.message)" }
}

extension ProfilingTargetSpec {
    /// Every violation of the schema's rules (empty when valid).
    public func violations() -> [SpecViolation] {
        var problems: [SpecViolation] = []
        func check(_ ok: Bool, _ field: String, _ message: String) {
            if !ok { problems.append(SpecViolation(field: field, message: message)) }
        }
        func matches(_ value: String, _ pattern: String) -> Bool {
            guard let regex = try? Regex(pattern) else { return false }
            return value.wholeMatch(of: regex) != nil
        }
        if self.object["selector"] == nil {
            problems.append(SpecViolation(field: "spec.selector", message: "required: name the pods to profile"))
        }
        for (index, expression) in (self.selector?.matchExpressions ?? []).enumerated() {
            let op = expression.operator ?? ""
            check(
                ["In", "NotIn", "Exists", "DoesNotExist"].contains(op),
                "spec.selector.matchExpressions[\(index)].operator",
                "must be In, NotIn, Exists or DoesNotExist"
            )
            check(
                (op == "In" || op == "NotIn") == !(expression.values ?? []).isEmpty,
                "spec.selector.matchExpressions[\(index)].values",
                "In and NotIn need values; Exists and DoesNotExist take none"
            )
        }
        for profile in self.effectiveProfiles {
            check(profile == "cpu", "spec.profiles", "unsupported profile type \"\(profile)\": supported: cpu")
        }
        check(
            (1...1000).contains(self.effectiveSampleRate),
            "spec.sampleRate",
            "must be between 1 and 1000 Hz, got \(self.effectiveSampleRate)"
        )
        check(
            matches(self.effectiveServiceName, Patterns.serviceName),
            "spec.serviceName",
            "use text and {{namespace}}, {{workload}}, {{pod}}, {{container}} or {{node}}"
        )
        for key in (self.labels ?? [:]).keys.sorted() {
            check(
                matches(key, Patterns.labelName),
                "spec.labels",
                "label name \"\(key)\" must match \(Patterns.labelName)"
            )
            check(
                !Patterns.reservedLabels.contains(key),
                "spec.labels",
                "label \"\(key)\" is set by Hearth and cannot be overridden"
            )
        }
        if let pyroscope = self.pyroscope {
            check(
                (pyroscope.serviceRef != nil) != (pyroscope.url != nil),
                "spec.pyroscope",
                "set exactly one of pyroscope.serviceRef and pyroscope.url"
            )
            check(
                !(pyroscope.basicAuth != nil && pyroscope.bearerTokenSecretRef != nil),
                "spec.pyroscope",
                "set at most one of pyroscope.basicAuth and pyroscope.bearerTokenSecretRef"
            )
            if let url = pyroscope.url {
                check(matches(url, Patterns.url), "spec.pyroscope.url", "must be an http:// or https:// URL")
            }
            if let reference = pyroscope.serviceRef {
                check(
                    matches(reference.name ?? "", Patterns.dns1035Label),
                    "spec.pyroscope.serviceRef.name",
                    "must be a Service name"
                )
                check(
                    (1...65535).contains(reference.port ?? ServiceReference.defaultPort),
                    "spec.pyroscope.serviceRef.port",
                    "must be between 1 and 65535"
                )
            }
            if let tenant = pyroscope.tenantID {
                check(matches(tenant, Patterns.tenantID), "spec.pyroscope.tenantID", "must match \(Patterns.tenantID)")
            }
            if let basic = pyroscope.basicAuth {
                check(!(basic.username ?? "").isEmpty, "spec.pyroscope.basicAuth.username", "required")
                check(
                    basic.passwordSecretRef?.name != nil && basic.passwordSecretRef?.key != nil,
                    "spec.pyroscope.basicAuth.passwordSecretRef",
                    "name and key are required"
                )
            }
            if let bearer = pyroscope.bearerTokenSecretRef {
                check(
                    bearer.name != nil && bearer.key != nil,
                    "spec.pyroscope.bearerTokenSecretRef",
                    "name and key are required"
                )
            }
        }
        if let url = self.grafana?.url {
            check(
                matches(url, Patterns.url),
                "spec.grafana.url",
                "must be an http(s) URL like http://pyroscope.example:4040"
            )
        }
        if let name = self.grafana?.datasource?.name {
            check(!name.isEmpty && name.count <= 190, "spec.grafana.datasource.name", "must be 1 to 190 characters")
        }
        if let uid = self.grafana?.datasource?.uid {
            check(
                matches(uid, Patterns.datasourceUID),
                "spec.grafana.datasource.uid",
                "must match \(Patterns.datasourceUID)"
            )
        }
        return problems
    }

    /// The Secrets (in the target's namespace) this spec references, with the key and the field naming them.
    public var secretReferences: [(field: String, reference: SecretKeyReference)] {
        var result: [(String, SecretKeyReference)] = []
        if let password = self.pyroscope?.basicAuth?.passwordSecretRef {
            result.append(("spec.pyroscope.basicAuth.passwordSecretRef", password))
        }
        if let token = self.pyroscope?.bearerTokenSecretRef {
            result.append(("spec.pyroscope.bearerTokenSecretRef", token))
        }
        return result
    }
}
