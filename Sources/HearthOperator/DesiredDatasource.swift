// DesiredDatasource.swift: the Grafana datasource a target asks for, and how a datasource read from Grafana
// differs from it in the fields Hearth owns. Pure (table-tested); the synchronizer does the I/O.
//
// Owned: name, type, access, url, basic auth user, the custom headers Hearth sets (X-Scope-OrgID for the tenant,
// Authorization for a bearer token), the marker that says Hearth manages the datasource, and a digest of the
// secrets it sent (Grafana never returns secrets, so their drift shows only against a stored digest). Everything
// else (isDefault, other jsonData keys, timeouts set in the UI) is kept as Grafana has it.

import Foundation
import GrafanaClient
import HearthAPI
import KubeModel

/// The datasource one target needs.
public struct DesiredDatasource: Sendable, Hashable {
    public static let type = "grafana-pyroscope-datasource"
    /// Grafana's old id of the same plugin, read back as ``type``.
    static let typeAliases: Set<String> = ["phlare", type]
    /// jsonData key of the marker: which operator manages the datasource (it deletes only those).
    public static let managedByKey = "hearthManagedBy"
    /// jsonData key of the digest of the secrets Hearth sent.
    public static let secretsDigestKey = "hearthSecureJsonDigest"
    /// Custom header slots Hearth uses; stale ones are cleared.
    static let headerSlots = 2

    public var uid: String
    public var name: String
    public var url: String
    public var tenantID: String?
    public var basicAuthUser: String?
    var basicAuthPassword: String?
    var bearerToken: String?

    /// A derived uid: the same backend (URL and tenant) gives the same uid, so targets sharing a backend share
    /// one datasource.
    public static func derivedUID(url: String, tenantID: String?) -> String {
        "hearth-" + SHA256.hex(url + "\n" + (tenantID ?? "")).prefix(24)
    }

    /// A derived name, unique per backend: `Pyroscope (host:port)` or `Pyroscope (host:port, tenant t)`.
    public static func derivedName(url: String, tenantID: String?) -> String {
        let host =
            URL(string: url).map { parsed in
                (parsed.host ?? url) + (parsed.port.map { ":\($0)" } ?? "")
            } ?? url
        let name = "Pyroscope (\(host)" + (tenantID.map { ", tenant \($0)" } ?? "") + ")"
        return String(name.prefix(190))
    }

    /// The custom headers (name → value, the value kept secret by Grafana) in slot order.
    var headers: [(name: String, value: String)] {
        var headers: [(String, String)] = []
        if let tenantID { headers.append(("X-Scope-OrgID", tenantID)) }
        if let bearerToken { headers.append(("Authorization", "Bearer " + bearerToken)) }
        return headers
    }

    /// Every secret key Hearth owns, with "" for the unused ones (an omitted key would keep an old secret).
    var secureJsonData: [String: String] {
        var secrets: [String: String] = ["basicAuthPassword": self.basicAuthPassword ?? ""]
        for slot in 1...Self.headerSlots { secrets["httpHeaderValue\(slot)"] = "" }
        for (index, header) in self.headers.enumerated() { secrets["httpHeaderValue\(index + 1)"] = header.value }
        return secrets
    }

    /// The owned jsonData keys and their values (nil: must be absent).
    func ownedJSONData(marker: String, secretsDigest: String) -> [String: String?] {
        var owned: [String: String?] = [Self.managedByKey: marker, Self.secretsDigestKey: secretsDigest]
        for slot in 1...Self.headerSlots { owned["httpHeaderName\(slot)"] = .some(nil) }
        for (index, header) in self.headers.enumerated() { owned["httpHeaderName\(index + 1)"] = header.name }
        return owned
    }

    /// Identity of everything Hearth sends, secrets included (kept in memory only).
    var fingerprint: String {
        var text = [self.uid, self.name, self.url, self.basicAuthUser ?? ""].joined(separator: "\n")
        for (key, value) in self.secureJsonData.sorted(by: { $0.key < $1.key }) { text += "\n\(key)=\(value)" }
        return SHA256.hex(text)
    }

