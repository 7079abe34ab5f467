// AgentCommandLineTests.swift: the operator→agent contract end to end: the operator renders the DaemonSet, and the
// agent's own command parser reads the container's args back into the same `AgentCommandLine`; the mounts, the
// environment and the port the args rely on are in the pod template. Also the agent's `run` flags as tables.

import ArgumentParser
import HearthAPI
import HearthOperator
import KubeModel
import Testing

@testable import hearth_agent

@Suite("The agent's command line, rendered by the operator and parsed by the agent")
struct AgentCommandLineTests {
    /// Parses `arguments` with the agent's root command; it must select `run`.
    static func parseRun(_ arguments: [String]) throws -> RunCommand {
        let command = try HearthAgentCommand.parseAsRoot(arguments)
        return try #require(command as? RunCommand, "parsed as \(type(of: command))")
    }

    static let choices: [AgentCommandLine] = {
        var choices: [AgentCommandLine] = []
        for unwind in AgentCommandLine.UnwindMethod.allCases {
            for tables in [1, AgentCommandLine.defaultUnwindTableMiB, 16, 1024] {
                for budget in [8, AgentMemoryBudget.defaultMebibytes, 96, 4096] {
                    var line = AgentCommandLine.inCluster
                    line.unwind = unwind
                    line.unwindTableMiB = tables
                    line.memoryBudgetMiB = budget
                    choices.append(line)
                }
            }
        }
        return choices
    }()

    @Test("the DaemonSet's args parse with the agent's parser into the operator's command line", arguments: choices)
    func renderedArgsParse(_ expected: AgentCommandLine) throws {
        var configuration = OperatorConfiguration()
        configuration.agentCommandLine = expected
        let pod = try #require(AgentRenderer(configuration: configuration).render([]).daemonSet.spec.template.spec)
        let container = try #require(pod.containers?.first)
        let args = try #require(container.args)
        let run = try Self.parseRun(args)
        #expect(run.commandLine == expected)
        #expect(run.unwinding.nativeUnwinding == nil ? expected.unwind == .framePointers : expected.unwind == .ehFrame)
    }

