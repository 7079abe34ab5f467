// TestSupport.swift: helpers shared by the Kubernetes layer tests: polling with deadlines, clients bound to a
// test server, child processes (kubectl, kube-test-server).

import Foundation
import HearthTestSupport
import KubeClient
import KubeModel
import KubeRuntime
import KubeTestServer
import Logging
import NIOPosix
import Synchronization
import Testing

/// Runs `body` with an in-process server and a client to it.
func withServerAndClient<Result: Sendable>(
    configuration: KubeTestServer.Configuration = .init(),
    clientSettings: (inout ClientConfiguration) -> Void = { _ in },
    _ body: (KubeTestServer, KubeClient) async throws -> Result
) async throws -> Result {
    try await KubeTestServer.withRunning(configuration: configuration, logger: testLogger()) { server in
        var settings = testClientConfiguration(server.url)
        clientSettings(&settings)
        return try await withKubeClient(configuration: settings, logger: testLogger()) { client in
            try await body(server, client)
        }
    }
}

/// The Gizmo custom resource used across tests.
enum Gizmo {
    static let type = ResourceType(
        group: "example.com",
        version: "v1",
        kind: "Gizmo",
        plural: "gizmos",
        namespaced: true
    )

    /// The CRD as a manifest for kubectl (JSON is YAML), from the one definition below.
    static var crdManifest: String { String(decoding: try! KubeJSON.encode(crd), as: UTF8.self) }

    static var crd: CustomResourceDefinition {
        var crd = CustomResourceDefinition(name: "gizmos.example.com")
        crd.spec.group = "example.com"
        crd.spec.scope = "Namespaced"
        var names = CustomResourceDefinitionNames()
        names.plural = "gizmos"
        names.singular = "gizmo"
        names.kind = "Gizmo"
        names.shortNames = ["gz"]
        crd.spec.names = names
        var version = CustomResourceDefinitionVersion()
        version.name = "v1"
        version.served = true
        version.storage = true
        var subresources = CustomResourceSubresources()
        subresources.status = AnyObjectView()
        version.subresources = subresources
        var schema = CustomResourceValidation()
        schema.openAPIV3Schema = [
            "type": "object",
            "properties": [
                "spec": [
                    "type": "object", "required": ["color"],
                    "properties": [
                        "color": ["type": "string", "enum": ["red", "blue"]],
                        "size": ["type": "integer", "minimum": 0, "maximum": 10, "default": 1],
                        "name": ["type": "string", "maxLength": 8, "pattern": "^[a-z]+$"],
                        "tags": ["type": "object", "additionalProperties": ["type": "string"]],
                    ],
                ],
                "status": ["type": "object", "x-kubernetes-preserve-unknown-fields": true],
            ],
        ]
        version.schema = schema
        func column(_ name: String, _ type: String, _ jsonPath: String) -> CustomResourceColumnDefinition {
            var column = CustomResourceColumnDefinition()
            column.name = name
            column.type = type
            column.jsonPath = jsonPath
            return column
        }
        version.additionalPrinterColumns = [
            column("Size", "integer", ".spec.size"),
            column("Ready", "string", #".status.conditions[?(@.type=="Ready")].status"#),
        ]
        crd.spec.versions = [version]
        return crd
    }

    static func object(
        _ name: String,
        namespace: String = "default",
        color: String = "red",
        size: Int = 1,
        labels: [String: String]? = nil
    ) -> DynamicObject {
        var object = DynamicObject(type, name: name, namespace: namespace)
        object.spec = ["color": .string(color), "size": .int(Int64(size))]
        if let labels { object.metadata.labels = labels }
        return object
    }

    /// Registers the CRD through the API.
    static func install(_ client: KubeClient) async throws {
        _ = try await client.resource(CustomResourceDefinition.self).create(crd)
    }
}

/// A shareable lock-protected value for tests.
final class Locked<Value: Sendable>: Sendable {
    let mutex: Mutex<Value>
    init(_ value: Value) { self.mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { self.mutex.withLock { body(&$0) } }
    var value: Value { self.mutex.withLock { $0 } }
}

/// A clock tests move by hand: `sleep(until:)` returns only when ``advance(by:)`` reaches the deadline, so delays
/// and durations are exact and no test waits on the wall clock.
final class ManualClock: WorkQueueClock, Sendable {
    private struct State {
        var offset: Duration = .zero
        var sleepers: [UUID: (deadline: ContinuousClock.Instant, continuation: CheckedContinuation<Void, any Error>)] =
            [:]
    }

    let start = ContinuousClock.now
    private let state = Mutex(State())

    var now: ContinuousClock.Instant { self.start + self.state.withLock { $0.offset } }

    /// The deadlines callers are sleeping until.
    var sleepingUntil: [ContinuousClock.Instant] { self.state.withLock { $0.sleepers.values.map(\.deadline) } }

    func sleep(until deadline: ContinuousClock.Instant) async throws {
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let now = self.now
                let outcome = self.state.withLock { state -> Bool? in
                    if Task.isCancelled { return false }
                    if deadline <= self.start + state.offset || deadline <= now { return true }
                    state.sleepers[id] = (deadline, continuation)
                    return nil
                }
                switch outcome {
                case true?: continuation.resume()
                case false?: continuation.resume(throwing: CancellationError())
                case nil: break
                }
            }
        } onCancel: {
            self.state.withLock { $0.sleepers.removeValue(forKey: id) }?.continuation.resume(
                throwing: CancellationError()
            )
        }
    }

    /// Moves time forward and wakes every sleeper whose deadline came.
    func advance(by duration: Duration) {
        let due = self.state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.offset += duration
            let now = self.start + state.offset
            let ids = state.sleepers.filter { $0.value.deadline <= now }.map(\.key)
            return ids.compactMap { state.sleepers.removeValue(forKey: $0)?.continuation }
        }
        for continuation in due { continuation.resume() }
    }

    /// Waits (polling, briefly) until `count` callers sleep on this clock.
    func waitForSleepers(_ count: Int) async -> Bool {
        await eventually(timeout: .seconds(10), every: .milliseconds(2)) { self.sleepingUntil.count >= count }
    }
}
