// BPFObject.swift: noncopyable owners of libbpf resources: a loaded BPF object with its programs and maps, a
// cpu-clock perf event per CPU, and the links that attach the program to them; each is released on deinit.

internal import CLibbpf

#if canImport(Glibc)
import Glibc
#endif

/// A loaded BPF object: its programs and maps live as long as this owner.
///
/// Opening and loading happen together: the sampler never needs an opened-but-unloaded object.
struct BPFObject: ~Copyable {
    let raw: OpaquePointer

    /// - Parameters:
    ///   - mapSizes: max_entries to set before loading, by map name (the object's sizes otherwise).
    ///   - valueSizes: value sizes in bytes to set before loading, by map name.
    ///   - programs: the programs to load (the verifier checks only those); every program when nil.
    init(
        bytes: [UInt8],
        name: String,
        mapSizes: [String: UInt32] = [:],
        valueSizes: [String: UInt32] = [:],
        programs: Set<String>? = nil
    ) throws(BPFError) {
        let opened: OpaquePointer? = bytes.withUnsafeBytes { buffer in
            CLibbpf_open_mem(buffer.baseAddress, buffer.count, name)
        }
        guard let opened else {
            throw BPFError(code: .openObject, message: "parse BPF object \(name)", errno: Glibc.errno)
        }
        for (mapName, entries) in mapSizes.sorted(by: { $0.key < $1.key }) {
            guard let map = bpf_object__find_map_by_name(opened, mapName) else {
                bpf_object__close(opened)
                throw BPFError(code: .mapNotFound, message: "BPF map \(mapName) is missing from the object")
            }
            let status = bpf_map__set_max_entries(map, entries)
            if status != 0 {
                bpf_object__close(opened)
                throw BPFError(code: .loadObject, message: "size BPF map \(mapName) to \(entries)", errno: -status)
            }
        }
        for (mapName, size) in valueSizes.sorted(by: { $0.key < $1.key }) {
            guard let map = bpf_object__find_map_by_name(opened, mapName) else {
                bpf_object__close(opened)
                throw BPFError(code: .mapNotFound, message: "BPF map \(mapName) is missing from the object")
            }
            let status = bpf_map__set_value_size(map, size)
            if status != 0 {
                bpf_object__close(opened)
                throw BPFError(code: .loadObject, message: "set the value size of BPF map \(mapName)", errno: -status)
            }
        }
        if let programs {
            var program = bpf_object__next_program(opened, nil)
            while let current = program {
                let name = String(cString: bpf_program__name(current))
                _ = bpf_program__set_autoload(current, programs.contains(name))
                program = bpf_object__next_program(opened, current)
            }
        }
        let result = bpf_object__load(opened)
        if result != 0 {
            bpf_object__close(opened)
            throw BPFError(code: .loadObject, message: "load BPF object \(name) into the kernel", errno: -result)
        }
        self.raw = opened
    }

    deinit {
        bpf_object__close(self.raw)
    }

    /// The program called `name`; borrowed from this object.
    func program(named name: String) throws(BPFError) -> OpaquePointer {
        guard let program = bpf_object__find_program_by_name(self.raw, name) else {
            throw BPFError(code: .programNotFound, message: "BPF program \(name) is missing from the object")
        }
        return program
    }

    /// The file descriptor of the map called `name`; it stays valid while this object lives.
    func mapDescriptor(named name: String) throws(BPFError) -> Int32 {
        guard let map = bpf_object__find_map_by_name(self.raw, name) else {
            throw BPFError(code: .mapNotFound, message: "BPF map \(name) is missing from the object")
        }
        return bpf_map__fd(map)
    }
}

/// A perf event file descriptor that nothing has attached to yet.
struct PerfEventDescriptor: ~Copyable {
    private let fd: Int32

    /// Opens a `PERF_COUNT_SW_CPU_CLOCK` event on `cpu` that fires `frequency` times a second.
    init(cpuClockOn cpu: Int, frequency: Int) throws(BPFError) {
        let result = CLibbpf_open_cpu_clock(Int32(cpu), UInt64(frequency))
        guard result >= 0 else {
            throw BPFError(
                code: .perfEventOpen,
                message: "open a cpu-clock perf event on CPU \(cpu) at \(frequency) Hz",
                errno: -result
            )
        }
        self.fd = result
    }

    deinit {
        close(self.fd)
    }

    /// Attaches `program` to this event. The returned link owns the descriptor from then on.
    consuming func attach(program: OpaquePointer) throws(BPFError) -> BPFLink {
        guard let link = bpf_program__attach_perf_event(program, self.fd) else {
            let error = BPFError(code: .attach, message: "attach the sampler to a perf event", errno: Glibc.errno)
            _ = consume self  // closes the descriptor
            throw error
        }
        discard self
        return BPFLink(raw: link)
    }
}

/// An attached program. Destroying the link detaches the program and closes the perf event.
struct BPFLink: ~Copyable {
    private let raw: OpaquePointer

    fileprivate init(raw: OpaquePointer) {
        self.raw = raw
    }

    deinit {
        bpf_link__destroy(self.raw)
    }

    /// Hands the link to a new owner, which must destroy it.
    fileprivate consuming func release() -> OpaquePointer {
        let raw = self.raw
        discard self
        return raw
    }
}

/// Owns any number of links, one per CPU; destroying the group detaches them all.
struct BPFLinkGroup: ~Copyable {
    private var links: [OpaquePointer] = []

    init() {}

    var count: Int { self.links.count }

    mutating func append(_ link: consuming BPFLink) {
        self.links.append(link.release())
    }

    deinit {
        for link in self.links { bpf_link__destroy(link) }
    }
}
