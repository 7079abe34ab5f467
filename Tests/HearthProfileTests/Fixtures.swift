import FoundationEssentials

@testable import HearthProfile

/// Profiles with known contents, built the way the agent builds them: symbolized frames leaf first, a kernel
/// part, unresolved addresses, and pid/comm/thread labels.
enum Fixtures {
    static let start = Date(timeIntervalSince1970: 1_764_076_562)  // 2025-11-25 13:16:02 UTC
    static let appPath = "/usr/local/bin/checkout-api"
    static let appBuildID = "4f1a2b3c4d5e6f708192a3b4c5d6e7f809112233"
    static let libcPath = "/usr/lib/x86_64-linux-gnu/libc.so.6"
    static let libcBuildID = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
    static let kernel = "[kernel.kallsyms]"

    static func user(_ name: String, _ address: UInt64, module: String = appPath, buildID: String? = appBuildID)
        -> ProfileFrame
    {
        ProfileFrame(function: name, module: module, address: address, buildID: buildID)
    }

    static func kernel(_ name: String, _ address: UInt64) -> ProfileFrame {
        ProfileFrame(function: name, module: kernel, address: address, isKernel: true)
    }

    static func unresolved(_ module: String, _ address: UInt64, offset: UInt64) -> ProfileFrame {
        let name = (module.split(separator: "/").last.map(String.init) ?? module) + "+0x" + String(offset, radix: 16)
        return ProfileFrame(function: name, module: module, address: address, isResolved: false)
    }

    static let main = user("main", 0x40_1000)
    static let run = user("CheckoutAPI.Server.run()", 0x40_2000)
    static let handle = user("CheckoutAPI.Router.handle(_:)", 0x40_3000)
    static let price = user("CheckoutAPI.Pricing.total(for:)", 0x40_4000)
    static let encode = user("JSONEncoder.encode<A>(_:)", 0x40_5000)
    static let memcpy = user("__memmove_avx_unaligned_erms", 0x7f00_0001_0000, module: libcPath, buildID: libcBuildID)
    static let write = user("__GI___libc_write", 0x7f00_0002_0000, module: libcPath, buildID: libcBuildID)
    static let entry = kernel("entry_SYSCALL_64_after_hwframe", 0xffff_ffff_8100_0000)
    static let doSyscall = kernel("do_syscall_64", 0xffff_ffff_8100_1000)
    static let sysWrite = kernel("ksys_write", 0xffff_ffff_8100_2000)
    static let jit = unresolved("/tmp/jit-1234.so", 0x7e00_0000_1234, offset: 0x1234)
    static let recurse = user("CheckoutAPI.Tree.walk(_:)", 0x40_6000)

    static let labels = ["pid": "4242", "comm": "checkout-api", "thread": "worker-1"]

    /// 1,000 samples of process `checkout-api` at 99 Hz over 10 s:
    /// - 500: main → run → handle → price (in two samples of 300 and 200)
    /// - 200: main → run → handle → encode → memmove (libc)
    /// - 150: main → run → handle → write → entry → do_syscall_64 → ksys_write (kernel leaf)
    /// - 100: main → run → walk → walk → walk (recursion)
    /// - 50: main → jit+0x1234 (unresolved leaf)
    static func small() -> CPUProfile {
        CPUProfile(
            startTime: self.start,
            duration: .seconds(10),
            frequency: 99,
            samples: [
                ProfileSample(frames: [price, handle, run, main], count: 300, labels: labels),
                ProfileSample(frames: [memcpy, encode, handle, run, main], count: 200, labels: labels),
                ProfileSample(
                    frames: [sysWrite, doSyscall, entry, write, handle, run, main],
                    count: 150,
                    labels: labels,
                    numericLabels: ["tid": 4243]
                ),
                ProfileSample(frames: [recurse, recurse, recurse, run, main], count: 100, labels: labels),
                ProfileSample(frames: [jit, main], count: 50, labels: labels),
                // The same stack as the first, again: outputs merge it.
                ProfileSample(frames: [price, handle, run, main], count: 200, labels: labels),
            ],
            mappings: [
                ProfileMapping(start: 0x40_0000, limit: 0x50_0000, fileOffset: 0, file: appPath, buildID: appBuildID),
                ProfileMapping(
                    start: 0x7f00_0000_0000,
                    limit: 0x7f00_1000_0000,
                    fileOffset: 0x2_8000,
                    file: libcPath,
                    buildID: libcBuildID
                ),
            ]
        )
    }

    /// A profile with `sampleCount` samples over `stackCount` distinct stacks in a few processes, shaped like a
    /// busy machine: deep user stacks with a shared trunk, syscalls into the kernel, some unresolved frames.
    static func large(sampleCount: Int = 100_000, stackCount: Int = 20_000, seed: UInt64 = 7) -> CPUProfile {
        var random = SplitMix64(seed: seed)
        let processes = ["checkout-api", "postgres", "envoy", "node-exporter", "kubelet"]
        let vocabulary = (0..<600).map { index in
            let area = ["Server", "Router", "Codec", "Storage", "Cache", "Pricing", "Inventory", "Auth", "Metrics"]
            return "Service.\(area[index % area.count]).operation\(index)(_:)"
        }
        let kernelNames = [
            "entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_epoll_wait", "do_epoll_wait",
            "ep_poll", "schedule_hrtimeout_range", "ksys_read", "vfs_read", "tcp_sendmsg", "tcp_write_xmit",
            "__ip_queue_xmit", "copy_user_enhanced_fast_string", "finish_task_switch.isra.0",
        ]
        var samples: [ProfileSample] = []
        samples.reserveCapacity(stackCount)
        var remaining = sampleCount
        for stackIndex in 0..<stackCount {
            let processIndex = Int(random.next() % UInt64(processes.count))
            let process = processes[processIndex]
            var frames: [ProfileFrame] = []
            // Trunk: shared by all stacks of a process.
            frames.append(user("main", 0x40_0000))
            frames.append(user("\(process).run()", 0x40_0100 + UInt64(processIndex) * 0x10))
            let depth = 4 + Int(random.next() % 24)
            for level in 0..<depth {
                // Zipf-ish: low indexes are much more likely, so stacks share prefixes.
                let pick = Int(Double(random.next() % 10_000) / 10_000 * Double(level + 2) * 20) % vocabulary.count
                frames.append(user(vocabulary[pick], 0x40_1000 + UInt64(pick) * 0x40))
            }
            if random.next() % 4 == 0 {
                let kernelDepth = 2 + Int(random.next() % 6)
                for level in 0..<kernelDepth {
                    let pick = (level * 2 + Int(random.next() % 3)) % kernelNames.count
                    frames.append(kernel(kernelNames[pick], 0xffff_ffff_8100_0000 + UInt64(pick) * 0x100))
                }
            } else if random.next() % 10 == 0 {
                frames.append(unresolved("/usr/lib/libjit.so", 0x7e00_0000_0000 + random.next() % 4096, offset: 0))
            }
            let count =
                stackIndex == stackCount - 1 ? remaining : max(1, min(remaining, Int(random.next() % 9) + 1))
            remaining -= count
            samples.append(
                ProfileSample(
                    frames: frames.reversed(),
                    count: Int64(count),
                    labels: ["comm": process, "pid": String(1000 + process.count)]
                )
            )
            if remaining <= 0 { break }
        }
        return CPUProfile(startTime: self.start, duration: .seconds(15), frequency: 99, samples: samples)
    }
}
