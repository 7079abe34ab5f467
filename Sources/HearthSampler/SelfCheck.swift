// SelfCheck.swift: the check, before anything is loaded, that this process can sample with eBPF (kernel version,
// bpf() syscall, CAP_BPF and CAP_PERFMON or CAP_SYS_ADMIN, kptr_restrict), as findings that say how to fix each.

internal import CLibbpf
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Checks, before anything is loaded, that this process can sample with eBPF, and names what is missing.
///
/// libbpf reports a failed load as an errno; a user needs to hear "run as root or grant CAP_BPF" instead.
public struct SelfCheck: Sendable {
    /// One finding: what is wrong and how to fix it.
    public struct Finding: Sendable, Hashable, CustomStringConvertible {
        public enum Severity: Sendable, Hashable { case fatal, warning }
        public var severity: Severity
        /// A short name of the requirement, e.g. "CAP_BPF".
        public var requirement: String
        public var problem: String
        public var fix: String

        public var description: String {
            "\(self.severity == .fatal ? "error" : "warning"): \(self.requirement): \(self.problem)\n  fix: \(self.fix)"
        }
    }

    /// The kernel and process facts the check looks at; read from the system by default.
    public struct Environment: Sendable, Hashable {
        public var effectiveCapabilities: UInt64
        public var kernelRelease: String
        public var perfEventParanoid: Int?
        public var kptrRestrict: Int?
        /// Whether the kernel has the bpf() system call (false: built without CONFIG_BPF_SYSCALL).
        public var hasBPFSyscall: Bool
        /// What creating a one-entry BPF array map answered: 0, or the errno. Capabilities are not the whole story:
        /// a seccomp profile (a container runtime's default) or an LSM can refuse bpf() to a process holding them.
        public var bpfMapProbeErrno: Int32
        /// What opening a cpu-clock perf event on CPU 0 for every process answered: 0, or the errno.
        public var perfEventProbeErrno: Int32

        public init(
            effectiveCapabilities: UInt64,
            kernelRelease: String,
            perfEventParanoid: Int?,
            kptrRestrict: Int?,
            hasBPFSyscall: Bool,
            bpfMapProbeErrno: Int32 = 0,
            perfEventProbeErrno: Int32 = 0
        ) {
            self.effectiveCapabilities = effectiveCapabilities
            self.kernelRelease = kernelRelease
            self.perfEventParanoid = perfEventParanoid
            self.kptrRestrict = kptrRestrict
            self.hasBPFSyscall = hasBPFSyscall
            self.bpfMapProbeErrno = bpfMapProbeErrno
            self.perfEventProbeErrno = perfEventProbeErrno
        }

        /// The facts of this process and kernel.
        public static func current() -> Environment {
            Environment(
                effectiveCapabilities: Self.readEffectiveCapabilities() ?? 0,
                kernelRelease: Self.readKernelRelease(),
                perfEventParanoid: Self.readInteger("/proc/sys/kernel/perf_event_paranoid"),
                kptrRestrict: Self.readInteger("/proc/sys/kernel/kptr_restrict"),
                hasBPFSyscall: Self.probeBPFSyscall(),
                bpfMapProbeErrno: Self.probeBPFMap(),
                perfEventProbeErrno: Self.probePerfEvent()
            )
        }

        private static func probeBPFMap() -> Int32 {
            let fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "hearth_probe", 4, 4, 1, nil)
            guard fd >= 0 else { return -fd }
            close(fd)
            return 0
        }

        private static func probePerfEvent() -> Int32 {
            let fd = CLibbpf_open_cpu_clock(0, 1)
            guard fd >= 0 else { return -fd }
            close(fd)
            return 0
        }

