// ConfigurationWatcherTests.swift: the mounted configuration file, swapped as the kubelet swaps it; a broken or
// missing file keeps the last good configuration in force and says why, once.

import Foundation
import HearthAPI
import HearthELF
import HearthTestSupport
import Logging
import MetricsTestKit
import Testing

@testable import HearthAgent

@Suite("Configuration watcher")
struct ConfigurationWatcherTests {
    static func configuration(revision: String, sampleRate: Int = 99) -> String {
        String(
            decoding: AgentConfiguration(
                revision: revision,
                targets: [
                    AgentConfiguration.Target(
                        namespace: "shop",
                        name: "checkout",
                        sampleRate: sampleRate,
                        pyroscope: AgentConfiguration.Backend(url: "http://pyroscope:4040")
                    )
                ]
            ).encoded(),
            as: UTF8.self
        )
    }

    @Test(
        "loads each swap once; a broken file keeps the last good one and fails /readyz; a missing file is reported once"
    )
    func swaps() async throws {
        try await withTemporaryDirectory { directory in
            var volume = try KubeletVolume(directory: directory)
            try volume.write([AgentConfiguration.fileName: Self.configuration(revision: "r1")])
            let state = AgentState()
            let metrics = TestMetrics()
            let watcher = ConfigurationWatcher(
                path: directory + "/" + AgentConfiguration.fileName,
                state: state,
                metrics: AgentMetrics(factory: metrics),
                logger: Logger(label: "test")
            )
            var seen = watcher.check(previous: nil)
            #expect(state.revision == "r1")
            seen = watcher.check(previous: seen)
            #expect(try metrics.expectCounter("hearth_agent_config_reloads_total").totalValue == 1)

            try volume.write([AgentConfiguration.fileName: Self.configuration(revision: "r2", sampleRate: 19)])
            seen = watcher.check(previous: seen)
            #expect(state.revision == "r2")
            #expect(state.configuration?.targets.first?.sampleRate == 19)
            let generation = state.generation

            try volume.write([AgentConfiguration.fileName: #"{"version":1,"revision":"r3","targets":"x"}"#])
            seen = watcher.check(previous: seen)
            seen = watcher.check(previous: seen)
            #expect(state.revision == "r2")
            #expect(state.generation == generation, "a rejected file changes nothing in force")
            let (ready, message) = state.readiness()
            #expect(!ready)
            #expect(message.contains("revision r2 stays in force") && message.contains("is malformed"))
            #expect(try metrics.expectCounter("hearth_agent_config_errors_total").totalValue == 1)

            // /readyz is readable from the node network: it names the kind of problem, never a target's values.
            let leaky = Self.configuration(revision: "r4").replacingOccurrences(
                of: "http://pyroscope:4040",
                with: "ftp://tenant-b.example/secret-path"
            )
            try volume.write([AgentConfiguration.fileName: leaky])
            seen = watcher.check(previous: seen)
            let rejected = state.readiness().message
            #expect(rejected.contains("is invalid") && !rejected.contains("tenant-b") && !rejected.contains("secret"))
            #expect(state.revision == "r2")
            #expect(try metrics.expectCounter("hearth_agent_config_errors_total").totalValue == 2)

            try FileManager.default.removeItem(atPath: directory + "/" + AgentConfiguration.fileName)
            seen = watcher.check(previous: seen)
            seen = watcher.check(previous: seen)
            #expect(try metrics.expectCounter("hearth_agent_config_errors_total").totalValue == 3)
            #expect(state.readiness().message.contains("cannot be read"))
            #expect(state.revision == "r2")
        }
    }

    @Test("the file's identity moves on a kubelet swap and on a rewrite in place, and only then")
    func identity() async throws {
        try await withTemporaryDirectory { directory in
            var volume = try KubeletVolume(directory: directory)
            let path = directory + "/" + AgentConfiguration.fileName
            try volume.write([AgentConfiguration.fileName: Self.configuration(revision: "r1")])
            let first = try #require(FileKey(path: path))
            #expect(FileKey(path: path) == first)

            try volume.write([AgentConfiguration.fileName: Self.configuration(revision: "r2")])
            let swapped = try #require(FileKey(path: path))
            #expect(swapped != first, "the swap points the path at another inode")

            // Same size, same inode: the modification time moves.
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
            let real = target.hasPrefix("/") ? target : directory + "/" + target
            try Data(Self.configuration(revision: "r3").utf8).write(to: URL(fileURLWithPath: real))
            #expect(FileKey(path: path) != swapped)

            try FileManager.default.removeItem(atPath: path)
            #expect(FileKey(path: path) == nil)
        }
    }
}
