// AgentCommandLine.swift: `hearth-agent run` as the operator starts it in the DaemonSet and as the agent reads it:
// the option names, the paths the operator mounts, the environment it sets, and the options a platform team
// chooses through the operator (how user stacks are walked, the kernel memory for unwind tables, the memory
// budget), typed, with their defaults and ranges. The operator renders it (``arguments``); the agent's command
// parses exactly these names into the same type, and a test renders the DaemonSet and parses its args with the
// agent's parser.

/// The agent's command line: what the operator passes to `hearth-agent run`.
public struct AgentCommandLine: Sendable, Hashable {
    /// How user stacks are walked.
    public enum UnwindMethod: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// `.eh_frame` tables compiled in user space and followed in the kernel (the default).
        case ehFrame = "eh-frame"
        /// Frame pointers (`bpf_get_stackid`): breaks at every function built without them.
        case framePointers = "frame-pointers"

        public var description: String { self.rawValue }

        /// Every spelling, for messages: `eh-frame or frame-pointers`.
        public static var spellings: String { Self.allCases.map(\.rawValue).joined(separator: " or ") }
    }

    /// The long options of `hearth-agent run` that the operator sets, as both sides spell them.
    public enum Option: String, Sendable, CaseIterable {
        case config
        case credentials
        case cgroupRoot = "cgroup-root"
        case unwind
        case unwindTableMiB = "unwind-table-mib"
        case memoryBudgetMiB = "memory-budget-mib"

        /// The name without dashes, for ArgumentParser's `.customLong`.
        public var name: String { self.rawValue }
        /// `--name`.
        public var flag: String { "--" + self.rawValue }
    }

    /// Where the operator mounts what the agent reads, in the agent's container.
    public enum Paths {
        /// The ConfigMap with the targets.
        public static let configDirectory = "/etc/hearth/config"
        /// The targets file in it (the ConfigMap key).
        public static let configFile = configDirectory + "/" + AgentConfiguration.fileName
        /// The Secret with the credential files the configuration names.
        public static let credentialsDirectory = "/etc/hearth/credentials"
        /// The host's `/sys/fs/cgroup`, read-only: container cgroup ids are the inode numbers of its folders.
        public static let hostCgroupDirectory = "/host/sys/fs/cgroup"
    }

    /// The environment the operator sets (from the downward API).
    public enum Environment {
        /// The node the pod runs on: names the pods the agent watches and its Lease.
        public static let nodeName = "NODE_NAME"
        /// The agent's own namespace, which holds its Lease.
        public static let podNamespace = "POD_NAMESPACE"
    }

    /// The subcommand.
    public static let subcommand = "run"
    /// The port of /metrics, /healthz and /readyz (the agent's `--listen` default, `:4041`).
    public static let listenPort = 4041
    /// The agent's `--cgroup-root` when not given: the host's own mount.
    public static let defaultCgroupRoot = "/sys/fs/cgroup"
    /// The `--unwind-table-mib` values accepted, and the default.
    public static let unwindTableRange = 1...1024
    public static let defaultUnwindTableMiB = 4

    /// The targets file (`--config`).
    public var config: String
    /// The folder of credential files (`--credentials`).
    public var credentials: String
    /// The host's cgroup file system (`--cgroup-root`).
    public var cgroupRoot: String
    /// `--unwind`.
    public var unwind: UnwindMethod
    /// Kernel memory for `.eh_frame` tables, in MiB (`--unwind-table-mib`).
    public var unwindTableMiB: Int
    /// What the caches of workload data may hold, in MiB (`--memory-budget-mib`).
    public var memoryBudgetMiB: Int

    public init(
        config: String,
        credentials: String,
        cgroupRoot: String = Self.defaultCgroupRoot,
        unwind: UnwindMethod = .ehFrame,
        unwindTableMiB: Int = Self.defaultUnwindTableMiB,
        memoryBudgetMiB: Int = AgentMemoryBudget.defaultMebibytes
    ) {
        self.config = config
        self.credentials = credentials
        self.cgroupRoot = cgroupRoot
        self.unwind = unwind
        self.unwindTableMiB = unwindTableMiB
        self.memoryBudgetMiB = memoryBudgetMiB
    }

    /// The command line of the DaemonSet: the mounted paths and the defaults of every option.
    public static var inCluster: Self {
        Self(config: Paths.configFile, credentials: Paths.credentialsDirectory, cgroupRoot: Paths.hostCgroupDirectory)
    }

    /// The arguments after the executable: the subcommand, the paths, then each option that differs from the
    /// agent's default, so the pod template of a default install never changes.
    public var arguments: [String] {
        var arguments = [
            Self.subcommand, Option.config.flag, self.config, Option.credentials.flag, self.credentials,
        ]
        if self.cgroupRoot != Self.defaultCgroupRoot { arguments += [Option.cgroupRoot.flag, self.cgroupRoot] }
        if self.unwind != .ehFrame { arguments += [Option.unwind.flag, self.unwind.rawValue] }
        if self.unwindTableMiB != Self.defaultUnwindTableMiB {
            arguments += [Option.unwindTableMiB.flag, "\(self.unwindTableMiB)"]
        }
        if self.memoryBudgetMiB != AgentMemoryBudget.defaultMebibytes {
            arguments += [Option.memoryBudgetMiB.flag, "\(self.memoryBudgetMiB)"]
        }
        return arguments
    }

    /// Checks the ranges of the numeric options; `prefix` is what the flag's name carries on the side that sets it
    /// (the operator's `--agent-unwind-table-mib` passes `agent-`).
    public func validate(flagPrefix prefix: String = "") throws(OutOfRangeError) {
        try Self.check(unwindTableMiB: self.unwindTableMiB, flagPrefix: prefix)
        try Self.check(memoryBudgetMiB: self.memoryBudgetMiB, flagPrefix: prefix)
    }

    /// Throws when `--unwind-table-mib` is outside ``unwindTableRange``.
    public static func check(unwindTableMiB value: Int, flagPrefix prefix: String = "") throws(OutOfRangeError) {
        let flag = "--" + prefix + Option.unwindTableMiB.name
        try OutOfRangeError.check(value, in: Self.unwindTableRange, default: Self.defaultUnwindTableMiB, flag: flag)
    }

    /// Throws when `--memory-budget-mib` is outside ``AgentMemoryBudget/range``.
    public static func check(memoryBudgetMiB value: Int, flagPrefix prefix: String = "") throws(OutOfRangeError) {
        let flag = "--" + prefix + Option.memoryBudgetMiB.name
        try OutOfRangeError.check(
            value,
            in: AgentMemoryBudget.range,
            default: AgentMemoryBudget.defaultMebibytes,
            flag: flag
        )
    }
}

/// A numeric flag outside the values accepted.
public struct OutOfRangeError: Error, Sendable, Hashable, CustomStringConvertible {
    public var flag: String
    public var value: Int
    public var range: ClosedRange<Int>
    public var defaultValue: Int

    public init(flag: String, value: Int, range: ClosedRange<Int>, defaultValue: Int) {
        self.flag = flag
        self.value = value
        self.range = range
        self.defaultValue = defaultValue
    }

    /// Throws when `value` is outside `range`.
    public static func check(
        _ value: Int,
        in range: ClosedRange<Int>,
        default defaultValue: Int,
        flag: String
    ) throws(Self) {
        guard range.contains(value) else {
            throw Self(flag: flag, value: value, range: range, defaultValue: defaultValue)
        }
    }

    public var description: String {
        "\(self.flag) \(self.value) is out of range: use \(self.range.lowerBound) to \(self.range.upperBound) "
            + "(\(self.defaultValue) is the default)"
    }
}
