// DatasourceUnitTests.swift: what a target asks of Grafana (uid, name, headers, secrets), how a live datasource
// differs in the owned fields, what an update keeps, and the digest primitives against published vectors.

import Foundation
import GrafanaClient
import GrafanaTestServer
import HearthAPI
import HearthTestSupport
import KubeClient
import KubeModel
import KubeTestServer
import MetricsTestKit
import Testing

@testable import HearthOperator

@Suite("Desired datasource")
struct DesiredDatasourceTests {
    static func target(_ change: (inout ProfilingTarget) -> Void = { _ in }) -> ProfilingTarget {
        var target = makeTarget("checkout", passwordSecret: "pyro-auth")
        target.spec.pyroscope?.tenantID = "shop"
        var request = GrafanaDatasourceRequest()
        request.datasource = DatasourceSpec()
        target.spec.grafana = request
        change(&target)
        return target
    }

    static func resolve(_ target: ProfilingTarget, password: String? = "s3cr3t") -> ResolvedTarget {
        struct Lookup: ClusterLookup {
            var password: String?
            func secret(namespace: String, name: String) -> Secret? {
                self.password.map { makeSecret(name, namespace: namespace, password: $0) }
            }
            func service(namespace: String, name: String) -> Service? { nil }
        }
        return TargetResolver(configuration: OperatorConfiguration(), lookup: Lookup(password: password)).resolve(
            target
        )
    }

    static func desired(_ target: ProfilingTarget) throws -> DesiredDatasource {
        guard case .known(let desired)? = DesiredDatasource.of(target, resolved: Self.resolve(target)) else {
            throw CancellationError()
        }
        return desired
    }

    @Test("uid and name derive from the backend; the spec's win; no spec.grafana asks for nothing")
    func identity() throws {
        let derived = try Self.desired(Self.target())
        #expect(
            derived.uid
                == DesiredDatasource.derivedUID(url: "http://pyroscope.observability.svc:4040", tenantID: "shop")
        )
        #expect(derived.uid.count <= 40 && derived.uid.hasPrefix("hearth-"))
        #expect(derived.name == "Pyroscope (pyroscope.observability.svc:4040, tenant shop)")
        let other = try Self.desired(Self.target { $0.spec.pyroscope?.tenantID = "other" })
        #expect(other.uid != derived.uid)
        let explicit = try Self.desired(
            Self.target {
                $0.spec.grafana?.datasource = DatasourceSpec()
                $0.spec.grafana?.datasource?.uid = "pyroscope-shop"
                $0.spec.grafana?.datasource?.name = "Shop profiles"
                $0.spec.grafana?.url = "http://pyroscope.example:4040"
            }
        )
        #expect(explicit.uid == "pyroscope-shop" && explicit.name == "Shop profiles")
        #expect(explicit.url == "http://pyroscope.example:4040")
        let none = makeTarget("plain")
        #expect(DesiredDatasource.of(none, resolved: Self.resolve(none)) == nil)
    }

    @Test("a missing credential Secret leaves the datasource unresolved, with the Secret's reason")
    func unresolved() {
        let target = Self.target()
        guard
            case .unresolved(let problem)? = DesiredDatasource.of(target, resolved: Self.resolve(target, password: nil))
        else {
            Issue.record("resolved without its Secret")
            return
        }
        #expect(problem.reason == ConditionReason.secretNotFound)
    }

    @Test("tenant and token become custom headers; unused secret slots are sent empty so old secrets go")
    func headers() throws {
        var desired = try Self.desired(Self.target())
        #expect(
            desired.secureJsonData == [
                "basicAuthPassword": "s3cr3t", "httpHeaderValue1": "shop", "httpHeaderValue2": "",
            ]
        )
        desired.tenantID = nil
        desired.bearerToken = "tok"
        #expect(desired.secureJsonData["httpHeaderValue1"] == "Bearer tok")
        let owned = desired.ownedJSONData(marker: "m", secretsDigest: "d")
        #expect(owned["httpHeaderName1"] == .some("Authorization"))
        #expect(owned["httpHeaderName2"] == .some(nil))
    }

    @Test("differences name each owned field; other fields and jsonData keys are kept on update")
    func differencesAndCommand() throws {
        let desired = try Self.desired(Self.target())
        let digest = desired.secretsDigest()
        let command = desired.command(preserving: nil, marker: "hearth-operator/hearth-system", secretsDigest: digest)
        var live = try Self.live(command, secretFields: ["basicAuthPassword", "httpHeaderValue1"])
        #expect(desired.differences(from: live, marker: "hearth-operator/hearth-system", secretsDigest: digest).isEmpty)
        live.type = "phlare"
        #expect(desired.differences(from: live, marker: "hearth-operator/hearth-system", secretsDigest: digest).isEmpty)

        live.url = "http://elsewhere"
        live.isDefault = true
        live.jsonData["keepCookies"] = .array(["a"])
        live.jsonData["httpHeaderName1"] = nil
        live.secureJsonFields["basicAuthPassword"] = nil
        let differences = desired.differences(from: live, marker: "hearth-operator/hearth-system", secretsDigest: "old")
        #expect(
            differences == [
                "url", "jsonData.hearthSecureJsonDigest", "jsonData.httpHeaderName1",
                "secureJsonData.basicAuthPassword",
            ]
        )
        live.version = 7
        let update = desired.command(preserving: live, marker: "hearth-operator/hearth-system", secretsDigest: digest)
        #expect(update.url == desired.url && update.isDefault && update.version == 7)
        #expect(update.jsonData["keepCookies"] == .array(["a"]))
        #expect(update.jsonData["httpHeaderName1"] == "X-Scope-OrgID")
        #expect(update.jsonData["httpHeaderName2"] == nil)
        #expect(
            desired.differences(from: live, marker: "hearth-operator/other", secretsDigest: digest).contains(
                "jsonData.hearthManagedBy"
            )
        )
    }

    @Test("the secrets digest is salted by uid and changes with any secret")
    func digest() throws {
        let desired = try Self.desired(Self.target())
        var other = desired
        other.uid = "another"
        #expect(desired.secretsDigest() != other.secretsDigest())
        var rotated = desired
        rotated.basicAuthPassword = "n3w"
        #expect(desired.secretsDigest() != rotated.secretsDigest())
        #expect(desired.secretsDigest() == desired.secretsDigest())
        #expect(!desired.secretsDigest().contains("s3cr3t"))
    }

    /// A datasource as Grafana would return it after `command`.
    static func live(_ command: DatasourceCommand, secretFields: [String]) throws -> Datasource {
        var object = try JSONValue.parse(JSONEncoder().encode(command))
        if case .object(var fields) = object {
            fields["secureJsonData"] = nil
            fields["secureJsonFields"] = .object(
                Dictionary(uniqueKeysWithValues: secretFields.map { ($0, JSONValue.bool(true)) })
            )
            fields["version"] = 1
            fields["readOnly"] = false
            object = .object(fields)
        }
        return try JSONDecoder().decode(Datasource.self, from: Data(object.serialized()))
    }
}

