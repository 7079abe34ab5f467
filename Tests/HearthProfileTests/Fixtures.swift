// Fixtures.swift: profiles with known contents for the HearthProfile tests, built as the agent builds them: a
// small hand-made one and a large generated one (100,000 samples over 20,000 stacks by default).

import FoundationEssentials
import HearthTestSupport

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

    static func user(
        _ name: String,
        _ address: UInt64,
        module: String = appPath,
        buildID: String? = appBuildID
    )
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
    /// busy machine: each process walks a random call graph (so stacks share long prefixes, as real ones do),
    /// some stacks end in syscalls into the kernel, some in unresolved JIT code.
    static func large(sampleCount: Int = 100_000, stackCount: Int = 20_000, seed: UInt64 = 7) -> CPUProfile {
        var random = SeededGenerator(state: seed)
        let processes = ["checkout-api", "postgres", "envoy", "node-exporter", "kubelet"]
        let areas = [
            "HTTPServer", "Router", "JSONCodec", "Storage", "Cache", "Pricing", "Inventory", "Auth", "Metrics",
        ]
        let verbs = [
            "handle", "decode", "encode", "lookup", "insert", "flush", "compute", "validate", "render", "poll",
        ]
        let vocabulary = (0..<400).map { index in
            "\(areas[index % areas.count]).\(verbs[(index / areas.count) % verbs.count])\(index / 90)(_:)"
        }
        // A call graph: each function calls 1-4 others; the first callee is the common path.
        let callees: [[Int]] = vocabulary.indices.map { _ in
            (0..<(1 + Int(random.next() % 4))).map { _ in Int(random.next() % UInt64(vocabulary.count)) }
        }
        let kernelPaths = [
            [
                "entry_SYSCALL_64_after_hwframe", "do_syscall_64", "__x64_sys_epoll_wait", "do_epoll_wait", "ep_poll",
                "schedule_hrtimeout_range", "schedule", "__schedule", "finish_task_switch.isra.0",
            ],
            [
                "entry_SYSCALL_64_after_hwframe", "do_syscall_64", "ksys_write", "vfs_write", "sock_write_iter",
                "tcp_sendmsg", "tcp_sendmsg_locked", "tcp_push", "__tcp_push_pending_frames", "tcp_write_xmit",
                "__ip_queue_xmit",
            ],
            [
                "entry_SYSCALL_64_after_hwframe", "do_syscall_64", "ksys_read", "vfs_read", "ext4_file_read_iter",
                "filemap_read", "copy_page_to_iter", "copy_user_enhanced_fast_string",
            ],
            [
                "asm_sysvec_apic_timer_interrupt", "sysvec_apic_timer_interrupt", "__irq_exit_rcu", "__do_softirq",
                "run_rebalance_domains",
            ],
        ]
        let kernelNames = Array(Set(kernelPaths.joined())).sorted()
        var seen = Set<[String]>()
        var stacks: [(process: String, frames: [ProfileFrame])] = []
        var attempts = 0
        while stacks.count < stackCount, attempts < stackCount * 20 {
            attempts += 1
            let processIndex = Int(random.next() % UInt64(processes.count))
            let process = processes[processIndex]
            var frames = [user("main", 0x40_0000), user("\(process).run()", 0x40_0100 + UInt64(processIndex) * 0x10)]
            var current = (processIndex * 37) % vocabulary.count
            let depth = 3 + Int(random.next() % 22)
            for _ in 0..<depth {
                frames.append(user(vocabulary[current], 0x40_1000 + UInt64(current) * 0x40))
                let options = callees[current]
                // 60% the common callee, otherwise any.
                current = random.next() % 10 < 6 ? options[0] : options[Int(random.next() % UInt64(options.count))]
            }
            let ending = random.next() % 10
            if ending < 3 {
                let path = kernelPaths[Int(random.next() % UInt64(kernelPaths.count))]
                let length = 2 + Int(random.next() % UInt64(path.count - 1))
                for name in path.prefix(length) {
                    let index = UInt64(kernelNames.firstIndex(of: name)!)
                    frames.append(kernel(name, 0xffff_ffff_8100_0000 + index * 0x1000))
                }
            } else if ending == 3 {
                let offset = (random.next() % 64) * 0x40
                frames.append(unresolved("/usr/lib/libjit.so", 0x7e00_0000_0000 + offset, offset: offset))
            }
            let key = [process] + frames.map(\.function)
            if seen.insert(key).inserted { stacks.append((process, frames)) }
        }
        // Spread the samples: a few hot stacks, a long tail of rare ones.
        var samples: [ProfileSample] = []
        samples.reserveCapacity(stacks.count)
        var remaining = sampleCount
        for (index, stack) in stacks.enumerated() {
            let left = stacks.count - index
            let count = left == 1 ? remaining : max(1, min(remaining - (left - 1), 1 + Int(random.next() % 8)))
            remaining -= count
            samples.append(
                ProfileSample(
                    frames: stack.frames.reversed(),
                    count: Int64(count),
                    labels: ["comm": stack.process, "pid": String(1000 + stack.process.count)]
                )
            )
        }
        return CPUProfile(startTime: self.start, duration: .seconds(15), frequency: 99, samples: samples)
    }
}
