// Polling.swift: waiting for a condition with a deadline (never sleep-and-hope), and scratch directories.

import Foundation

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
public func eventually(
    timeout: Duration = .seconds(30),
    every interval: Duration = .milliseconds(25),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// A temporary directory, removed with its contents at the end of `body`.
public func withTemporaryDirectory<Result>(_ body: (String) async throws -> Result) async rethrows -> Result {
    let path = NSTemporaryDirectory() + "hearth-tests-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}
