// KubectlTests.swift: the real kubectl drives the `kube-test-server` executable.

import Foundation
import HearthTestSupport
import KubeClient
import KubeModel
import NIOHTTP1
import Testing

/// A `kube-test-server` child process plus a kubectl configured for it (own kubeconfig and discovery cache).
struct KubectlHarness {
    let process: KubeTestServerProcess
    var url: String { self.process.url }
    var directory: String { self.process.directory }

    static func with<Result>(_ body: (KubectlHarness) async throws -> Result) async throws -> Result {
        try await KubeTestServerProcess.with { process in try await body(KubectlHarness(process: process)) }
    }

    func run(_ arguments: String...) async throws -> ChildProcess.Output {
        try await self.process.kubectl(arguments)
    }

    func background(_ arguments: String...) throws -> BackgroundProcess {
        try self.process.kubectlInBackground(arguments)
    }

    func write(_ name: String, _ content: String) throws -> String {
        try self.process.write(name, content)
    }

    /// Applies the Gizmo CRD and waits for Established.
    func installCRD() async throws {
        let applied = try await self.run("apply", "-f", self.write("crd.yaml", Gizmo.crdManifest))
        #expect(applied.status == 0, "\(applied.output)")
        #expect(applied.stdout.contains("customresourcedefinition.apiextensions.k8s.io/gizmos.example.com created"))
        let established = try await self.run(
            "wait",
            "--for=condition=Established",
            "crd/gizmos.example.com",
            "--timeout=30s"
        )
        #expect(established.status == 0, "\(established.output)")
    }

    func gizmo(_ name: String, color: String = "red", size: Int = 3, extra: String = "") -> String {
        """
        apiVersion: example.com/v1
        kind: Gizmo
        metadata:
          name: \(name)
          namespace: default
        spec:
          color: \(color)
          size: \(size)\(extra)

        """
    }

    /// The test server's request log (through its control endpoint).
    func requests() async throws -> [JSONValue] {
        try await withKubeClient(configuration: testClientConfiguration(self.url), logger: testLogger()) {
            client in
            try await client.send(KubeRequest(method: .GET, path: "/_test/requests")).decode(JSONValue.self).arrayValue
                ?? []
        }
    }
}

@Suite("kubectl against kube-test-server", .serialized, .timeLimit(.minutes(3)))
struct KubectlTests {
    @Test("apply a CRD; create, get (table), patch and delete custom objects")
    func crud() async throws {
        try await KubectlHarness.with { k in
            try await k.installCRD()
            let created = try await k.run("apply", "-f", k.write("g1.yaml", k.gizmo("g1", size: 3)))
            #expect(created.status == 0, "\(created.output)")
            #expect(created.stdout.contains("gizmo.example.com/g1 created"))

            let table = try await k.run("get", "gizmos")
            #expect(table.status == 0, "\(table.output)")
            let lines = table.stdout.split(separator: "\n")
            #expect(
                lines.first?.split(separator: " ", omittingEmptySubsequences: true).map(String.init) == [
                    "NAME", "SIZE", "READY", "AGE",
                ]
            )
            #expect(
                lines.dropFirst().first?.split(separator: " ", omittingEmptySubsequences: true).prefix(2).map(
                    String.init
                ) == ["g1", "3"]
            )

            let patched = try await k.run("patch", "gz", "g1", "--type=merge", "-p", #"{"spec":{"size":4}}"#)
            #expect(patched.stdout.contains("gizmo.example.com/g1 patched"), "\(patched.output)")
            let again = try await k.run("patch", "gz", "g1", "--type=merge", "-p", #"{"spec":{"size":4}}"#)
            #expect(again.stdout.contains("patched (no change)"), "\(again.output)")
            let json = try await k.run(
                "patch",
                "gz",
                "g1",
                "--type=json",
                "-p",
                #"[{"op":"replace","path":"/spec/size","value":6}]"#
            )
            #expect(json.status == 0, "\(json.output)")
            let strategic = try await k.run("patch", "gz", "g1", "-p", #"{"spec":{"size":5}}"#)
            #expect(strategic.status != 0)
            #expect(
                strategic.output.contains("application/strategic-merge-patch+json is not supported"),
                "\(strategic.output)"
            )

            let fields = try await k.run("get", "gz", "g1", "-o", "jsonpath={.spec.size} {.metadata.generation}")
            #expect(fields.stdout == "6 3", "\(fields.output)")

            let deleted = try await k.run("delete", "gz", "g1")
            #expect(deleted.status == 0, "\(deleted.output)")
            #expect(deleted.stdout.contains(#"gizmo.example.com "g1" deleted"#))
            let missing = try await k.run("get", "gz", "g1")
            #expect(missing.status != 0)
            #expect(missing.stderr.contains(#"Error from server (NotFound): gizmos.example.com "g1" not found"#))
        }
    }

