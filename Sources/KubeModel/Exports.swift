// Exports.swift: Kubernetes objects are typed views over JSON trees; every user of this module uses HearthJSON's
// `JSONValue` and `JSONView` with them, so they come with it.

@_exported import HearthJSON
