// ConfigurationWatcher.swift: applies the mounted configuration file live. The kubelet updates a mounted
// ConfigMap by writing a new timestamped folder and swapping the `..data` symlink, so the path always names a
// complete file; checking it every second sees every swap (inotify would have to watch the folder and the
// symlink). The file is read only when its identity (device, inode, size and modification time, through the
// symlink: the symbolizer's `FileKey`) moved, so an idle agent costs one stat a second. A broken file leaves the
// last good configuration in force and is reported on /readyz, in the log and in hearth_agent_config_errors_total.

import CoreMetrics
import Foundation
import HearthAPI
import HearthELF
import Logging
import ServiceLifecycle

/// Polls the configuration file and loads every new version into ``AgentState``.
public struct ConfigurationWatcher: Service {
    let path: String
    let state: AgentState
    let metrics: AgentMetrics
    let logger: Logger
    let pollInterval: Duration
    /// The file's bytes as last read (by ``check(previous:)`` before the service started).
    let initial: Data?

    public init(
        path: String,
        state: AgentState,
        metrics: AgentMetrics,
        logger: Logger,
        pollInterval: Duration = .seconds(1),
        initial: Data? = nil
    ) {
        self.path = path
        self.state = state
        self.metrics = metrics
        self.logger = logger
        self.pollInterval = pollInterval
        self.initial = initial
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var last = self.initial
            var identity: FileKey?
            while !Task.isCancelled {
                // Checked at the first turn (the file may have changed since the command read it), and whenever
                // the file is missing (so the problem is reported) or its identity moved.
                let now = FileKey(path: self.path)
                if now == nil || now != identity {
                    last = self.check(previous: last)
                    identity = now
                }
                try? await Task.sleep(for: self.pollInterval)
            }
        }
    }

    /// Reads the file once; returns the bytes seen, so an unchanged file is not decoded again. A missing or
    /// unreadable file reads as empty bytes, so it too is reported once, not every second.
    @discardableResult
    public func check(previous: Data?) -> Data? {
        guard let data = FileManager.default.contents(atPath: self.path) else {
            if previous != Data() {
                let problem = "configuration file \(self.path) cannot be read (is the ConfigMap mounted?)"
                self.report(problem, publicly: problem)
            }
            return Data()
        }
        guard data != previous else { return previous }
        do {
            let configuration = try AgentConfiguration.decode(data)
            let before = self.state.revision
            self.state.load(configuration)
            self.metrics.configReloads.increment()
            self.logger.info(
                "configuration loaded",
                metadata: [
                    "config.revision": "\(configuration.revision)", "config.previousRevision": "\(before ?? "none")",
                    "config.targets": "\(configuration.targets.count)",
                ]
            )
        } catch {
            // The message can quote a target's values (its Pyroscope URL): the log has it, /readyz only the kind.
            self.report(
                "\(self.path): \(error)",
                publicly: "configuration file \(self.path) is \(error.code.rawValue) (the agent's log says where)"
            )
        }
        return data
    }

    /// Logs `problem` and counts it; `/readyz`, which anyone on the node network can read, gets `summary` only.
    private func report(_ problem: String, publicly summary: String) {
        self.state.reject(summary)
        self.metrics.configErrors.increment()
        self.logger.error(
            "configuration not applied; the last good configuration stays in force",
            metadata: ["config.problem": "\(problem)", "config.revision": "\(self.state.revision ?? "none")"]
        )
    }
}
