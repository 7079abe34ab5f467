// ServerState+CRDs.swift: CustomResourceDefinitions: validation, the Established and NamesAccepted
// conditions, and serving (or no longer serving) the resource they define.

import Foundation
import KubeModel

extension ServerState {
    // MARK: CustomResourceDefinitions

    static func validateCRD(_ crd: CustomResourceDefinition) -> [FieldError] {
        var errors: [FieldError] = []
        let spec = crd.spec
        let group = spec.group ?? ""
        let plural = spec.names.plural ?? ""
        if group.isEmpty { errors.append(.required("spec.group")) }
        if plural.isEmpty { errors.append(.required("spec.names.plural")) }
        if (spec.names.kind ?? "").isEmpty { errors.append(.required("spec.names.kind")) }
        if crd.metadata.name != "\(plural).\(group)" {
            errors.append(
                .invalid(
                    "metadata.name",
                    .string(crd.metadata.name ?? ""),
                    "must be spec.names.plural+\".\"+spec.group"
                )
            )
        }
        if spec.scope != "Namespaced" && spec.scope != "Cluster" {
            errors.append(
                .init(
                    reason: "FieldValueNotSupported",
                    field: "spec.scope",
                    detail:
                        "Unsupported value: \(FieldError.renderValue(.string(spec.scope ?? ""))): supported values: "
                        + "\"Cluster\", \"Namespaced\""
                )
            )
        }
        let versions = spec.versions ?? []
        if versions.isEmpty {
            errors.append(.required("spec.versions", "must have exactly one version marked as storage version"))
        }
        if versions.filter({ $0.storage == true }).count != 1, !versions.isEmpty {
            errors.append(.invalid("spec.versions", .null, "must have exactly one version marked as storage version"))
        }
        for (index, version) in versions.enumerated() where version.schema?.openAPIV3Schema == nil {
            errors.append(.required("spec.versions[\(index)].schema.openAPIV3Schema", "schemas are required"))
        }
        return errors
    }

    mutating func establishCRD(_ object: JSONObject) throws(APIError) -> JSONObject {
        var crd = CustomResourceDefinition(object: object)
        var names = crd.spec.names
        if names.singular == nil { names.singular = names.kind?.lowercased() }
        if names.listKind == nil { names.listKind = (names.kind ?? "") + "List" }
        crd.spec.names = names
        let group = crd.spec.group ?? ""
        if let existing = self.resources["\(group)/\(names.plural ?? "")"], !existing.isCustom {
            throw .invalid(
                self.resources["apiextensions.k8s.io/customresourcedefinitions"]!,
                crd.metadata.name ?? "",
                [.invalid("spec.names.plural", .string(names.plural ?? ""), "conflicts with a built-in resource")]
            )
        }
        let now = KubeTime.format(Date())
        crd.object["status"] = [
            "conditions": [
                [
                    "type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found",
                    "lastTransitionTime": .string(now),
                ],
                [
                    "type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted", "lastTransitionTime": .string(now),
                ],
            ],
            "acceptedNames": names.json,
            "storedVersions": .array(
                (crd.spec.versions ?? []).filter { $0.storage == true }.compactMap { $0.name.map(JSONValue.string) }
            ),
        ]
        self.register(crd)
        return crd.object
    }

    mutating func register(_ crd: CustomResourceDefinition) {
        let spec = crd.spec
        let versions = (spec.versions ?? []).filter { $0.served ?? true }
        guard let storage = versions.first(where: { $0.storage == true }) ?? versions.first else { return }
        let names = spec.names
        let type = ResourceType(
            group: spec.group ?? "",
            version: versions.first?.name ?? "v1",
            kind: names.kind ?? "",
            plural: names.plural ?? "",
            namespaced: spec.scope != "Cluster"
        )
        var info = ResourceInfo(
            type: type,
            versions: versions.compactMap(\.name),
            singular: names.singular ?? type.kind.lowercased(),
            shortNames: names.shortNames ?? [],
            categories: names.categories ?? [],
            hasStatus: storage.subresources?.status != nil,
            hasGeneration: true,
            isCustom: true
        )
        info.schema = storage.schema?.openAPIV3Schema.map { StructuralSchema(root: $0) }
        info.printerColumns = storage.additionalPrinterColumns ?? []
        self.resources[info.storageKey] = info
        self.discoveryGeneration += 1
    }

    mutating func unregister(_ crd: CustomResourceDefinition) {
        let storageKey = "\(crd.spec.group ?? "")/\(crd.spec.names.plural ?? "")"
        guard let info = self.resources[storageKey], info.isCustom else { return }
        for key in (self.objects[storageKey] ?? [:]).keys {
            if let object = self.objects[storageKey]?[key] { self.remove(info, key, object, bumpRV: true) }
        }
        self.resources.removeValue(forKey: storageKey)
        self.objects.removeValue(forKey: storageKey)
        self.discoveryGeneration += 1
    }
}