@Suite("SHA-256, HMAC and PBKDF2 against published vectors")
struct DigestVectorTests {
    @Test("FIPS 180-4, RFC 4231 (HMAC-SHA256 cases 2 and 6), RFC 7914 §11 and the common 4096-round PBKDF2 vector")
    func vectors() {
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let hmac = SHA256.hmac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(SHA256.hex(digest: hmac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        let long = SHA256.hmac(
            key: [UInt8](repeating: 0xaa, count: 131),
            message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)
        )
        #expect(SHA256.hex(digest: long) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        let derived = SHA256.pbkdf2(password: Array("passwd".utf8), salt: Array("salt".utf8), iterations: 1)
        #expect(SHA256.hex(digest: derived) == "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
        let slow = SHA256.pbkdf2(password: Array("password".utf8), salt: Array("salt".utf8), iterations: 4096)
        #expect(SHA256.hex(digest: slow) == "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a")
    }
}

@Suite("Datasource synchronizer", .timeLimit(.minutes(1)))
struct DatasourceSynchronizerTests {
    @Test("once Grafana did not answer, other datasources wait for the backoff instead of another timeout each")
    func unreachableBreaker() async throws {
        try await KubeTestServer.withRunning(logger: testLogger("kube-test-server")) { server in
            try await withKubeClient(
                configuration: testClientConfiguration(server.url, userAgent: "tests/1.0", timeout: .seconds(5)),
                logger: testLogger()
            ) { kube in
                var secret = Secret(name: "grafana", namespace: "default")
                secret.data = ["token": Data("glsa_good".utf8).base64EncodedString()]
                _ = try await kube.resource(Secret.self, namespace: "default").create(secret)
                try await withGrafanaServer { grafana in
                    var settings = GrafanaSettings(
                        url: grafana.url,
                        credentialsSecret: ObjectKey(namespace: "default", name: "grafana")
                    )
                    settings.initialBackoff = .seconds(30)
                    settings.timeout = .seconds(1)
                    let metrics = TestMetrics()
                    let synchronizer = DatasourceSynchronizer(
                        settings: settings,
                        operatorNamespace: "hearth-system",
                        kube: kube,
                        logger: testLogger(),
                        metricsFactory: metrics
                    )
                    await grafana.stop()
                    func desired(_ uid: String) -> DesiredDatasource {
                        DesiredDatasource(uid: uid, name: uid, url: "http://pyroscope:4040")
                    }
                    let first = await synchronizer.sync(desired("a"), for: ObjectKey(namespace: "shop", name: "a")) {
                        _ in nil
                    }
                    #expect(first.outcome.reason == ConditionReason.grafanaUnreachable)
                    let second = await synchronizer.sync(desired("b"), for: ObjectKey(namespace: "shop", name: "b")) {
                        _ in nil
                    }
                    #expect(second.outcome.reason == ConditionReason.grafanaUnreachable)
                    guard case .pending(_, let message) = second.outcome else {
                        Issue.record("not pending: \(second.outcome)")
                        return
                    }
                    #expect(message.contains("another datasource"))
                    #expect(second.retryAfter > .seconds(25))
                    let calls = try metrics.expectCounter(
                        "hearth_grafana_requests_total",
                        [("method", "GET"), ("code", "error")]
                    )
                    #expect(calls.totalValue == 1)
                }
            }
        }
    }
}
