// ServerState+Lists.swift: lists: label and field selectors (with the field selectors each kind supports),
// pages of a consistent snapshot with continue tokens that expire on compaction.

import Foundation
import KubeModel

extension ServerState {
    // MARK: List

    struct ListResult {
        var items: [JSONObject]
        var resourceVersion: String
        var continueToken: String?
        var remaining: Int?
    }

    func matches(
        _ object: JSONObject,
        _ info: ResourceInfo,
        namespace: String?,
        labels: Selector,
        fields: Selector
    )
        -> Bool
    {
        let meta = ObjectMeta(object: object["metadata"]?.objectValue ?? [:])
        if info.type.namespaced, let namespace, meta.namespace != namespace { return false }
        if !labels.matches(meta.labels ?? [:]) { return false }
        if fields.isEmpty { return true }
        var values: [String: String] = [:]
        for requirement in fields.requirements {
            let path = requirement.key.split(separator: ".").map(String.init)
            switch path[path.count - 1] {
            default:
                if let value = JSONValue.object(object)[path: path] {
                    values[requirement.key] = value.stringValue ?? value.description
                }
            }
        }
        return fields.matches(values)
    }

    func validateFieldSelector(_ fields: Selector, _ info: ResourceInfo) throws(APIError) {
        for requirement in fields.requirements {
            if requirement.operator != .equals && requirement.operator != .notEquals {
                throw .badRequest("invalid field selector: \(requirement)")
            }
            if info.isCustom, requirement.key != "metadata.name", requirement.key != "metadata.namespace" {
                throw .badRequest("field label not supported: \(requirement.key)")
            }
        }
    }

    mutating func list(
        _ info: ResourceInfo,
        namespace: String?,
        labels: Selector,
        fields: Selector,
        limit: Int?,
        continueToken: String?
    ) throws(APIError) -> ListResult {
        try self.validateFieldSelector(fields, info)
        var items: [JSONObject]
        var offset = 0
        if let continueToken, !continueToken.isEmpty {
            let parts = continueToken.split(separator: ":")
            guard parts.count == 3, let snapshot = self.snapshots[String(parts[0])], let start = Int(parts[1]) else {
                var error = APIError.gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a "
                        + "new list without the continue parameter, or use the continue token in this response to "
                        + "retrieve the remainder of the results. Continuing with the provided token results in an "
                        + "inconsistent list - objects that were created, modified, or deleted between the time the "
                        + "first chunk was returned and now may show up in the list."
                )
                error.status.object["metadata"] = ["continue": ""]
                throw error
            }
            items = snapshot
            offset = start
            let rv = String(parts[2])
            return self.page(items, offset: offset, limit: limit, rv: rv, snapshotID: String(parts[0]))
        }
        items = (self.objects[info.storageKey] ?? [:]).sorted { $0.key < $1.key }.map(\.value)
            .filter { self.matches($0, info, namespace: namespace, labels: labels, fields: fields) }
        return self.pageAndSnapshot(items, limit: limit)
    }

    private mutating func pageAndSnapshot(_ items: [JSONObject], limit: Int?) -> ListResult {
        let rv = String(self.rv)
        guard let limit, limit > 0, items.count > limit else {
            return ListResult(items: items, resourceVersion: rv, continueToken: nil, remaining: nil)
        }
        let id = UUID().uuidString
        self.snapshots[id] = items
        self.snapshotOrder.append(id)
        if self.snapshotOrder.count > 32 { self.snapshots.removeValue(forKey: self.snapshotOrder.removeFirst()) }
        return self.page(items, offset: 0, limit: limit, rv: rv, snapshotID: id)
    }

    private func page(_ items: [JSONObject], offset: Int, limit: Int?, rv: String, snapshotID: String) -> ListResult {
        let end = limit.map { min(items.count, offset + max($0, 1)) } ?? items.count
        let slice = Array(items[min(offset, items.count)..<end])
        let more = end < items.count
        return ListResult(
            items: slice,
            resourceVersion: rv,
            continueToken: more ? "\(snapshotID):\(end):\(rv)" : nil,
            remaining: more ? items.count - end : nil
        )
    }
}
