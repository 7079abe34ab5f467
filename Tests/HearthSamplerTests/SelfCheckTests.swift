// SelfCheckTests.swift: the self-check's findings for simulated environments (capabilities, kernel versions, no
// bpf() syscall, hidden kernel pointers), and parsing of kernel versions, online CPU lists and thresholds.

import Glibc
import Testing

@testable import HearthSampler

struct SelfCheckTests {
    func environment(capabilities: [UInt64], kernel: String = "6.1.0-18-amd64", kptr: Int = 0) -> SelfCheck.Environment
    {
        SelfCheck.Environment(
            effectiveCapabilities: capabilities.reduce(0) { $0 | (1 << $1) },
            kernelRelease: kernel,
            perfEventParanoid: 2,
            kptrRestrict: kptr,
            hasBPFSyscall: true
        )
    }

    @Test("root passes")
    func root() {
        let check = SelfCheck(environment: self.environment(capabilities: Array(0...40)))
        #expect(check.findings().isEmpty)
    }

    @Test("CAP_BPF and CAP_PERFMON are enough on 5.8+")
    func capabilitiesOnly() {
        let check = SelfCheck(environment: self.environment(capabilities: [SelfCheck.capBPF, SelfCheck.capPerfmon]))
        #expect(check.findings().allSatisfy { $0.severity == .warning })
    }

    @Test("no capabilities names CAP_BPF and CAP_PERFMON, the paranoid setting and the fix")
    func unprivileged() {
        let findings = SelfCheck(environment: self.environment(capabilities: [])).findings()
        let fatal = findings.filter { $0.severity == .fatal }
        #expect(fatal.map(\.requirement) == ["CAP_BPF", "CAP_PERFMON"])
        #expect(fatal[0].fix.contains("setcap cap_bpf,cap_perfmon"))
        #expect(fatal[1].problem.contains("perf_event_paranoid=2"))
    }

    @Test("kernels before 5.8 need CAP_SYS_ADMIN")
    func oldKernel() {
        let findings = SelfCheck(environment: self.environment(capabilities: [SelfCheck.capBPF], kernel: "5.4.0"))
            .findings()
        #expect(findings.filter { $0.severity == .fatal }.map(\.requirement) == ["CAP_SYS_ADMIN", "CAP_SYS_ADMIN"])
    }

    @Test("a kernel older than 4.18 is refused")
    func ancientKernel() {
        let findings = SelfCheck(environment: self.environment(capabilities: [SelfCheck.capSysAdmin], kernel: "4.9.1"))
            .findings()
        #expect(findings.contains { $0.requirement == "kernel 4.18 or newer" && $0.severity == .fatal })
    }

    @Test("capabilities held but bpf() or perf_event_open() refused: fatal, naming seccomp and the fix")
    func refusedDespiteCapabilities() {
        var environment = self.environment(capabilities: [SelfCheck.capBPF, SelfCheck.capPerfmon])
        environment.bpfMapProbeErrno = EPERM
        environment.perfEventProbeErrno = EACCES
        let fatal = SelfCheck(environment: environment).findings().filter { $0.severity == .fatal }
        #expect(fatal.map(\.requirement) == ["bpf() allowed", "perf_event_open() allowed"])
        #expect(fatal.allSatisfy { $0.problem.contains("seccomp") && $0.fix.contains("Unconfined") })
        #expect(fatal[0].problem.contains("EPERM") && fatal[1].problem.contains("EACCES"))
    }

    @Test("without the capabilities, a refused probe adds nothing: the capability findings say it")
    func refusedWithoutCapabilities() {
        var environment = self.environment(capabilities: [])
        environment.bpfMapProbeErrno = EPERM
        environment.perfEventProbeErrno = EACCES
        let fatal = SelfCheck(environment: environment).findings().filter { $0.severity == .fatal }
        #expect(fatal.map(\.requirement) == ["CAP_BPF", "CAP_PERFMON"])
    }

    @Test("no bpf() syscall is fatal")
    func noSyscall() {
        var environment = self.environment(capabilities: Array(0...40))
        environment.hasBPFSyscall = false
        #expect(SelfCheck(environment: environment).findings().map(\.requirement) == ["CONFIG_BPF_SYSCALL"])
    }

    @Test("hidden kernel pointers are a warning with the sysctl to fix it")
    func kptrRestrict() {
        let findings = SelfCheck(environment: self.environment(capabilities: Array(0...40), kptr: 2)).findings()
        #expect(findings.count == 1)
        #expect(findings[0].severity == .warning)
        #expect(findings[0].fix.contains("kptr_restrict=1"))
    }

    @Test(
        "kernel versions parse",
        arguments: [("6.1.0-18-amd64", 6, 1), ("5.15.0", 5, 15), ("6.18.44-fc-v595", 6, 18)]
    )
    func kernelVersion(release: String, major: Int, minor: Int) throws {
        let version = try #require(SelfCheck.parseKernelVersion(release))
        #expect(version == (major, minor))
    }

    @Test("online CPU lists parse")
    func onlineCPUs() {
        #expect(OnlineCPUs.parse("0-3,5\n") == [0, 1, 2, 3, 5])
        #expect(OnlineCPUs.parse("0") == [0])
        #expect(OnlineCPUs.parse("") == [])
    }

    @Test("sampling probability thresholds")
    func thresholds() {
        #expect(CPUSampler.threshold(probability: 1) == UInt32.max)
        #expect(CPUSampler.threshold(probability: 0) == 0)
        #expect(CPUSampler.threshold(probability: 0.5) == UInt32.max / 2)
    }
}
