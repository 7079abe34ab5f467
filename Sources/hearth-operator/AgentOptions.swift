// AgentOptions.swift: the flags `run` and `render` share, how the agent is deployed, declared for ArgumentParser
// and checked by HearthOperator's AgentDeploymentFlags.

import ArgumentParser
import Foundation
import HearthAPI
import HearthOperator

/// Flags shared by `run` and `render`: how the agent is deployed (checked by ``AgentDeploymentFlags``).
struct AgentOptions: ParsableArguments {
    private static let defaults = AgentDeploymentFlags()

    @Option(help: "Namespace of the agent DaemonSet (default: POD_NAMESPACE, else hearth-system).")
    var namespace: String?

    @Option(help: "The agent image.")
    var agentImage: String = Self.defaults.agentImage

    @Option(help: "How the agent container is privileged.")
    var securityMode: OperatorConfiguration.SecurityMode = Self.defaults.securityMode

    @Option(help: "A toleration KEY[=VALUE][:EFFECT], or 'all' to tolerate every taint (repeatable).")
    var toleration: [String] = []

    @Option(help: "A node selector KEY=VALUE (repeatable).")
    var nodeSelector: [String] = []

    @Option(help: "Agent CPU request.") var cpuRequest: String = Self.defaults.cpuRequest
    @Option(help: "Agent memory request.") var memoryRequest: String = Self.defaults.memoryRequest
    @Option(help: "Agent CPU limit (empty for none).") var cpuLimit: String = Self.defaults.cpuLimit
    @Option(help: "Agent memory limit.") var memoryLimit: String = Self.defaults.memoryLimit
    @Option(help: "Agent priorityClassName.") var priorityClassName: String?

    @Option(help: "How the agent walks user stacks: eh-frame (from .eh_frame tables, the default) or frame-pointers.")
    var agentUnwind: AgentCommandLine.UnwindMethod = Self.defaults.agentUnwind

    @Option(help: "Kernel memory, in MiB, for the agent's .eh_frame tables (1 to 1024).")
    var agentUnwindTableMib: Int = Self.defaults.agentUnwindTableMiB

    @Option(
        help: "What the agent's caches of workload data may hold, in MiB (8 to 4096; its --memory-budget-mib)."
    )
    var agentMemoryBudgetMib: Int = Self.defaults.agentMemoryBudgetMiB

    @Option(help: "Default Pyroscope URL for targets without spec.pyroscope.")
    var defaultPyroscopeURL: String?

    @Option(help: "Default Pyroscope Service NAMESPACE/NAME[:PORT] for targets without spec.pyroscope.")
    var defaultPyroscopeService: String?

    @Option(help: "Default Pyroscope tenant (X-Scope-OrgID).")
    var defaultPyroscopeTenant: String?

    var flags: AgentDeploymentFlags {
        var flags = AgentDeploymentFlags()
        flags.namespace = self.namespace
        flags.agentImage = self.agentImage
        flags.securityMode = self.securityMode
        flags.tolerations = self.toleration
        flags.nodeSelectors = self.nodeSelector
        flags.cpuRequest = self.cpuRequest
        flags.memoryRequest = self.memoryRequest
        flags.cpuLimit = self.cpuLimit
        flags.memoryLimit = self.memoryLimit
        flags.priorityClassName = self.priorityClassName
        flags.agentUnwind = self.agentUnwind
        flags.agentUnwindTableMiB = self.agentUnwindTableMib
        flags.agentMemoryBudgetMiB = self.agentMemoryBudgetMib
        flags.defaultPyroscopeURL = self.defaultPyroscopeURL
        flags.defaultPyroscopeService = self.defaultPyroscopeService
        flags.defaultPyroscopeTenant = self.defaultPyroscopeTenant
        return flags
    }

    func operatorConfiguration() throws -> OperatorConfiguration {
        try checked { try self.flags.configuration(environment: ProcessInfo.processInfo.environment) }
    }
}

/// `body`, with a flag error turned into ArgumentParser's usage error.
func checked<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw ValidationError("\(error)")
    }
}
