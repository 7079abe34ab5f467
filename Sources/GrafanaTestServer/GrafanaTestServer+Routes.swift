// GrafanaTestServer+Routes.swift: the datasource routes with Grafana's status codes and bodies
// (pkg/api/datasources.go; shared/reference/operators.md §2.4-2.5).

import Foundation
import HTTPTestServing
import HearthJSON
import NIOHTTP1
import Synchronization

extension GrafanaTestServer {
    static let pyroscopeType = "grafana-pyroscope-datasource"
    /// Plugin id aliases, resolved as Grafana's DTO does.
    static let typeAliases = ["phlare": pyroscopeType]

    func respond(_ request: TestHTTPRequest) async -> TestHTTPResponse {
        let (delay, fault, accepted) = self.state.withLock { state -> (Duration?, Int?, [Authentication]) in
            var fault: Int?
            if let index = state.failures.firstIndex(where: {
                $0.remaining > 0 && ($0.method == nil || $0.method == request.method.rawValue)
            }) {
                fault = state.failures[index].status
                state.failures[index].remaining -= 1
                if state.failures[index].remaining == 0 { state.failures.remove(at: index) }
            }
            return (state.delay, fault, state.authentication)
        }
        if let delay { try? await Task.sleep(for: delay) }
        let response: TestHTTPResponse
        if request.path == "/api/health" {
            response = Self.json(200, .object(["database": "ok", "version": "12.3.0"]))
        } else if let fault {
            response = Self.message(fault, "injected failure")
        } else if !Self.authorized(request.header("Authorization"), accepted) {
            response = Self.message(401, "Unauthorized")
        } else {
            response = self.route(request)
        }
        self.state.withLock {
            $0.requests.append(
                GrafanaRequestRecord(
                    method: request.method.rawValue,
                    path: request.path,
                    status: response.status,
                    authorization: request.header("Authorization")
                )
            )
        }
        return response
    }

    static func authorized(_ header: String?, _ accepted: [Authentication]) -> Bool {
        guard !accepted.isEmpty else { return true }
        guard let header else { return false }
        return accepted.contains { authentication in
            switch authentication {
            case .token(let token): header == "Bearer \(token)"
            case .basic(let username, let password):
                header == "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
            }
        }
    }

