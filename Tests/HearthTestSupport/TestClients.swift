// TestClients.swift: the Kubernetes client settings and the logger every test suite uses.

import Foundation
import KubeClient
import Logging

/// A client configuration for a test server: no client-side rate limit (tests measure the code, not a QPS cap),
/// a timeout on every call.
public func testClientConfiguration(
    _ url: String,
    userAgent: String = "kube-tests/1.0",
    timeout: Duration = .seconds(10)
) -> ClientConfiguration {
    var configuration = ClientConfiguration(server: url)
    configuration.qps = 0
    configuration.timeout = timeout
    configuration.userAgent = userAgent
    return configuration
}

/// A logger that says only errors, unless `HEARTH_TEST_LOG` names another level (e.g. `debug`).
public func testLogger(_ label: String = "hearth-tests") -> Logger {
    var logger = Logger(label: label)
    logger.logLevel =
        ProcessInfo.processInfo.environment["HEARTH_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .error
    return logger
}
