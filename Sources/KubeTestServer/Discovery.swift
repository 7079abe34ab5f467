// Discovery.swift: /version, legacy discovery documents, OpenAPI v3 documents and Table rendering.

import Foundation
import KubeModel

extension ServerState {
    static let version: JSONValue = [
        "major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "hearth-kube-test-server",
        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
        "platform": "linux/amd64",
    ]

    var groupVersions: [String: [ResourceInfo]] {
        var result: [String: [ResourceInfo]] = [:]
        for info in self.resources.values {
            for version in info.versions {
                var copy = info
                copy.type.version = version
                result[copy.type.apiVersion, default: []].append(copy)
            }
        }
        return result
    }

    func apiVersions(serverAddress: String) -> JSONValue {
        [
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [["clientCIDR": "0.0.0.0/0", "serverAddress": .string(serverAddress)]],
        ]
    }

    func apiGroupList() -> JSONValue {
        var groups: [String: [String]] = [:]
        for info in self.resources.values where !info.type.group.isEmpty {
            for version in info.versions where !(groups[info.type.group]?.contains(version) ?? false) {
                groups[info.type.group, default: []].append(version)
            }
        }
        let items: [JSONValue] = groups.keys.sorted().map { group in
            let versions = groups[group]!.sorted()
            let list: [JSONValue] = versions.map {
                ["groupVersion": .string("\(group)/\($0)"), "version": .string($0)]
            }
            return ["name": .string(group), "versions": .array(list), "preferredVersion": list[0]]
        }
        return ["kind": "APIGroupList", "apiVersion": "v1", "groups": .array(items)]
    }

    func apiResourceList(groupVersion: String) -> JSONValue? {
        guard let infos = self.groupVersions[groupVersion] else { return nil }
        var resources: [JSONValue] = []
        for info in infos.sorted(by: { $0.type.plural < $1.type.plural }) {
            var entry: JSONObject = [
                "name": .string(info.type.plural), "singularName": .string(info.singular),
                "namespaced": .bool(info.type.namespaced), "kind": .string(info.type.kind),
                "verbs": .array(info.verbs.map(JSONValue.string)),
            ]
            if !info.shortNames.isEmpty { entry["shortNames"] = .array(info.shortNames.map(JSONValue.string)) }
            if !info.categories.isEmpty { entry["categories"] = .array(info.categories.map(JSONValue.string)) }
            resources.append(.object(entry))
            if info.hasStatus {
                resources.append(
                    [
                        "name": .string("\(info.type.plural)/status"), "singularName": "",
                        "namespaced": .bool(info.type.namespaced), "kind": .string(info.type.kind),
                        "verbs": ["get", "patch", "update"],
                    ]
                )
            }
        }
        return [
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": .string(groupVersion),
            "resources": .array(resources),
        ]
    }

    func openAPIRoot() -> JSONValue {
        var paths: JSONObject = [:]
        for groupVersion in self.groupVersions.keys {
            let prefix = groupVersion.contains("/") ? "apis/\(groupVersion)" : "api/\(groupVersion)"
            paths[prefix] = ["serverRelativeURL": .string("/openapi/v3/\(prefix)?hash=G\(self.discoveryGeneration)")]
        }
        return ["paths": .object(paths)]
    }

    /// A per-group-version document: one PATCH operation per kind that accepts `fieldValidation`, so kubectl leaves
    /// validation to the server.
    func openAPIDocument(groupVersion: String) -> JSONValue? {
        guard let infos = self.groupVersions[groupVersion] else { return nil }
        var paths: JSONObject = [:]
        for info in infos {
            let path = info.type.path(namespace: "{namespace}", name: "{name}")
            paths[path] = [
                "patch": [
                    "x-kubernetes-group-version-kind": [
                        "group": .string(info.type.group), "version": .string(info.type.version),
                        "kind": .string(info.type.kind),
                    ],
                    "parameters": [["name": "fieldValidation", "in": "query", "schema": ["type": "string"]]],
                    "responses": ["200": ["description": "OK"]],
                ]
            ]
        }
        return [
            "openapi": "3.0.0", "info": ["title": "Kubernetes", "version": "v1.32.0"],
            "components": ["schemas": [:]], "paths": .object(paths),
        ]
    }

    // MARK: Table