    /// The digest of the secrets stored in Grafana's jsonData: PBKDF2 salted with the uid, so the stored value
    /// neither repeats across datasources nor is cheap to guess a weak password from for Grafana's viewers.
    func secretsDigest() -> String {
        let text = self.secureJsonData.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }
            .joined(separator: "\n")
        let digest = SHA256.pbkdf2(
            password: Array(text.utf8),
            salt: Array("hearth-datasource:\(self.uid)".utf8),
            iterations: 2048
        )
        return "pbkdf2-sha256:2048:" + SHA256.hex(digest: digest)
    }

    /// The owned fields that differ in `live`, by name (empty when none).
    func differences(from live: Datasource, marker: String, secretsDigest: String) -> [String] {
        var differences: [String] = []
        if live.name != self.name { differences.append("name") }
        if !Self.typeAliases.contains(live.type) { differences.append("type") }
        if live.access != "proxy" { differences.append("access") }
        if live.url != self.url { differences.append("url") }
        if live.basicAuth != (self.basicAuthUser != nil) { differences.append("basicAuth") }
        if live.basicAuthUser != (self.basicAuthUser ?? "") { differences.append("basicAuthUser") }
        for (key, value) in self.ownedJSONData(marker: marker, secretsDigest: secretsDigest).sorted(by: {
            $0.key < $1.key
        }) where live.jsonData[key]?.stringValue != value {
            differences.append("jsonData.\(key)")
        }
        // A secret cleared in the UI shows as a missing secureJsonFields entry.
        for (key, value) in self.secureJsonData.sorted(by: { $0.key < $1.key })
        where !value.isEmpty && live.secureJsonFields[key] != true {
            differences.append("secureJsonData.\(key)")
        }
        return differences
    }

    /// The create or update body: owned fields as desired, the rest as `live` has them.
    func command(preserving live: Datasource?, marker: String, secretsDigest: String) -> DatasourceCommand {
        var command = DatasourceCommand(uid: self.uid, name: self.name, type: Self.type, url: self.url)
        if let live {
            command.user = live.user
            command.database = live.database
            command.withCredentials = live.withCredentials
            command.isDefault = live.isDefault
            command.jsonData = live.jsonData
            command.version = live.version
        }
        command.basicAuth = self.basicAuthUser != nil
        command.basicAuthUser = self.basicAuthUser ?? ""
        for (key, value) in self.ownedJSONData(marker: marker, secretsDigest: secretsDigest) {
            command.jsonData[key] = value.map(JSONValue.string)
        }
        command.secureJsonData = self.secureJsonData
        return command
    }
}

/// What a target asks of Grafana, as far as it is known.
enum DatasourceRequest: Sendable {
    case known(DesiredDatasource)
    /// The target asks for a datasource whose URL or credentials cannot be resolved yet.
    case unresolved(TargetProblem)
}

extension DesiredDatasource {
    /// The datasource `target` asks for, or why it cannot be known yet. Nil when the target asks for none.
    static func of(_ target: ProfilingTarget, resolved: ResolvedTarget) -> DatasourceRequest? {
        guard let request = target.spec.grafana else { return nil }
        if let problem = resolved.credentialProblem { return .unresolved(problem) }
        guard let url = request.url ?? resolved.pyroscopeURL else {
            return .unresolved(
                resolved.backendProblem
                    ?? TargetProblem(reason: ConditionReason.noBackend, message: "no Pyroscope URL for the datasource")
            )
        }
        let tenantID = resolved.tenantID.flatMap { $0.isEmpty ? nil : $0 }
        var desired = DesiredDatasource(
            uid: request.datasource?.uid ?? Self.derivedUID(url: url, tenantID: tenantID),
            name: request.datasource?.name ?? Self.derivedName(url: url, tenantID: tenantID),
            url: url,
            tenantID: tenantID
        )
        let key = resolved.key
        func secret(_ file: String) -> String? {
            resolved.credentials[file].flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
        }
        if let basic = target.spec.pyroscope?.basicAuth {
            desired.basicAuthUser = basic.username ?? ""
            desired.basicAuthPassword = secret(CredentialFile.password(key))
        }
        if target.spec.pyroscope?.bearerTokenSecretRef != nil {
            desired.bearerToken = secret(CredentialFile.token(key))
        }
        return .known(desired)
    }
}
