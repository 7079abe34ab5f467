// TestSupport.swift: helpers shared by the Kubernetes layer tests: polling with deadlines, clients bound to a
// test server, child processes (kubectl, kube-test-server).

import Foundation
import KubeClient
import KubeModel
import KubeTestServer
import Logging
import NIOPosix
import Synchronization
import Testing

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(
    timeout: Duration = .seconds(20),
    every interval: Duration = .milliseconds(50),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

var testLogger: Logger {
    var logger = Logger(label: "kube-tests")
    logger.logLevel = .error
    return logger
}

/// A client configuration for a test server URL.
func clientConfiguration(_ url: String) -> ClientConfiguration {
    var configuration = ClientConfiguration(server: url)
    configuration.qps = 0
    configuration.timeout = .seconds(10)
    configuration.userAgent = "kube-tests/1.0"
    return configuration
}

/// Runs `body` with an in-process server and a client to it.
func withServerAndClient<Result: Sendable>(
    configuration: KubeTestServer.Configuration = .init(),
    clientSettings: (inout ClientConfiguration) -> Void = { _ in },
    _ body: (KubeTestServer, KubeClient) async throws -> Result
) async throws -> Result {
    try await KubeTestServer.withRunning(configuration: configuration, logger: testLogger) { server in
        var settings = clientConfiguration(server.url)
        clientSettings(&settings)
        return try await withKubeClient(configuration: settings, logger: testLogger) { client in
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

    static let crdYAML = """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: gizmos.example.com
        spec:
          group: example.com
          scope: Namespaced
          names: {plural: gizmos, singular: gizmo, kind: Gizmo, shortNames: [gz]}
          versions:
          - name: v1
            served: true
            storage: true
            subresources: {status: {}}
            additionalPrinterColumns:
            - {name: Size, type: integer, jsonPath: .spec.size}
            - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec:
                    type: object
                    required: [color]
                    properties:
                      color: {type: string, enum: [red, blue]}
                      size: {type: integer, minimum: 0, maximum: 10, default: 1}
                      name: {type: string, maxLength: 8, pattern: '^[a-z]+$'}
                      tags: {type: object, additionalProperties: {type: string}}
                  status:
                    type: object
                    x-kubernetes-preserve-unknown-fields: true

        """

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

/// A finished child process.
struct ProcessResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
    var output: String { self.stdout + self.stderr }
}

/// Runs a command to completion off the cooperative pool (output through temporary files: no pipe deadlocks).
func runProcess(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String]? = nil
)
    async throws -> ProcessResult
{
    try await NIOThreadPool.singleton.runIfActive {
        let base = NSTemporaryDirectory() + "kube-tests-proc-" + UUID().uuidString
        FileManager.default.createFile(atPath: base + ".out", contents: nil)
        FileManager.default.createFile(atPath: base + ".err", contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: base + ".out")
            try? FileManager.default.removeItem(atPath: base + ".err")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".out"))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".err"))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        func read(_ path: String) -> String {
            FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        return ProcessResult(
            status: process.terminationStatus,
            stdout: read(base + ".out"),
            stderr: read(base + ".err")
        )
    }
}

/// A long-running child process whose output goes to a file, read while it runs.
final class BackgroundProcess: Sendable {
    let process: Mutex<Process?>
    let outputPath: String

    init(_ executable: String, _ arguments: [String], directory: String) throws {
        self.outputPath = directory + "/bg-\(UUID().uuidString).out"
        FileManager.default.createFile(atPath: self.outputPath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: self.outputPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = Mutex(process)
    }

    var output: String {
        (FileManager.default.contents(atPath: self.outputPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    var isRunning: Bool { self.process.withLock { $0?.isRunning ?? false } }

    var exitStatus: Int32? { self.process.withLock { $0.flatMap { $0.isRunning ? nil : $0.terminationStatus } } }

    func terminate() {
        self.process.withLock { process in
            if process?.isRunning == true { process?.terminate() }
        }
    }

    deinit { self.terminate() }
}

/// A temporary directory removed at the end of `body`.
func withTemporaryDirectory<Result>(_ body: (String) async throws -> Result) async rethrows -> Result {
    let path = NSTemporaryDirectory() + "kube-tests-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// The built `kube-test-server` executable next to the test bundle, if present.
var kubeTestServerExecutable: String? {
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "kube-test-server"
        ).path,
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("kube-test-server").path,
        FileManager.default.currentDirectoryPath + "/.build/debug/kube-test-server",
    ]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}

var kubectlExecutable: String? {
    ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// A shareable lock-protected value for tests.
final class Locked<Value: Sendable>: Sendable {
    let mutex: Mutex<Value>
    init(_ value: Value) { self.mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { self.mutex.withLock { body(&$0) } }
    var value: Value { self.mutex.withLock { $0 } }
}