    func tableColumns(_ info: ResourceInfo) -> [(definition: JSONValue, jsonPath: String)] {
        var columns: [(JSONValue, String)] = [
            (
                [
                    "name": "Name", "type": "string", "format": "name",
                    "description": "Name must be unique within a namespace.",
                    "priority": 0,
                ], ".metadata.name"
            )
        ]
        for column in info.printerColumns {
            columns.append(
                (
                    [
                        "name": .string(column.name ?? ""), "type": .string(column.type ?? "string"),
                        "format": .string(column.format ?? ""), "description": .string(column.description ?? ""),
                        "priority": .int(Int64(column.priority ?? 0)),
                    ], column.jsonPath ?? ""
                )
            )
        }
        if !info.printerColumns.contains(where: { $0.jsonPath == ".metadata.creationTimestamp" }) {
            columns.append(
                (
                    [
                        "name": "Age", "type": "date", "format": "", "description": "Time since creation.",
                        "priority": 0,
                    ],
                    ".metadata.creationTimestamp"
                )
            )
        }
        return columns
    }

    func tableRow(_ object: JSONObject, _ info: ResourceInfo, includeObject: String?) -> JSONValue {
        let cells: [JSONValue] = self.tableColumns(info).map { column in
            let value = SimpleJSONPath.evaluate(column.jsonPath, in: .object(object))
            if column.definition["type"]?.stringValue == "date", let string = value?.stringValue {
                return .string(Self.humanAge(string))
            }
            return value ?? .null
        }
        var row: JSONObject = ["cells": .array(cells)]
        switch includeObject {
        case "None": break
        case "Object": row["object"] = .object(object)
        default:
            var meta = object["metadata"]?.objectValue ?? [:]
            meta.removeValue(forKey: "managedFields")
            row["object"] = [
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": .object(meta),
            ]
        }
        return .object(row)
    }

    func table(
        _ objects: [JSONObject],
        _ info: ResourceInfo,
        includeObject: String?,
        listMeta: JSONObject,
        withColumns: Bool = true
    ) -> JSONValue {
        var table: JSONObject = [
            "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": .object(listMeta),
            "rows": .array(objects.map { self.tableRow($0, info, includeObject: includeObject) }),
        ]
        if withColumns { table["columnDefinitions"] = .array(self.tableColumns(info).map(\.definition)) }
        return .object(table)
    }

    static func humanAge(_ timestamp: String) -> String {
        guard let date = KubeTime.parse(timestamp) else { return "<invalid>" }
        let seconds = Int(Date().timeIntervalSince(date))
        if seconds < 0 { return "<invalid>" }
        if seconds < 120 { return "\(seconds)s" }
        if seconds < 3600 * 2 { return "\(seconds / 60)m" }
        if seconds < 86400 * 2 { return "\(seconds / 3600)h" }
        return "\(seconds / 86400)d"
    }
}

/// The simple JSONPath subset of printer columns: `.a.b`, `.a[0]`, `.a[?(@.type=="Ready")].status`.
enum SimpleJSONPath {
    static func evaluate(_ path: String, in root: JSONValue) -> JSONValue? {
        var current: JSONValue? = root
        var rest = Substring(path.hasPrefix("{") ? String(path.dropFirst().dropLast()) : path)
        while !rest.isEmpty, let value = current {
            if rest.hasPrefix(".") {
                rest = rest.dropFirst()
                let end = rest.firstIndex(where: { $0 == "." || $0 == "[" }) ?? rest.endIndex
                current = value[String(rest[..<end])]
                rest = rest[end...]
            } else if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]") else { return nil }
                let inner = rest[rest.index(after: rest.startIndex)..<close]
                rest = rest[rest.index(after: close)...]
                if let index = Int(inner) {
                    current = value.arrayValue.flatMap { $0.indices.contains(index) ? $0[index] : nil }
                } else if inner.hasPrefix("?(@."), inner.hasSuffix(")") {
                    let condition = inner.dropFirst(4).dropLast()
                    let parts = condition.components(separatedBy: "==")
                    guard parts.count == 2 else { return nil }
                    let key = parts[0].trimmingCharacters(in: .whitespaces)
                    let expected = parts[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(
                        in: CharacterSet(charactersIn: "\"'")
                    )
                    current = value.arrayValue?.first {
                        $0[path: key.split(separator: ".").map(String.init)]?.stringValue == expected
                    }
                } else {
                    return nil
                }
            } else {
                return nil
            }
        }
        return current
    }
}
