// GrafanaClientTests.swift: GrafanaClient against the Grafana test double: every documented status code and
// how it is typed, the version lock, secrets merged on update and never returned, the `phlare` alias, timeouts,
// credentials read per call, and the request counter.

import Foundation
import GrafanaClient
import GrafanaTestServer
import HearthTestSupport
import KubeModel
import MetricsTestKit
import Synchronization
import Testing

func withGrafanaServer<Result>(
    authentication: [GrafanaTestServer.Authentication] = [.token("glsa_good")],
    _ body: (GrafanaTestServer) async throws -> Result
) async throws -> Result {
    try await GrafanaTestServer.withRunning(
        authentication: authentication,
        logger: testLogger("grafana-test-server"),
        body
    )
}

@Suite("GrafanaClient against the Grafana API double")
struct GrafanaClientTests {
    static func client(
        _ server: GrafanaTestServer,
        token: String = "glsa_good",
        timeout: Duration = .seconds(5),
        metrics: TestMetrics = TestMetrics()
    ) -> GrafanaClient {
        var configuration = GrafanaClient.Configuration(url: server.url + "/")
        configuration.timeout = timeout
        return GrafanaClient(configuration: configuration, credentials: { .token(token) }, metricsFactory: metrics)
    }

    static func command(
        uid: String = "pyro",
        name: String = "Pyroscope",
        type: String = "grafana-pyroscope-datasource"
    )
        -> DatasourceCommand
    {
        var command = DatasourceCommand(uid: uid, name: name, type: type, url: "http://pyroscope:4040")
        command.jsonData = ["httpHeaderName1": "X-Scope-OrgID", "keepCookies": .array(["session"])]
        command.secureJsonData = ["httpHeaderValue1": "tenant-a", "basicAuthPassword": "p4ss"]
        return command
    }

    @Test("create, get by uid and name, list, delete; 404 is nil or false, not an error")
    func lifecycle() async throws {
        try await withGrafanaServer { server in
            let client = Self.client(server)
            #expect(try await client.datasource(uid: "pyro") == nil)
            let created = try await client.createDatasource(Self.command())
            #expect(created.uid == "pyro" && created.version == 1 && created.access == "proxy")
            let read = try #require(try await client.datasource(uid: "pyro"))
            #expect(read.jsonData["keepCookies"] == .array(["session"]))
            #expect(read.secureJsonFields == ["httpHeaderValue1": true, "basicAuthPassword": true])
            #expect(try await client.datasource(name: "Pyroscope")?.uid == "pyro")
            #expect(try await client.datasources().map(\.uid) == ["pyro"])
            #expect(try await client.deleteDatasource(uid: "pyro"))
            #expect(try await client.deleteDatasource(uid: "pyro") == false)
            try await client.health()
        }
    }

