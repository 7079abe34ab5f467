// kube-bench: watch events per second through Watcher into Store, and Store memory with 10,000 objects.
// Method: see BENCHMARKS-kube.md. Build and run in release: `swift build -c release --product kube-bench`.

import Foundation
import HearthBase
import KubeClient
import KubeModel
import KubeRuntime
import KubeTestServer
import Logging

#if canImport(Glibc)
import Glibc
#endif

func residentBytes() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

let type = ResourceType(group: "example.com", version: "v1", kind: "Gizmo", plural: "gizmos", namespaced: true)

/// A typical custom resource: labels, annotations, a spec with a few fields, a status with two conditions.
func gizmo(_ index: Int, generation: Int = 0) -> JSONObject {
    [
        "apiVersion": "example.com/v1", "kind": "Gizmo",
        "metadata": [
            "name": .string("gizmo-\(index)"), "namespace": .string("ns-\(index % 100)"),
            "labels": ["app": .string("app-\(index % 50)"), "team": "payments", "tier": "web"],
            "annotations": ["hearth.dev/config-hash": .string(String(repeating: "a", count: 64))],
        ],
        "spec": [
            "color": "red", "size": .int(Int64(generation % 10)),
            "selector": ["matchLabels": ["app": .string("app-\(index % 50)")]],
            "pyroscope": ["serviceRef": ["name": "pyroscope", "namespace": "observability", "port": 4040]],
        ],
        "status": [
            "observedGeneration": 1,
            "conditions": [
                [
                    "type": "Ready", "status": "True", "reason": "Reconciled", "message": "",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                ],
                [
                    "type": "AgentRolledOut", "status": "True", "reason": "Ready", "message": "5/5 nodes",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                ],
            ],
        ],
    ]
}

func crd() -> CustomResourceDefinition {
    var crd = CustomResourceDefinition(name: "gizmos.example.com")
    crd.spec.group = "example.com"
    crd.spec.scope = "Namespaced"
    var names = CustomResourceDefinitionNames()
    names.plural = "gizmos"
    names.kind = "Gizmo"
    crd.spec.names = names
    var version = CustomResourceDefinitionVersion()
    version.name = "v1"
    version.served = true
    version.storage = true
    var schema = CustomResourceValidation()
    schema.openAPIV3Schema = ["type": "object", "x-kubernetes-preserve-unknown-fields": true]
    version.schema = schema
    crd.spec.versions = [version]
    return crd
}

var logger = Logger(label: "kube-bench")
logger.logLevel = .error
let count = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 10_000
let rounds = 3

// Store memory: decode `count` objects from JSON (as the watcher does) into a Store; heap delta per object.
do {
    let encoded = try (0..<count).map { try KubeJSON.encode(JSONValue.object(gizmo($0, generation: 1))) }
    let jsonBytes = encoded.reduce(0) { $0 + $1.count }
    let rssBefore = residentBytes()
    let store = Store<DynamicObject>(indexers: ["namespace": StoreIndex.namespace()])
    store.apply(.initStarted)
    for data in encoded { store.apply(.initApply(try KubeJSON.decode(DynamicObject.self, from: data))) }
    store.apply(.initDone)
    let rssAfter = residentBytes()
    print(
        String(
            format:
                "store memory: %d objects (%.0f bytes of JSON each): RSS +%.1f MiB (%.0f bytes/object); RSS now %.1f MiB",
            store.count,
            Double(jsonBytes) / Double(count),
            Double(rssAfter - rssBefore) / 1_048_576,
            Double(rssAfter - rssBefore) / Double(count),
            Double(rssAfter) / 1_048_576
        )
    )
    withExtendedLifetime(store) {}
}

var serverConfiguration = KubeTestServer.Configuration()
serverConfiguration.bookmarkInterval = .seconds(3600)
try await KubeTestServer.withRunning(configuration: serverConfiguration, logger: logger) { server in
    var settings = ClientConfiguration(server: server.url)
    settings.qps = 0
    try await withKubeClient(configuration: settings, logger: logger) { client in
        _ = try await client.resource(CustomResourceDefinition.self).create(crd())
        let namespaces = (0..<100).map { index -> JSONObject in ["metadata": ["name": .string("ns-\(index)")]] }
        try server.seed(group: "", plural: "namespaces", objects: namespaces)
        let store = Store<DynamicObject>()
        var configuration = Watcher<DynamicObject>.Configuration()
        configuration.minTimeoutSeconds = 3600
        let watcher = Watcher(client.resource(type), configuration: configuration, logger: logger)
        print("# kube-bench: \(count) objects, \(rounds) rounds, debug=\(_isDebugAssertConfiguration())")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { for try await event in watcher { store.apply(event) } }
            while !store.hasSynced || server.openWatchCount == 0 { try await Task.sleep(for: .milliseconds(10)) }
            for round in 0..<rounds {
                let objects = (0..<count).map { gizmo($0, generation: round + 1) }
                let lastName = "gizmo-\(count - 1)"
                let expected = round == 0 ? "" : nil
                _ = expected
                let before = server.resourceVersion
                let start = ContinuousClock.now
                try server.seed(group: "example.com", plural: "gizmos", objects: objects)
                let seeded = ContinuousClock.now
                let target = String(server.resourceVersion)
                while store.get(namespace: "ns-\((count - 1) % 100)", name: lastName)?.metadata.resourceVersion
                    != target
                {
                    try await Task.sleep(for: .milliseconds(1))
                }
                let end = ContinuousClock.now
                let events = Int(server.resourceVersion - before)
                print(
                    String(
                        format: "watch round %d (%@): %d events in %.3f s (server writes %.3f s) = %.0f events/s",
                        round + 1,
                        round == 0 ? "ADDED" : "MODIFIED",
                        events,
                        (end - start).seconds,
                        (seeded - start).seconds,
                        Double(events) / (end - start).seconds
                    )
                )
            }
            group.cancelAll()
        }
        // Relist path: one list of `count` objects through the Watcher into a fresh Store.
        let relistStore = Store<DynamicObject>()
        let listStart = ContinuousClock.now
        var iterator = Watcher(client.resource(type), configuration: configuration, logger: logger).makeAsyncIterator()
        while let event = try await iterator.next() {
            relistStore.apply(event)
            if case .initDone = event { break }
        }
        print(
            String(
                format: "list %d objects (pages of 500) into a Store: %.3f s",
                relistStore.count,
                (ContinuousClock.now - listStart).seconds
            )
        )
    }
}
