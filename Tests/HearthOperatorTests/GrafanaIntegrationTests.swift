// GrafanaIntegrationTests.swift: the operator against kube-test-server and the Grafana API double, one test per
// "Done when" case of the Grafana issue: create, a no-op resync, UI drift, secret and token rotation, a name
// conflict, read-only datasources, a shared datasource and the deletion order, Grafana down during create and
// delete, wrong credentials, and no Grafana configured.

import Foundation
import GrafanaTestServer
import HearthAPI
import HearthOperator
import HearthTestSupport
import KubeClient
import KubeModel
import KubeRuntime
import KubeTestServer
import Testing

/// The operator wired to a Grafana double whose token is in hearth-system/grafana-service-account.
func withGrafanaOperator<Result: Sendable>(
    resync: Duration = .seconds(300),
    _ body: (OperatorHarness, GrafanaTestServer) async throws -> Result
) async throws -> Result {
    try await withGrafanaServer(authentication: [.token("glsa_good")]) { grafana in
        try await OperatorHarness.with(configure: { configuration in
            var settings = GrafanaSettings(
                url: grafana.url,
                credentialsSecret: ObjectKey(namespace: "hearth-system", name: "grafana-service-account")
            )
            settings.timeout = .milliseconds(500)
            settings.resyncPeriod = resync
            settings.initialBackoff = .milliseconds(200)
            configuration.grafana = settings
        }) { h in
            try await h.setGrafanaToken("glsa_good")
            return try await body(h, grafana)
        }
    }
}

extension OperatorHarness {
    func setGrafanaToken(_ token: String) async throws {
        var secret = Secret(name: "grafana-service-account", namespace: "hearth-system")
        secret.data = ["token": Data(token.utf8).base64EncodedString()]
        _ = try await self.client.resource(Secret.self, namespace: "hearth-system").apply(
            secret,
            fieldManager: "tests",
            force: true
        )
    }

    /// Creates the Pyroscope password Secret and a target asking for a datasource.
    @discardableResult
    func createGrafanaTarget(
        _ name: String,
        uid: String? = "pyroscope-shop",
        datasourceName: String? = "Pyroscope (shop)",
        tenant: String? = "shop"
    ) async throws -> ProfilingTarget {
        _ = try? await self.client.resource(Secret.self, namespace: "shop").create(makeSecret("pyro-auth"))
        var target = makeTarget(name, passwordSecret: "pyro-auth")
        target.spec.pyroscope?.tenantID = tenant
        var request = GrafanaDatasourceRequest()
        var datasource = DatasourceSpec()
        datasource.uid = uid
        datasource.name = datasourceName
        request.datasource = datasource
        target.spec.grafana = request
        return try await self.targets.inNamespace("shop").create(target)
    }

    func events(reason: String) async throws -> [Event] {
        try await self.client.resource(Event.self, namespace: "shop").list().items.filter { $0.reason == reason }
    }
}

