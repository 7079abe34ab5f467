// ResourceClient+Finalizers.swift: adding and removing finalizers without a PUT race: JSON patches guarded by a
// `test` of the list as read (grafana-operator and kube-rs `finalizer()` do the same).

import KubeModel

extension ResourceClient {
    /// Adds `finalizer` unless present. Fails with ``KubeError/Code/invalid`` if the list changed since `object`
    /// was read (re-read and retry) or the object is being deleted.
    @discardableResult
    public func addFinalizer(_ finalizer: String, to object: Object, fieldManager: String? = nil) async throws -> Object
    {
        let current = object.metadata.finalizers ?? []
        if current.contains(finalizer) { return object }
        let operations: [JSONValue]
        if object.metadata.finalizers == nil {
            operations = [
                [
                    "op": "test", "path": "/metadata/resourceVersion",
                    "value": .string(object.metadata.resourceVersion ?? ""),
                ],
                ["op": "add", "path": "/metadata/finalizers", "value": [.string(finalizer)]],
            ]
        } else {
            operations = [
                ["op": "test", "path": "/metadata/finalizers", "value": current.json],
                ["op": "add", "path": "/metadata/finalizers/-", "value": .string(finalizer)],
            ]
        }
        return try await self.patch(object.metadata.name ?? "", .json(operations), fieldManager: fieldManager)
    }

    /// Removes `finalizer` if present, guarded by a `test` of its index. Returns nil when that removal completed the
    /// deletion (the object is gone).
    @discardableResult
    public func removeFinalizer(
        _ finalizer: String,
        from object: Object,
        fieldManager: String? = nil
    ) async throws
        -> Object?
    {
        guard let index = (object.metadata.finalizers ?? []).firstIndex(of: finalizer) else { return object }
        let name = object.metadata.name ?? ""
        let result = try await self.patch(
            name,
            .json([
                ["op": "test", "path": .string("/metadata/finalizers/\(index)"), "value": .string(finalizer)],
                ["op": "remove", "path": .string("/metadata/finalizers/\(index)")],
            ]),
            fieldManager: fieldManager
        )
        return result.metadata.deletionTimestamp != nil && (result.metadata.finalizers ?? []).isEmpty ? nil : result
    }
}