        private static func readEffectiveCapabilities() -> UInt64? {
            guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
            for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
                return UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
            }
            return nil
        }

        private static func readKernelRelease() -> String {
            var name = utsname()
            uname(&name)
            return withUnsafeBytes(of: &name.release) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
        }

        private static func readInteger(_ path: String) -> Int? {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
            return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }

        /// An invalid bpf() command answers EINVAL (or EPERM) when the syscall exists, ENOSYS when it does not.
        private static func probeBPFSyscall() -> Bool {
            CLibbpf_has_bpf_syscall() != 0
        }
    }

    // Capability numbers from linux/capability.h.
    static let capSysAdmin: UInt64 = 21
    static let capSyslog: UInt64 = 34
    static let capPerfmon: UInt64 = 38
    static let capBPF: UInt64 = 39

    public var environment: Environment

    public init(environment: Environment = .current()) {
        self.environment = environment
    }

    /// Every problem found; sampling can start when none is fatal.
    public func findings() -> [Finding] {
        var findings: [Finding] = []
        let env = self.environment
        func has(_ capability: UInt64) -> Bool { env.effectiveCapabilities & (1 << capability) != 0 }
        let kernel = Self.parseKernelVersion(env.kernelRelease)

        if let kernel, kernel < (4, 18) {
            findings.append(
                Finding(
                    severity: .fatal,
                    requirement: "kernel 4.18 or newer",
                    problem: "kernel \(env.kernelRelease) lacks bpf_get_current_cgroup_id and BTF-defined maps",
                    fix: "run on Linux 5.8 or newer (4.18 at the very least)"
                )
            )
        }
        if !env.hasBPFSyscall {
            findings.append(
                Finding(
                    severity: .fatal,
                    requirement: "CONFIG_BPF_SYSCALL",
                    problem: "this kernel was built without the bpf() system call",
                    fix:
                        "use a kernel with CONFIG_BPF_SYSCALL=y and CONFIG_BPF_EVENTS=y (every major distribution has it)"
                )
            )
        }

        let hasNewCapabilities = kernel.map { $0 >= (5, 8) } ?? true
        let canLoadBPF = has(Self.capSysAdmin) || (hasNewCapabilities && has(Self.capBPF))
        let canPerf = has(Self.capSysAdmin) || (hasNewCapabilities && has(Self.capPerfmon))
        if !canLoadBPF {
            findings.append(
                Finding(
                    severity: .fatal,
                    requirement: hasNewCapabilities ? "CAP_BPF" : "CAP_SYS_ADMIN",
                    problem: "this process may not load BPF programs (uid \(getuid()), no "
                        + (hasNewCapabilities ? "CAP_BPF" : "CAP_SYS_ADMIN") + " in its effective set)",
                    fix: hasNewCapabilities
                        ? "run as root (sudo), or grant the binary the capabilities: "
                            + "sudo setcap cap_bpf,cap_perfmon,cap_syslog+ep $(command -v hearth-agent)"
                        : "run as root (sudo)"
                )
            )
        }
        if !canPerf {
            let paranoid = env.perfEventParanoid.map { " (kernel.perf_event_paranoid=\($0))" } ?? ""
            findings.append(
                Finding(
                    severity: .fatal,
                    requirement: hasNewCapabilities ? "CAP_PERFMON" : "CAP_SYS_ADMIN",
                    problem: "this process may not open system-wide perf events\(paranoid)",
                    fix: hasNewCapabilities
                        ? "run as root (sudo), or grant CAP_PERFMON (see CAP_BPF above); lowering "
                            + "kernel.perf_event_paranoid alone is not enough to attach BPF programs"
                        : "run as root (sudo)"
                )
            )
        }
        // The capabilities are there, yet the kernel said no: something outside them refuses the calls.
        let blockedHow =
            "something other than capabilities refuses it: usually the container runtime's default seccomp profile "
            + "(which allows it only with CAP_SYS_ADMIN), else an LSM (AppArmor, SELinux) or a lockdown"
        let blockedFix =
            "run with seccomp unconfined (Kubernetes: securityContext.seccompProfile.type: Unconfined, which "
            + "Hearth's capabilities mode sets; podman/docker: --security-opt seccomp=unconfined), or privileged"
        if env.hasBPFSyscall, canLoadBPF, env.bpfMapProbeErrno == EPERM || env.bpfMapProbeErrno == EACCES {
            findings.append(
                Finding(
                    severity: .fatal,
                    requirement: "bpf() allowed",
                    problem: "creating a BPF map failed with \(Self.errnoName(env.bpfMapProbeErrno)) although this "
                        + "process holds the capabilities; \(blockedHow)",
                    fix: blockedFix
                )
            )
        }
        if canPerf, env.perfEventProbeErrno == EPERM || env.perfEventProbeErrno == EACCES {
            findings.append(
                Finding(
                    severity: .fatal,
                    requirement: "perf_event_open() allowed",
                    problem: "opening a cpu-clock perf event failed with \(Self.errnoName(env.perfEventProbeErrno)) "
                        + "although this process holds the capabilities; \(blockedHow)",
                    fix: blockedFix
                )
            )
        }
        if let restrict = env.kptrRestrict, restrict >= 2 || (restrict == 1 && !has(Self.capSyslog)) {
            findings.append(
                Finding(
                    severity: .warning,
                    requirement: "kernel.kptr_restrict",
                    problem: "kernel symbol addresses are hidden (kernel.kptr_restrict=\(restrict)); kernel frames "
                        + "will show as addresses",
                    fix: restrict >= 2
                        ? "sudo sysctl kernel.kptr_restrict=1 (and run as root)"
                        : "run as root, or grant CAP_SYSLOG"
                )
            )
        }
        return findings
    }

    static func errnoName(_ code: Int32) -> String {
        switch code {
        case EPERM: "EPERM"
        case EACCES: "EACCES"
        default: "errno \(code)"
        }
    }

    /// "6.1.0-18-amd64" -> (6, 1).
    static func parseKernelVersion(_ release: String) -> (Int, Int)? {
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard numbers.count == 2 else { return nil }
        return (numbers[0], numbers[1])
    }
}