    @Test("kubectl get -w sees changes")
    func getWatch() async throws {
        try await KubectlHarness.with { k in
            try await k.installCRD()
            _ = try await k.run("apply", "-f", k.write("g1.yaml", k.gizmo("g1", size: 3)))
            let watch = try k.background("get", "gizmos", "-w")
            defer { watch.terminate() }
            #expect(await eventually { watch.output.contains("g1") })
            let patched = try await k.run("patch", "gz", "g1", "--type=merge", "-p", #"{"spec":{"size":7}}"#)
            #expect(patched.status == 0)
            #expect(
                await eventually {
                    watch.output.split(separator: "\n").contains { $0.hasPrefix("g1") && $0.contains(" 7 ") }
                },
                "\(watch.output)"
            )
            _ = try await k.run("apply", "-f", k.write("g2.yaml", k.gizmo("g2", size: 2)))
            #expect(await eventually { watch.output.contains("g2") }, "\(watch.output)")
            #expect(watch.isRunning)
        }
    }

    @Test("kubectl apply --server-side works and reports conflicts")
    func serverSideApply() async throws {
        try await KubectlHarness.with { k in
            try await k.installCRD()
            let first = try await k.run("apply", "--server-side", "-f", k.write("s1.yaml", k.gizmo("s1", size: 2)))
            #expect(first.status == 0, "\(first.output)")
            #expect(first.stdout.contains("gizmo.example.com/s1 serverside-applied"))
            let same = try await k.run("apply", "--server-side", "-f", k.directory + "/s1.yaml")
            #expect(same.status == 0, "\(same.output)")

            let other = try k.write("s2.yaml", k.gizmo("s1", size: 5))
            let conflict = try await k.run("apply", "--server-side", "--field-manager=other", "-f", other)
            #expect(conflict.status != 0)
            #expect(
                conflict.stderr.contains(#"Apply failed with 1 conflict: conflict with "kubectl": .spec.size"#),
                "\(conflict.output)"
            )
            let unchanged = try await k.run("get", "gz", "s1", "-o", "jsonpath={.spec.size}")
            #expect(unchanged.stdout == "2")

            let forced = try await k.run(
                "apply",
                "--server-side",
                "--field-manager=other",
                "--force-conflicts",
                "-f",
                other
            )
            #expect(forced.status == 0, "\(forced.output)")
            let value = try await k.run("get", "gz", "s1", "-o", "jsonpath={.spec.size}")
            #expect(value.stdout == "5")
            let managers = try await k.run(
                "get",
                "gz",
                "s1",
                "--show-managed-fields",
                "-o",
                "jsonpath={.metadata.managedFields[*].manager}"
            )
            #expect(managers.stdout == "kubectl other", "\(managers.output)")
        }
    }