    @Test("a default install renders no option the agent would default anyway")
    func defaultsStayOut() throws {
        let args = AgentCommandLine.inCluster.arguments
        #expect(
            args == [
                "run", "--config", "/etc/hearth/config/targets.json", "--credentials", "/etc/hearth/credentials",
                "--cgroup-root", "/host/sys/fs/cgroup",
            ]
        )
        let parsed = try Self.parseRun(args)
        #expect(parsed.unwinding.unwind == .ehFrame)
        #expect(parsed.unwinding.unwindTableMib == AgentCommandLine.defaultUnwindTableMiB)
        #expect(parsed.memory.memoryBudgetMib == AgentMemoryBudget.defaultMebibytes)
    }

    @Test("the pod template mounts the paths the args name, sets the environment and serves the agent's port")
    func podMatchesArgs() throws {
        let pod = try #require(
            AgentRenderer(configuration: OperatorConfiguration()).render([]).daemonSet.spec.template.spec
        )
        let container = try #require(pod.containers?.first)
        let run = try Self.parseRun(try #require(container.args))
        let mounts = (container.volumeMounts ?? []).compactMap(\.mountPath)
        func mounted(_ path: String) -> Bool { mounts.contains { path == $0 || path.hasPrefix($0 + "/") } }
        #expect(mounted(run.config) && mounted(run.credentials) && mounted(run.cgroupRoot), "mounts: \(mounts)")
        #expect(
            run.config
                == AgentCommandLine.Paths.configDirectory + "/" + AgentRenderer.configKey
        )
        let environment = (container.env ?? []).compactMap(\.name)
        #expect(environment == [AgentCommandLine.Environment.nodeName, AgentCommandLine.Environment.podNamespace])
        #expect(container.ports?.first?.containerPort == AgentCommandLine.listenPort)
        #expect(run.listen == ":\(AgentCommandLine.listenPort)")
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        var arguments: [String]
        var message: String
        var testDescription: String { self.arguments.joined(separator: " ") }
    }

    static let refusals: [Refusal] = [
        Refusal(arguments: ["--unwind", "dwarf"], message: "dwarf"),
        Refusal(
            arguments: ["--unwind-table-mib", "0"],
            message: "--unwind-table-mib 0 is out of range: use 1 to 1024 (4 is the default)"
        ),
        Refusal(
            arguments: ["--unwind-table-mib", "1025"],
            message: "--unwind-table-mib 1025 is out of range: use 1 to 1024 (4 is the default)"
        ),
        Refusal(
            arguments: ["--memory-budget-mib", "7"],
            message: "--memory-budget-mib 7 is out of range: use 8 to 4096 (32 is the default)"
        ),
        Refusal(arguments: ["--upload-interval", "500ms"], message: "--upload-interval must be between 1s and 1h"),
        Refusal(arguments: ["--upload-interval", "2h"], message: "--upload-interval must be between 1s and 1h"),
        Refusal(arguments: ["--upload-interval", "15"], message: "15"),
        Refusal(arguments: ["--spool-bytes", "65535"], message: "--spool-bytes must be at least 65536, got 65535"),
        Refusal(arguments: ["--listen", "nowhere"], message: "--listen nowhere: expected HOST:PORT or :PORT"),
    ]

    @Test("the agent refuses values out of the contract's ranges, naming the flag", arguments: refusals)
    func refuses(_ refusal: Refusal) {
        let arguments = AgentCommandLine.inCluster.arguments + refusal.arguments
        do {
            _ = try HearthAgentCommand.parseAsRoot(arguments)
            Issue.record("parsed \(arguments)")
        } catch {
            let message = HearthAgentCommand.message(for: error)
            #expect(message.contains(refusal.message), "message: \(message)")
        }
    }

    @Test("the operator's agent flags and the agent's own refuse the same values with the same words")
    func sameRangesBothSides() throws {
        for (tables, budget) in [(0, 32), (1025, 32), (4, 7), (4, 4097)] {
            var flags = AgentDeploymentFlags()
            flags.agentUnwindTableMiB = tables
            flags.agentMemoryBudgetMiB = budget
            var operatorMessage = ""
            do { _ = try flags.configuration() } catch { operatorMessage = "\(error)" }
            var line = AgentCommandLine.inCluster
            line.unwindTableMiB = tables
            line.memoryBudgetMiB = budget
            var agentMessage = ""
            do { _ = try HearthAgentCommand.parseAsRoot(line.arguments) } catch {
                agentMessage = HearthAgentCommand.message(for: error)
            }
            #expect(operatorMessage.hasPrefix("--agent-"), "\(operatorMessage)")
            #expect(agentMessage.contains(String(operatorMessage.dropFirst("--agent-".count))), "\(agentMessage)")
        }
    }
}

@Suite("hearth-agent run: the duration syntax")
struct DurationArgumentTests {
    static let valid: [(String, Duration)] = [
        ("15s", .seconds(15)), ("1m", .seconds(60)), ("500ms", .milliseconds(500)), ("2m30s", .seconds(150)),
        ("1h", .seconds(3600)), ("1.5s", .milliseconds(1500)), ("0s", .zero), ("1h1m1s1ms", .milliseconds(3_661_001)),
    ]

    @Test("durations", arguments: valid)
    func parses(_ text: String, _ expected: Duration) throws {
        let parsed = try #require(DurationArgument(argument: text))
        #expect(parsed.duration == expected)
    }

    @Test("not durations", arguments: ["", "15", "s", "ms", "1x", "1.2.3s", "-1s", "1 s", "s15", "1d"])
    func refuses(_ text: String) {
        #expect(DurationArgument(argument: text) == nil)
    }
}