@Suite("Grafana datasource provisioning", .timeLimit(.minutes(3)))
struct GrafanaIntegrationTests {
    @Test("a target's datasource is created as asked, secrets sent but never in status, events or GET")
    func create() async throws {
        try await withGrafanaOperator { h, grafana in
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.datasourceSynced,
                status: "True",
                reason: "DatasourceSynced"
            )
            let stored = try #require(grafana.datasources["pyroscope-shop"])
            #expect(stored.name == "Pyroscope (shop)" && stored.type == "grafana-pyroscope-datasource")
            #expect(stored.url == "http://pyroscope.observability.svc:4040" && stored.access == "proxy")
            #expect(stored.basicAuth && stored.basicAuthUser == "shop")
            #expect(stored.jsonData["httpHeaderName1"] == "X-Scope-OrgID")
            #expect(stored.jsonData["hearthManagedBy"] == "hearth-operator/hearth-system")
            #expect(stored.secureJsonData["httpHeaderValue1"] == "shop")
            #expect(stored.secureJsonData["basicAuthPassword"] == "s3cr3t-value")
            let status = try #require(try await h.target("shop", "checkout")?.status)
            #expect(status.grafana?.uid == "pyroscope-shop" && status.grafana?.name == "Pyroscope (shop)")
            #expect(!KubeJSON.string(status.json).contains("s3cr3t-value"))
            for event in try await h.client.resource(Event.self, namespace: "shop").list().items {
                #expect(!(event.note ?? "").contains("s3cr3t-value"))
            }
            #expect(grafana.requests.allSatisfy { $0.authorization == "Bearer glsa_good" })
            #expect(grafana.requests.filter { $0.method == "POST" }.count == 1)
        }
    }

    @Test("resyncs that find the datasource as asked write nothing")
    func noOpResync() async throws {
        try await withGrafanaOperator(resync: .milliseconds(300)) { h, grafana in
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor("shop", "checkout", ConditionType.datasourceSynced, status: "True")
            let gets = grafana.requests.filter { $0.method == "GET" }.count
            #expect(try await eventually { grafana.requests.filter { $0.method == "GET" }.count >= gets + 3 })
            #expect(grafana.requests.filter { $0.method != "GET" }.map(\.method) == ["POST"])
            #expect(try await h.events(reason: "DriftCorrected").isEmpty)
        }
    }

    @Test("an edit in Grafana's UI is corrected at the next resync, with a DriftCorrected event")
    func drift() async throws {
        try await withGrafanaOperator(resync: .milliseconds(300)) { h, grafana in
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor("shop", "checkout", ConditionType.datasourceSynced, status: "True")
            grafana.editAsUser(uid: "pyroscope-shop") { datasource in
                datasource.url = "http://wrong:4040"
                datasource.jsonData["httpHeaderName1"] = nil
                datasource.jsonData["keepCookies"] = .array(["session"])
                datasource.isDefault = true
            }
            try await grafana.waitUntil { $0["pyroscope-shop"]?.url == "http://pyroscope.observability.svc:4040" }
            let corrected = try #require(grafana.datasources["pyroscope-shop"])
            #expect(corrected.jsonData["httpHeaderName1"] == "X-Scope-OrgID")
            // What the user added outside Hearth's fields stays.
            #expect(corrected.jsonData["keepCookies"] == .array(["session"]) && corrected.isDefault)
            #expect(try await eventually { try await !h.events(reason: "DriftCorrected").isEmpty })
            let note = try #require(try await h.events(reason: "DriftCorrected").first?.note)
            #expect(note.contains("url") && note.contains("jsonData.httpHeaderName1"))

            // Deleted in the UI: created again.
            grafana.deleteAsUser(uid: "pyroscope-shop")
            try await grafana.waitUntil { $0["pyroscope-shop"] != nil }
        }
    }

    @Test("a rotated Pyroscope password reaches Grafana; a rotated Grafana token is used without a restart")
    func rotation() async throws {
        try await withGrafanaOperator { h, grafana in
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor("shop", "checkout", ConditionType.datasourceSynced, status: "True")
            var secret = makeSecret("pyro-auth", password: "r0tated")
            secret.metadata.resourceVersion = nil
            _ = try await h.client.resource(Secret.self, namespace: "shop").apply(
                secret,
                fieldManager: "tests",
                force: true
            )
            try await grafana.waitUntil { $0["pyroscope-shop"]?.secureJsonData["basicAuthPassword"] == "r0tated" }
            // A spec change, not drift.
            #expect(try await h.events(reason: "DriftCorrected").isEmpty)

            grafana.authentication = [.token("glsa_next")]
            try await h.setGrafanaToken("glsa_next")
            grafana.deleteAsUser(uid: "pyroscope-shop")
            await h.reconcileAndSettle([ObjectKey(namespace: "shop", name: "checkout")])
            var target = try #require(try await h.target("shop", "checkout"))
            target.spec.grafana?.datasource?.name = "Pyroscope (shop, rotated)"
            _ = try await h.targets.inNamespace("shop").update(target)
            try await grafana.waitUntil { $0["pyroscope-shop"]?.name == "Pyroscope (shop, rotated)" }
            #expect(grafana.requests.last?.authorization == "Bearer glsa_next")
        }
    }

    @Test("a datasource with the same name and another uid is never taken over: DatasourceNameConflict")
    func nameConflict() async throws {
        try await withGrafanaOperator { h, grafana in
            grafana.provision(
                StoredDatasource(
                    uid: "someone-else",
                    name: "Pyroscope (shop)",
                    type: "prometheus",
                    url: "http://prometheus:9090",
                    readOnly: false
                )
            )
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.datasourceSynced,
                status: "False",
                reason: "DatasourceNameConflict"
            )
            let message = try #require(
                try await h.condition("shop", "checkout", ConditionType.datasourceSynced)?.message
            )
            #expect(message.contains("someone-else"))
            let theirs = try #require(grafana.datasources["someone-else"])
            #expect(theirs.url == "http://prometheus:9090" && theirs.type == "prometheus" && theirs.version == 1)
            #expect(grafana.datasources["pyroscope-shop"] == nil)
            #expect(!grafana.requests.contains { $0.method == "PUT" || $0.method == "DELETE" })
            // The profiles still flow: the agent configuration includes the target.
            #expect(try await eventually { try await h.configuredTargets() == ["shop/checkout"] })

            // The user picks another name: synced.
            var target = try #require(try await h.target("shop", "checkout"))
            target.spec.grafana?.datasource?.name = "Pyroscope (shop profiles)"
            _ = try await h.targets.inNamespace("shop").update(target)
            try await h.waitFor("shop", "checkout", ConditionType.datasourceSynced, status: "True")
        }
    }

    @Test("a file-provisioned datasource with the uid: DatasourceReadOnly, no write attempted")
    func readOnly() async throws {
        try await withGrafanaOperator { h, grafana in
            grafana.provision(
                StoredDatasource(
                    uid: "pyroscope-shop",
                    name: "Provisioned",
                    type: "grafana-pyroscope-datasource",
                    url: "http://p:4040",
                    readOnly: true
                )
            )
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.datasourceSynced,
                status: "False",
                reason: "DatasourceReadOnly"
            )
            #expect(grafana.requests.allSatisfy { $0.method == "GET" })
            #expect(try await eventually { try await !h.events(reason: "DatasourceReadOnly").isEmpty })
        }
    }

    @Test("targets sharing a backend share one datasource; it goes with the last of them")
    func sharedAndDeletionOrder() async throws {
        try await withGrafanaOperator { h, grafana in
            try await h.createGrafanaTarget("checkout", uid: nil, datasourceName: nil)
            try await h.createGrafanaTarget("cart", uid: nil, datasourceName: nil)
            try await h.waitFor("shop", "checkout", ConditionType.datasourceSynced, status: "True")
            try await h.waitFor("shop", "cart", ConditionType.datasourceSynced, status: "True")
            #expect(grafana.datasources.count == 1)
            let uid = try #require(grafana.datasources.keys.first)
            #expect(try await h.target("shop", "cart")?.status.grafana?.uid == uid)
            #expect(grafana.requests.filter { $0.method == "POST" }.count == 1)

            try await h.targets.inNamespace("shop").delete("checkout")
            #expect(try await eventually { try await h.target("shop", "checkout") == nil })
            #expect(grafana.datasources[uid] != nil)
            try await h.targets.inNamespace("shop").delete("cart")
            #expect(try await eventually { try await h.target("shop", "cart") == nil })
            #expect(grafana.datasources.isEmpty)
        }
    }

    @Test("Grafana down during create: Unknown GrafanaUnreachable, the agent rolls out anyway, synced on return")
    func downDuringCreate() async throws {
        try await withGrafanaOperator { h, grafana in
            let port = grafana.port
            await grafana.stop()
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.datasourceSynced,
                status: "Unknown",
                reason: "GrafanaUnreachable"
            )
            #expect(try await eventually { try await h.configuredTargets() == ["shop/checkout"] })
            try await h.markAgentRolledOut()
            try await h.waitFor("shop", "checkout", ConditionType.ready, status: "True")
            try await grafana.start(port: port)
            try await h.waitFor("shop", "checkout", ConditionType.datasourceSynced, status: "True")
            #expect(grafana.datasources["pyroscope-shop"] != nil)
        }
    }

    @Test("a Grafana slower than the timeout: Unknown GrafanaUnreachable; synced once it answers in time")
    func slow() async throws {
        try await withGrafanaOperator { h, grafana in
            grafana.responseDelay = .seconds(2)
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.datasourceSynced,
                status: "Unknown",
                reason: "GrafanaUnreachable"
            )
            let message = try #require(
                try await h.condition("shop", "checkout", ConditionType.datasourceSynced)?.message
            )
            #expect(message.contains("GET /api/datasources/uid/pyroscope-shop"))
            grafana.responseDelay = nil
            try await h.waitFor("shop", "checkout", ConditionType.datasourceSynced, status: "True")
        }
    }

    @Test("Grafana down during delete: the finalizer waits for the datasource's removal, unless the target opts out")
    func downDuringDelete() async throws {
        try await withGrafanaOperator { h, grafana in
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor("shop", "checkout", ConditionType.datasourceSynced, status: "True")
            let port = grafana.port
            await grafana.stop()
            try await h.targets.inNamespace("shop").delete("checkout")
            // Several retries pass; the target stays, marked for deletion.
            let retried = try await eventually(timeout: .seconds(5)) {
                let log = h.server.requestLog.filter { $0.userAgent.hasPrefix(OperatorHarness.operatorUserAgent) }
                return log.filter { $0.path.hasSuffix("/secrets/grafana-service-account") }.count >= 3
            }
            #expect(retried)
            #expect(try await h.target("shop", "checkout")?.metadata.deletionTimestamp != nil)
            try await grafana.start(port: port)
            #expect(try await eventually { try await h.target("shop", "checkout") == nil })
            #expect(grafana.datasources["pyroscope-shop"] == nil)

            // Opted out: deleted at once although Grafana is down; the datasource stays behind.
            try await h.createGrafanaTarget("cart", uid: "pyroscope-cart", datasourceName: "Pyroscope (cart)")
            try await h.waitFor("shop", "cart", ConditionType.datasourceSynced, status: "True")
            await grafana.stop()
            var cart = try #require(try await h.target("shop", "cart"))
            cart.metadata.annotations = [ProfilingTarget.skipDatasourceCleanupAnnotation: "true"]
            _ = try await h.targets.inNamespace("shop").update(cart)
            try await h.targets.inNamespace("shop").delete("cart")
            #expect(try await eventually { try await h.target("shop", "cart") == nil })
            try await grafana.start(port: port)
            #expect(grafana.datasources["pyroscope-cart"] != nil)
        }
    }

    @Test("wrong credentials: False GrafanaUnauthorized with backoff (no hot loop); fixed by the Secret")
    func wrongCredentials() async throws {
        try await withGrafanaOperator { h, grafana in
            try await h.setGrafanaToken("glsa_wrong")
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.datasourceSynced,
                status: "False",
                reason: "GrafanaUnauthorized"
            )
            let start = grafana.requests.count
            let clock = ContinuousClock.now
            // Backoff from 200 ms doubling: at most 4 attempts in 2 s, however many reconciles happen.
            await h.reconcileAndSettle(Array(repeating: ObjectKey(namespace: "shop", name: "checkout"), count: 5))
            _ = await eventually(timeout: .seconds(2)) { ContinuousClock.now - clock >= .seconds(2) }
            #expect(grafana.requests.count - start <= 4)
            #expect(grafana.requests.allSatisfy { $0.status == 401 })
            try await h.setGrafanaToken("glsa_good")
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.datasourceSynced,
                status: "True",
                timeout: .seconds(60)
            )
        }
    }

    @Test("two targets asking for one uid differently: the second says DatasourceSpecConflict, no ping-pong")
    func specConflict() async throws {
        try await withGrafanaOperator(resync: .milliseconds(300)) { h, grafana in
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor("shop", "checkout", ConditionType.datasourceSynced, status: "True")
            try await h.createGrafanaTarget("cart", datasourceName: "Pyroscope (cart)")
            try await h.waitFor(
                "shop",
                "cart",
                ConditionType.datasourceSynced,
                status: "False",
                reason: "DatasourceSpecConflict"
            )
            let message = try #require(try await h.condition("shop", "cart", ConditionType.datasourceSynced)?.message)
            #expect(message.contains("shop/checkout"))
            let writes = grafana.requests.filter { $0.method != "GET" }.count
            let gets = grafana.requests.count
            #expect(try await eventually { grafana.requests.count >= gets + 3 })
            #expect(grafana.requests.filter { $0.method != "GET" }.count == writes)
            #expect(grafana.datasources["pyroscope-shop"]?.name == "Pyroscope (shop)")
        }
    }

    @Test("a datasource no target asks for any more is deleted by the periodic sweep; others' are left alone")
    func sweep() async throws {
        try await withGrafanaOperator(resync: .milliseconds(300)) { h, grafana in
            grafana.provision(
                StoredDatasource(uid: "users-own", name: "Users' own", url: "http://x:4040", readOnly: false)
            )
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor("shop", "checkout", ConditionType.datasourceSynced, status: "True")
            var target = try #require(try await h.target("shop", "checkout"))
            target.spec.grafana = nil
            _ = try await h.targets.inNamespace("shop").update(target)
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.datasourceSynced,
                status: "Unknown",
                reason: "NotRequested"
            )
            // The sweep runs from reconciles; the target's next one is due after its resync.
            try await h.createGrafanaTarget("cart", uid: "pyroscope-cart", datasourceName: "Pyroscope (cart)")
            try await grafana.waitUntil { $0["pyroscope-shop"] == nil && $0["pyroscope-cart"] != nil }
            #expect(grafana.datasources["users-own"] != nil)
            #expect(try await h.target("shop", "checkout")?.status.grafana == nil)
        }
    }

    @Test("without --grafana-url: DatasourceSynced False GrafanaNotConfigured, and nothing else changes")
    func notConfigured() async throws {
        try await OperatorHarness.with { h in
            try await h.createGrafanaTarget("checkout")
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.datasourceSynced,
                status: "False",
                reason: "GrafanaNotConfigured"
            )
            #expect(try await eventually { try await h.configuredTargets() == ["shop/checkout"] })
            try await h.markAgentRolledOut()
            try await h.waitFor("shop", "checkout", ConditionType.ready, status: "True")
            #expect(try await h.target("shop", "checkout")?.status.grafana == nil)
        }
    }
}