    @Test("deleting an object with a finalizer waits until the finalizer is removed")
    func deleteWithFinalizer() async throws {
        try await KubectlHarness.with { k in
            try await k.installCRD()
            _ = try await k.run("apply", "-f", k.write("g1.yaml", k.gizmo("g1")))
            let hold = try await k.run(
                "patch",
                "gz",
                "g1",
                "--type=merge",
                "-p",
                #"{"metadata":{"finalizers":["example.com/hold"]}}"#
            )
            #expect(hold.status == 0, "\(hold.output)")
            let delete = try k.background("delete", "gz", "g1", "--timeout=60s")
            defer { delete.terminate() }
            // The object stays, marked for deletion, while kubectl waits on a watch.
            #expect(
                try await eventually {
                    try await k.run("get", "gz", "g1", "-o", "jsonpath={.metadata.deletionTimestamp}").stdout.count > 0
                }
            )
            #expect(
                try await eventually {
                    try await k.requests().contains {
                        $0["verb"]?.stringValue == "watch" && $0["userAgent"]?.stringValue?.hasPrefix("kubectl") == true
                    }
                }
            )
            #expect(delete.isRunning, "\(delete.output)")
            let release = try await k.run(
                "patch",
                "gz",
                "g1",
                "--type=json",
                "-p",
                #"[{"op":"remove","path":"/metadata/finalizers"}]"#
            )
            #expect(release.status == 0, "\(release.output)")
            #expect(await eventually { delete.exitStatus != nil })
            #expect(delete.exitStatus == 0, "\(delete.output)")
            #expect(delete.output.contains(#"gizmo.example.com "g1" deleted"#))
            let gone = try await k.run("get", "gz", "g1")
            #expect(gone.stderr.contains("NotFound"))
        }
    }

    @Test("kubectl wait --for=condition=Ready returns once the condition is set")
    func waitForReady() async throws {
        try await KubectlHarness.with { k in
            try await k.installCRD()
            _ = try await k.run("apply", "-f", k.write("g1.yaml", k.gizmo("g1")))
            let wait = try k.background("wait", "--for=condition=Ready", "gz/g1", "--timeout=60s")
            defer { wait.terminate() }
            #expect(
                try await eventually {
                    try await k.requests().contains {
                        $0["verb"]?.stringValue == "watch" && $0["userAgent"]?.stringValue?.hasPrefix("kubectl") == true
                    }
                }
            )
            #expect(wait.isRunning)
            // A Ready condition for an older generation does not count.
            let stale = try await k.run(
                "patch",
                "gz",
                "g1",
                "--subresource=status",
                "--type=merge",
                "-p",
                #"{"status":{"observedGeneration":0,"conditions":[{"type":"Ready","status":"True","reason":"Done","message":"","lastTransitionTime":"2025-01-01T00:00:00Z"}]}}"#
            )
            #expect(stale.status == 0, "\(stale.output)")
            let ready = try await k.run(
                "patch",
                "gz",
                "g1",
                "--subresource=status",
                "--type=merge",
                "-p",
                #"{"status":{"observedGeneration":1}}"#
            )
            #expect(ready.status == 0, "\(ready.output)")
            #expect(await eventually { wait.exitStatus != nil })
            #expect(wait.exitStatus == 0, "\(wait.output)")
            #expect(wait.output.contains("gizmo.example.com/g1 condition met"))
        }
    }

    @Test("an object that breaks the schema is refused with the field named")
    func schemaViolations() async throws {
        try await KubectlHarness.with { k in
            try await k.installCRD()
            let bad = try await k.run("apply", "-f", k.write("bad.yaml", k.gizmo("bad", color: "pink", size: 30)))
            #expect(bad.status != 0)
            #expect(bad.stderr.contains(#"The Gizmo "bad" is invalid"#), "\(bad.output)")
            #expect(bad.stderr.contains(#"spec.color: Unsupported value: "pink": supported values: "red", "blue""#))
            #expect(
                bad.stderr.contains(
                    "spec.size: Invalid value: 30: spec.size in body should be less than or equal to 10"
                )
            )

            let missing = try await k.run(
                "apply",
                "-f",
                k.write(
                    "missing.yaml",
                    "apiVersion: example.com/v1\nkind: Gizmo\nmetadata: {name: m1}\nspec: {size: 2}\n"
                )
            )
            #expect(missing.stderr.contains("spec.color: Required value"), "\(missing.output)")

            let unknown = try await k.run("apply", "-f", k.write("u.yaml", k.gizmo("u1", extra: "\n  colour: red")))
            #expect(unknown.status != 0)
            #expect(
                unknown.stderr.contains(#"strict decoding error: unknown field "spec.colour""#),
                "\(unknown.output)"
            )

            let wrongType = try await k.run("patch", "gz", "nope", "--type=merge", "-p", #"{"spec":{"size":"big"}}"#)
            #expect(wrongType.stderr.contains("NotFound"))
        }
    }

    @Test("built-in kinds: namespaces and ConfigMaps through client-side apply")
    func builtins() async throws {
        try await KubectlHarness.with { k in
            let manifest = """
                apiVersion: v1
                kind: Namespace
                metadata: {name: shop}
                ---
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: settings, namespace: shop}
                data: {a: "1"}

                """
            let first = try await k.run("apply", "-f", k.write("cm.yaml", manifest))
            #expect(first.status == 0, "\(first.output)")
            #expect(first.stdout.contains("configmap/settings created"))
            let second = try await k.run(
                "apply",
                "-f",
                k.write("cm.yaml", manifest.replacingOccurrences(of: "a: \"1\"", with: "a: \"2\""))
            )
            #expect(second.stdout.contains("configmap/settings configured"), "\(second.output)")
            let value = try await k.run("get", "cm", "settings", "-n", "shop", "-o", "jsonpath={.data.a}")
            #expect(value.stdout == "2")
            let label = try await k.run("label", "ns", "default", "team=core")
            #expect(label.status == 0, "\(label.output)")
            let selected = try await k.run("get", "ns", "-l", "team=core", "-o", "name")
            #expect(selected.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "namespace/default")
        }
    }

    @Test("typed commands that send protobuf: create namespace|configmap|secret, auth can-i")
    func protobufCommands() async throws {
        try await KubectlHarness.with { k in
            let namespace = try await k.run("create", "namespace", "team-a")
            #expect(namespace.stdout.contains("namespace/team-a created"), "\(namespace.output)")
            let configMap = try await k.run("create", "configmap", "c1", "--from-literal=a=1", "-n", "team-a")
            #expect(configMap.status == 0, "\(configMap.output)")
            let data = try await k.run("get", "cm", "c1", "-n", "team-a", "-o", "jsonpath={.data.a}")
            #expect(data.stdout == "1")
            let secret = try await k.run(
                "create",
                "secret",
                "generic",
                "s1",
                "--from-literal=pw=hunter2",
                "-n",
                "team-a"
            )
            #expect(secret.status == 0, "\(secret.output)")
            let encoded = try await k.run("get", "secret", "s1", "-n", "team-a", "-o", "jsonpath={.data.pw}")
            #expect(encoded.stdout == Data("hunter2".utf8).base64EncodedString())
            let canI = try await k.run("auth", "can-i", "create", "pods")
            #expect(canI.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "yes", "\(canI.output)")
        }
    }
}