    @Test("secrets are never returned by GET, and kept on update when omitted")
    func secrets() async throws {
        try await withGrafanaServer { server in
            let client = Self.client(server)
            _ = try await client.createDatasource(Self.command())
            var update = Self.command()
            update.secureJsonData = ["httpHeaderValue1": "tenant-b"]
            update.version = 1
            _ = try await client.updateDatasource(uid: "pyro", update)
            let stored = try #require(server.datasources["pyro"])
            #expect(stored.secureJsonData == ["httpHeaderValue1": "tenant-b", "basicAuthPassword": "p4ss"])
            let body = try #require(server.requests.last { $0.method == "PUT" })
            #expect(body.status == 200)
            for request in server.requests where request.method == "GET" { #expect(request.status == 200) }
            let read = try #require(try await client.datasource(uid: "pyro"))
            #expect(read.secureJsonFields.keys.sorted() == ["basicAuthPassword", "httpHeaderValue1"])
        }
    }

    @Test("status codes are typed: 409 name and uid clash, 409 stale version, 403 read-only, 400, 401")
    func errors() async throws {
        try await withGrafanaServer { server in
            let client = Self.client(server)
            _ = try await client.createDatasource(Self.command())
            await #expect(throws: GrafanaError.self) {
                _ = try await client.createDatasource(Self.command(uid: "other"))
            }
            do throws(GrafanaError) {
                _ = try await client.createDatasource(Self.command(uid: "other"))
                Issue.record("a second datasource with the same name was created")
            } catch {
                #expect(error.code == .conflict && error.status == 409)
                #expect(error.message == "data source with the same name already exists")
                #expect(error.request == "POST /api/datasources")
            }
            do throws(GrafanaError) {
                _ = try await client.createDatasource(Self.command(name: "Another"))
                Issue.record("a second datasource with the same uid was created")
            } catch {
                #expect(error.code == .conflict)
            }
            // Someone saved in the UI meanwhile: our version 1 is stale.
            server.editAsUser(uid: "pyro") { $0.url = "http://elsewhere:4040" }
            var stale = Self.command()
            stale.version = 1
            do throws(GrafanaError) {
                _ = try await client.updateDatasource(uid: "pyro", stale)
                Issue.record("a stale version was accepted")
            } catch {
                #expect(error.code == .conflict)
            }
            #expect(server.datasources["pyro"]?.url == "http://elsewhere:4040")
            // Version 0 (or none) updates unconditionally, and the stored version restarts at 1.
            stale.version = nil
            #expect(try await client.updateDatasource(uid: "pyro", stale).version == 1)

            server.provision(
                StoredDatasource(
                    uid: "file",
                    name: "From file",
                    type: "grafana-pyroscope-datasource",
                    url: "http://p:4040",
                    readOnly: true
                )
            )
            do throws(GrafanaError) {
                _ = try await client.updateDatasource(uid: "file", Self.command(uid: "file", name: "From file"))
                Issue.record("a read-only datasource was updated")
            } catch {
                #expect(error.code == .forbidden && error.message == "Cannot update read-only data source")
            }
            do throws(GrafanaError) {
                _ = try await client.deleteDatasource(uid: "file")
                Issue.record("a read-only datasource was deleted")
            } catch {
                #expect(error.code == .forbidden)
            }
            do throws(GrafanaError) {
                _ = try await client.createDatasource(Self.command(uid: "not/valid", name: "Bad uid"))
                Issue.record("an invalid uid was accepted")
            } catch {
                #expect(error.code == .badRequest)
            }
            do throws(GrafanaError) {
                _ = try await client.updateDatasource(uid: "missing", Self.command(uid: "missing", name: "M"))
                Issue.record("an update of a missing datasource succeeded")
            } catch {
                #expect(error.code == .notFound && error.message == "Data source not found")
            }
            do throws(GrafanaError) {
                _ = try await Self.client(server, token: "glsa_wrong").datasource(uid: "pyro")
                Issue.record("a wrong token was accepted")
            } catch {
                #expect(error.code == .unauthorized && error.status == 401)
            }
        }
    }

    @Test("the phlare alias reads back as grafana-pyroscope-datasource")
    func alias() async throws {
        try await withGrafanaServer { server in
            let client = Self.client(server)
            let created = try await client.createDatasource(Self.command(type: "phlare"))
            #expect(created.type == "grafana-pyroscope-datasource")
        }
    }

    @Test("a slow Grafana times out, a stopped one is unreachable; both counted as code=error")
    func unreachable() async throws {
        let metrics = TestMetrics()
        try await withGrafanaServer { server in
            server.responseDelay = .seconds(3)
            let client = Self.client(server, timeout: .milliseconds(300), metrics: metrics)
            do throws(GrafanaError) {
                _ = try await client.datasource(uid: "pyro")
                Issue.record("a slow call did not time out")
            } catch {
                #expect(error.code == .unreachable && error.status == nil)
            }
            server.responseDelay = nil
            _ = try await client.datasource(uid: "pyro")
            await server.stop()
            do throws(GrafanaError) {
                _ = try await client.datasource(uid: "pyro")
                Issue.record("a stopped server answered")
            } catch {
                #expect(error.code == .unreachable)
            }
        }
        let errors = try metrics.expectCounter("hearth_grafana_requests_total", [("method", "GET"), ("code", "error")])
        #expect(errors.totalValue == 2)
        let notFound = try metrics.expectCounter("hearth_grafana_requests_total", [("method", "GET"), ("code", "404")])
        #expect(notFound.totalValue == 1)
    }

    @Test("credentials are read for every call: a rotated token is used at once; basic auth works")
    func rotation() async throws {
        try await withGrafanaServer(authentication: [.token("glsa_one")]) { server in
            let token = Mutex("glsa_one")
            let client = GrafanaClient(
                configuration: .init(url: server.url),
                credentials: { .token(token.withLock { $0 }) }
            )
            let first = try await client.datasource(uid: "x")
            #expect(first == nil)
            server.authentication = [.token("glsa_two")]
            await #expect(throws: GrafanaError.self) { _ = try await client.datasource(uid: "x") }
            token.withLock { $0 = "glsa_two" }
            let rotated = try await client.datasource(uid: "x")
            #expect(rotated == nil)
            server.authentication = [.basic(username: "admin", password: "pw")]
            let basic = GrafanaClient(
                configuration: .init(url: server.url),
                credentials: { .basic(username: "admin", password: "pw") }
            )
            let viaBasic = try await basic.datasource(uid: "x")
            #expect(viaBasic == nil)
            #expect("\(GrafanaCredentials.token("glsa_secret"))".contains("glsa_secret") == false)
        }
    }
}
