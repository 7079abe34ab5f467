// Datasource.swift: a Grafana datasource as `GET /api/datasources/uid/{uid}` returns it, and the body of
// `POST /api/datasources` and `PUT /api/datasources/uid/{uid}` (Grafana's AddDataSourceCommand and
// UpdateDataSourceCommand).

import HearthJSON

/// A datasource as Grafana reports it. Secrets never come back: `secureJsonFields` only says which are set.
public struct Datasource: Sendable, Hashable, Decodable {
    public var id: Int?
    public var uid: String
    public var name: String
    /// The plugin id, aliases resolved (a datasource created as `phlare` reads back as
    /// `grafana-pyroscope-datasource`).
    public var type: String
    public var access: String
    public var url: String
    public var user: String
    public var database: String
    public var basicAuth: Bool
    public var basicAuthUser: String
    public var withCredentials: Bool
    public var isDefault: Bool
    public var jsonData: JSONObject
    public var secureJsonFields: [String: Bool]
    /// The optimistic-lock version (absent from list items).
    public var version: Int?
    /// Provisioned from a file: the API may neither update nor delete it.
    public var readOnly: Bool

    enum CodingKeys: String, CodingKey {
        case id, uid, name, type, access, url, user, database, basicAuth, basicAuthUser, withCredentials, isDefault
        case jsonData, secureJsonFields, version, readOnly
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try container.decodeIfPresent(Int.self, forKey: .id)
        self.uid = try container.decodeIfPresent(String.self, forKey: .uid) ?? ""
        self.name = try container.decodeIfPresent(String.self, forKey: .name) ?? ""
        self.type = try container.decodeIfPresent(String.self, forKey: .type) ?? ""
        self.access = try container.decodeIfPresent(String.self, forKey: .access) ?? ""
        self.url = try container.decodeIfPresent(String.self, forKey: .url) ?? ""
        self.user = try container.decodeIfPresent(String.self, forKey: .user) ?? ""
        self.database = try container.decodeIfPresent(String.self, forKey: .database) ?? ""
        self.basicAuth = try container.decodeIfPresent(Bool.self, forKey: .basicAuth) ?? false
        self.basicAuthUser = try container.decodeIfPresent(String.self, forKey: .basicAuthUser) ?? ""
        self.withCredentials = try container.decodeIfPresent(Bool.self, forKey: .withCredentials) ?? false
        self.isDefault = try container.decodeIfPresent(Bool.self, forKey: .isDefault) ?? false
        self.jsonData = try container.decodeIfPresent(JSONObject.self, forKey: .jsonData) ?? [:]
        self.secureJsonFields = try container.decodeIfPresent([String: Bool].self, forKey: .secureJsonFields) ?? [:]
        self.version = try container.decodeIfPresent(Int.self, forKey: .version)
        self.readOnly = try container.decodeIfPresent(Bool.self, forKey: .readOnly) ?? false
    }
}

/// What to create or update. On update, Grafana keeps every secret whose key is missing from `secureJsonData`
/// and writes `user` and `database` always (omitting them clears them).
public struct DatasourceCommand: Sendable, Hashable, Encodable {
    public var uid: String
    public var name: String
    public var type: String
    public var access: String = "proxy"
    public var url: String
    public var user: String = ""
    public var database: String = ""
    public var basicAuth: Bool = false
    public var basicAuthUser: String = ""
    public var withCredentials: Bool = false
    public var isDefault: Bool = false
    public var jsonData: JSONObject = [:]
    public var secureJsonData: [String: String] = [:]
    /// The version read, for the optimistic lock on update (nil or 0 updates unconditionally).
    public var version: Int?

    public init(uid: String, name: String, type: String, url: String) {
        self.uid = uid
        self.name = name
        self.type = type
        self.url = url
    }
}
