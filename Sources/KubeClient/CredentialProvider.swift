// CredentialProvider.swift: bearer tokens from static values, rotating token files and exec plugins.

import Foundation
import KubeModel
import Logging
import NIOPosix
import Synchronization

/// Produces the Authorization header, caching file tokens until the file changes and exec tokens until they expire.
final class CredentialProvider: Sendable {
    struct Cache {
        var token: String?
        var fileDate: Date?
        var expiry: Date?
    }

    let configuration: ClientConfiguration
    let logger: Logger
    let cache = Mutex(Cache())

    init(configuration: ClientConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Forgets cached tokens (after a 401).
    func invalidate() { self.cache.withLock { $0 = Cache() } }

    func authorizationHeader() async throws -> String? {
        switch self.configuration.credentials {
        case .none, .clientCertificate: return nil
        case .token(let token): return "Bearer \(token)"
        case .basic(let username, let password):
            return "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
        case .tokenFile(let path):
            let modified = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate]) as? Date
            if let cached = self.cache.withLock({ $0.fileDate == modified && modified != nil ? $0.token : nil }) {
                return "Bearer \(cached)"
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KubeError(code: .missingCredentials, message: "\(path): cannot read token file")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            self.cache.withLock {
                $0.token = token
                $0.fileDate = modified
            }
            return "Bearer \(token)"
        case .exec(let exec):
            let now = Date()
            if let cached = self.cache.withLock({ cache -> String? in
                guard let token = cache.token else { return nil }
                if let expiry = cache.expiry, expiry.timeIntervalSince(now) < 10 { return nil }
                return token
            }) {
                return "Bearer \(cached)"
            }
            let (token, expiry) = try await Self.runExec(exec, source: self.configuration.source)
            self.cache.withLock {
                $0.token = token
                $0.expiry = expiry
            }
            return "Bearer \(token)"
        }
    }

    /// Runs the plugin on the blocking thread pool and parses its ExecCredential.
    static func runExec(_ exec: ClientConfiguration.ExecConfig, source: String) async throws -> (String, Date?) {
        let output = try await NIOThreadPool.singleton.runIfActive { () throws -> (Int32, Data, Data) in
            let process = Process()
            if exec.command.hasPrefix("/") {
                process.executableURL = URL(fileURLWithPath: exec.command)
                process.arguments = exec.args
            } else {
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = [exec.command] + exec.args
            }
            var environment = ProcessInfo.processInfo.environment
            for (name, value) in exec.env { environment[name] = value }
            let info: JSONValue = [
                "apiVersion": .string(exec.apiVersion), "kind": "ExecCredential",
                "spec": ["interactive": false],
            ]
            environment["KUBERNETES_EXEC_INFO"] = KubeJSON.string(info)
            process.environment = environment
            let stdout = Pipe()
            let stderr = Pipe()
            process.standardOutput = stdout
            process.standardError = stderr
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let out = stdout.fileHandleForReading.readDataToEndOfFile()
            let err = stderr.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, out, err)
        }
        let (status, out, err) = output
        guard status == 0 else {
            let hint = exec.installHint.map { "; \($0)" } ?? ""
            throw KubeError(
                code: .missingCredentials,
                message: "\(source): exec plugin \"\(exec.command)\" exited with \(status): "
                    + "\(String(decoding: err.prefix(500), as: UTF8.self))\(hint)"
            )
        }
        guard let credential = try? KubeJSON.decode(JSONValue.self, from: out),
            let token = credential[path: ["status", "token"]]?.stringValue
        else {
            throw KubeError(
                code: .missingCredentials,
                message: "\(source): exec plugin \"\(exec.command)\" did not print an ExecCredential with status.token"
            )
        }
        let expiry = credential[path: ["status", "expirationTimestamp"]]?.stringValue.flatMap(KubeTime.parse)
        return (token, expiry)
    }
}