    func route(_ request: TestHTTPRequest) -> TestHTTPResponse {
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: true).map {
            String($0).removingPercentEncoding ?? String($0)
        }
        guard parts.count >= 2, parts[0] == "api", parts[1] == "datasources" else {
            return Self.message(404, "Not found")
        }
        let rest = Array(parts.dropFirst(2))
        let method = request.method
        if rest.isEmpty, method == .GET { return self.list() }
        if rest.isEmpty, method == .POST { return self.create(request.body) }
        guard rest.count == 2 else { return Self.message(404, "Not found") }
        let (by, value) = (rest[0], rest[1])
        switch (method, by) {
        case (.GET, "uid"): return self.get { $0.uid == value }
        case (.GET, "name"): return self.get { $0.name == value }
        case (.PUT, "uid"): return self.update(uid: value, request.body)
        case (.DELETE, "uid"): return self.delete(uid: value)
        default: return Self.message(404, "Not found")
        }
    }

    // MARK: Routes

    func list() -> TestHTTPResponse {
        let items = self.state.withLock { state in state.datasources.values.sorted { $0.name < $1.name } }
        return Self.json(200, .array(items.map { Self.dto($0, listItem: true) }))
    }

    func get(_ matches: (StoredDatasource) -> Bool) -> TestHTTPResponse {
        guard let datasource = self.state.withLock({ $0.datasources.values.first(where: matches) }) else {
            return Self.message(404, "Data source not found")
        }
        return Self.json(200, Self.dto(datasource))
    }

    /// A create or update body that passed Grafana's binding checks.
    struct Command {
        var fields: JSONObject
        var name: String
        var type: String
        var access: String
        /// Empty when the body has none.
        var uid: String
    }

    enum Binding {
        case command(Command)
        case rejected(TestHTTPResponse)
    }

    /// Grafana's checks before any lookup: name, type and access required (400 `bad request data`), then the
    /// uid's characters and the URL.
    static func bind(_ body: [UInt8]) -> Binding {
        guard case .object(let fields)? = try? JSONValue.parse(body),
            let name = fields["name"]?.stringValue, !name.isEmpty,
            let type = fields["type"]?.stringValue, !type.isEmpty,
            let access = fields["access"]?.stringValue, !access.isEmpty
        else {
            return .rejected(Self.message(400, "bad request data"))
        }
        let uid = fields["uid"]?.stringValue ?? ""
        if let invalid = Self.invalidUID(uid) { return .rejected(invalid) }
        if let url = fields["url"]?.stringValue, Self.invalidURL(url) {
            return .rejected(Self.message(400, "Validation error, invalid URL"))
        }
        return .command(Command(fields: fields, name: name, type: type, access: access, uid: uid))
    }

    func create(_ body: [UInt8]) -> TestHTTPResponse {
        let bound: Command
        switch Self.bind(body) {
        case .rejected(let response): return response
        case .command(let command): bound = command
        }
        let (command, name, type, access, uid) = (bound.fields, bound.name, bound.type, bound.access, bound.uid)
        return self.state.withLock { state in
            if state.datasources.values.contains(where: { $0.name == name }) {
                return Self.message(409, "data source with the same name already exists")
            }
            if !uid.isEmpty, state.datasources.values.contains(where: { $0.uid == uid }) {
                return Self.message(409, "data source with the same uid already exists")
            }
            var datasource = StoredDatasource(
                uid: uid.isEmpty ? "gen\(state.nextID)" : uid,
                name: name,
                type: Self.typeAliases[type] ?? type,
                url: "",
                access: access,
                readOnly: false
            )
            datasource.id = state.nextID
            Self.apply(command, to: &datasource, keepingSecrets: false)
            state.nextID += 1
            state.datasources[datasource.id] = datasource
            return Self.json(200, Self.written(datasource, "Datasource added"))
        }
    }

    func update(uid: String, _ body: [UInt8]) -> TestHTTPResponse {
        let bound: Command
        switch Self.bind(body) {
        case .rejected(let response): return response
        case .command(let command): bound = command
        }
        let (command, name, type, access, newUID) = (bound.fields, bound.name, bound.type, bound.access, bound.uid)
        let version = command["version"]?.intValue.map(Int.init) ?? 0
        return self.state.withLock { state in
            guard let id = state.datasources.values.first(where: { $0.uid == uid })?.id,
                var datasource = state.datasources[id]
            else {
                return Self.message(404, "Data source not found")
            }
            if datasource.readOnly { return Self.message(403, "Cannot update read-only data source") }
            if state.datasources.values.contains(where: { $0.name == name && $0.id != id }) {
                return Self.message(409, "Failed to update datasource: data source with the same name already exists")
            }
            if !newUID.isEmpty, state.datasources.values.contains(where: { $0.uid == newUID && $0.id != id }) {
                return Self.message(409, "Failed to update datasource: data source with the same uid already exists")
            }
            // The store's `WHERE version < cmd.Version+1`: a version older than the stored one changes nothing.
            if version != 0, datasource.version > version {
                return Self.message(
                    409,
                    "Datasource has already been updated by someone else. Please reload and try again"
                )
            }
            datasource.name = name
            datasource.type = Self.typeAliases[type] ?? type
            datasource.access = access
            if !newUID.isEmpty { datasource.uid = newUID }
            Self.apply(command, to: &datasource, keepingSecrets: true)
            datasource.version = version + 1
            state.datasources[id] = datasource
            return Self.json(200, Self.written(datasource, "Datasource updated"))
        }
    }

    func delete(uid: String) -> TestHTTPResponse {
        self.state.withLock { state in
            guard let datasource = state.datasources.values.first(where: { $0.uid == uid }) else {
                return Self.message(404, "Data source not found")
            }
            if datasource.readOnly { return Self.message(403, "Cannot delete read-only data source") }
            state.datasources[datasource.id] = nil
            return Self.json(200, .object(["message": "Data source deleted", "id": .int(Int64(datasource.id))]))
        }
    }

    // MARK: Model

    /// The fields of a command that every update writes (`user` and `database` are always written, so an
    /// omitted one is cleared); secrets whose key is missing are kept on update, as `fillWithSecureJSONData` does.
    static func apply(_ command: JSONObject, to datasource: inout StoredDatasource, keepingSecrets: Bool) {
        datasource.url = command["url"]?.stringValue ?? ""
        datasource.user = command["user"]?.stringValue ?? ""
        datasource.database = command["database"]?.stringValue ?? ""
        datasource.basicAuth = command["basicAuth"]?.boolValue ?? false
        datasource.basicAuthUser = command["basicAuthUser"]?.stringValue ?? ""
        datasource.withCredentials = command["withCredentials"]?.boolValue ?? false
        datasource.isDefault = command["isDefault"]?.boolValue ?? false
        if case .object(let jsonData)? = command["jsonData"] {
            datasource.jsonData = jsonData
        } else {
            datasource.jsonData = [:]
        }
        var secrets = keepingSecrets ? datasource.secureJsonData : [:]
        if case .object(let sent)? = command["secureJsonData"] {
            for (key, value) in sent { secrets[key] = value.stringValue ?? "" }
        }
        datasource.secureJsonData = secrets
    }

    /// The DTO of `GET /api/datasources/uid/{uid}`: secrets only as `secureJsonFields` (non-empty ones).
    static func dto(_ datasource: StoredDatasource, listItem: Bool = false) -> JSONValue {
        var object: JSONObject = [
            "id": .int(Int64(datasource.id)), "uid": .string(datasource.uid), "orgId": .int(1),
            "name": .string(datasource.name), "type": .string(datasource.type), "access": .string(datasource.access),
            "url": .string(datasource.url), "user": .string(datasource.user), "database": .string(datasource.database),
            "basicAuth": .bool(datasource.basicAuth), "isDefault": .bool(datasource.isDefault),
            "jsonData": .object(datasource.jsonData), "readOnly": .bool(datasource.readOnly),
            "typeLogoUrl": "public/plugins/grafana-pyroscope-datasource/img/logo.svg",
        ]
        if !listItem {
            object["basicAuthUser"] = .string(datasource.basicAuthUser)
            object["withCredentials"] = .bool(datasource.withCredentials)
            object["version"] = .int(Int64(datasource.version))
            object["secureJsonFields"] = .object(
                datasource.secureJsonData.filter { !$0.value.isEmpty }.mapValues { _ in .bool(true) }
            )
        }
        return .object(object)
    }

    static func written(_ datasource: StoredDatasource, _ message: String) -> JSONValue {
        .object([
            "datasource": Self.dto(datasource), "id": .int(Int64(datasource.id)), "message": .string(message),
            "name": .string(datasource.name),
        ])
    }

    /// Newer Grafana rejects uids outside `[a-zA-Z0-9-_]` or over 40 characters (errutil body).
    static func invalidUID(_ uid: String) -> TestHTTPResponse? {
        let valid =
            uid.count <= 40
            && uid.unicodeScalars.allSatisfy { scalar in
                scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || scalar == "-" || scalar == "_")
            }
        guard !valid else { return nil }
        return Self.json(
            400,
            .object([
                "statusCode": 400, "messageId": "datasource.uidInvalid",
                "message": .string("invalid UID for datasource: \(uid)"),
            ])
        )
    }

    static func invalidURL(_ url: String) -> Bool {
        guard !url.isEmpty else { return false }
        guard let parsed = URL(string: url), parsed.scheme != nil || url.hasPrefix("/") else { return true }
        return false
    }

    static func message(_ status: Int, _ message: String) -> TestHTTPResponse {
        Self.json(status, .object(["message": .string(message)]))
    }

    static func json(_ status: Int, _ value: JSONValue) -> TestHTTPResponse {
        TestHTTPResponse(status: status, body: value.serialized(), contentType: "application/json")
    }
}
