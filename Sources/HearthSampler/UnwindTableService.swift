// UnwindTableService.swift: serves the BPF program's requests for unwind tables (the unwind_requests map) on a thread
// of its own, woken by the program (a ring buffer) when a request is new, so a drain never waits for a compile, a
// new process gets full stacks as soon as what it maps is compiled, and nothing runs while nothing is asked. Also
// the sampler's entry points to load and forget tables on demand.

internal import CLibbpf
import Foundation
import HearthBase
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Loads unwind tables in the background as the BPF program asks for them.
final class UnwindTableService: Sendable {
    /// Without a wake-up, the requests are read this often anyway: to retry the ones that had to wait (at most
    /// one serve per process per ``retryInterval``) and to forget exited processes.
    static let tick: Duration = .seconds(1)
    /// A process's request is served at most this often (a reload reads /proc/PID/maps; a failed load is retried).
    static let retryInterval: Duration = .seconds(1)

    private let loader: Mutex<UnwindTableLoader>
    private let requestsFD: Int32
    private let wakeupsFD: Int32
    /// Written by ``stop()`` to end the thread's wait at once.
    private let stopEvent: Int32
    private let logger: Logger
    /// Processes seen by drains since the service last looked, for eviction order.
    private let sampled = Mutex<Set<Int32>>([])
    /// Loads served since the last drain took them.
    private let loads = Mutex<[UnwindTableLoad]>([])
    private let stopRequested = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)
    private let running = Atomic<Bool>(false)

    init(loader: consuming UnwindTableLoader, requestsFD: Int32, wakeupsFD: Int32, logger: Logger) {
        self.loader = Mutex(loader)
        self.requestsFD = requestsFD
        self.wakeupsFD = wakeupsFD
        self.stopEvent = CLibbpf_wakeup_event()
        self.logger = logger
    }

    deinit {
        if self.stopEvent >= 0 { close(self.stopEvent) }
    }

    /// Starts the serving thread; ``stop()`` must be called before the maps are closed.
    func start() {
        self.running.store(true, ordering: .relaxed)
        let thread = Thread { [self] in
            self.serve()
            self.stopped.signal()
        }
        thread.name = "hearth-unwind"
        thread.start()
    }

    /// Stops the serving thread and waits for it (at most one load in progress).
    func stop() {
        guard self.running.exchange(false, ordering: .relaxed) else { return }
        self.stopRequested.store(true, ordering: .relaxed)
        var one: UInt64 = 1
        _ = write(self.stopEvent, &one, MemoryLayout<UInt64>.size)
        self.stopped.wait()
    }

    func load(pid: Int32) throws(UnwindTablesError) -> UnwindTablesReport {
        try self.loader.withLock { loader throws(UnwindTablesError) in try loader.load(pid: pid) }
    }

    func forget(pid: Int32) {
        self.loader.withLock { $0.forget(pid: pid) }
    }

    /// Called by a drain with the processes it saw.
    func noteSampled(_ pids: Set<Int32>) {
        self.sampled.withLock { $0.formUnion(pids) }
    }

    /// The loads served since the previous call.
    func takeLoads() -> [UnwindTableLoad] {
        self.loads.withLock { loads in
            defer { loads.removeAll(keepingCapacity: true) }
            return loads
        }
    }

    private func serve() {
        // The ring buffer's epoll set also watches the stop event; its readiness is reported as ring 0, which
        // ring_buffer__poll then reads once more, harmlessly.
        let ring = ring_buffer__new(self.wakeupsFD, { _, _, _ in 0 }, nil, nil)
        defer { if let ring { ring_buffer__free(ring) } }
        if let ring, self.stopEvent >= 0 {
            _ = CLibbpf_epoll_add_readable(ring_buffer__epoll_fd(ring), self.stopEvent)
        } else {
            self.logger.warning("no ring buffer for unwind requests: they are read every 100 ms instead")
        }
        var lastTick = ContinuousClock.now
        while !self.stopRequested.load(ordering: .relaxed) {
            let waitMilliseconds = ring == nil ? 100 : Int32(Self.tick.milliseconds)
            if let ring {
                _ = ring_buffer__poll(ring, waitMilliseconds)  // a new request, the stop event, or the tick
            } else {
                var nap = timespec(tv_sec: 0, tv_nsec: Int(waitMilliseconds) * 1_000_000)
                _ = nanosleep(&nap, nil)
            }
            if self.stopRequested.load(ordering: .relaxed) { break }
            self.serveRequests()
            if lastTick.duration(to: .now) >= Self.tick {
                lastTick = .now
                let pids = self.sampled.withLock { pids in
                    defer { pids.removeAll(keepingCapacity: true) }
                    return pids
                }
                self.loader.withLock { loader in
                    loader.noteSampled(pids)
                    loader.forgetExitedProcesses()
                }
            }
        }
    }

    /// Reads every pending request, then serves each that is due.
    private func serveRequests() {
        var requests: [(pid: UInt32, askedAt: UInt64)] = []
        var key: UInt32 = 0
        var next: UInt32 = 0
        var status = bpf_map_get_next_key(self.requestsFD, nil, &next)
        while status == 0 {
            var askedAt: UInt64 = 0
            if bpf_map_lookup_elem(self.requestsFD, &next, &askedAt) == 0 { requests.append((next, askedAt)) }
            key = next
            status = bpf_map_get_next_key(self.requestsFD, &key, &next)
        }
        for request in requests {
            var pid = request.pid
            if self.serve(pid: Int32(bitPattern: request.pid), askedAt: request.askedAt) {
                _ = bpf_map_delete_elem(self.requestsFD, &pid)
            }
        }
    }

    /// Serves one request; returns whether it is done with (served, or the process is gone). A request kept in
    /// the map stops the program from asking again at every sample.
    private func serve(pid: Int32, askedAt: UInt64) -> Bool {
        // Not the agent itself: its own binary is large (and in a debug build huge), and compiling it would make the
        // agent's cost grow with its own sampling. The request stays, so the program does not ask again.
        if pid == Self.ownPID { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        let now = ContinuousClock.now
        return self.loader.withLock { loader in
            let isReload = loader.hasTables(pid: pid)
            // Reload checks and failed loads wait a second between tries (a JIT process remaps code all the time);
            // a reload right after a first load does not (a process sampled between fork and exec).
            let previous = isReload ? loader.lastReloadCheck[pid] : loader.lastFailedLoad[pid]
            if let previous, previous.duration(to: now) < Self.retryInterval { return false }
            let report: UnwindTablesReport
            do throws(UnwindTablesError) {
                if isReload {
                    // A PC outside the mappings or an evicted module: reload only if something changed.
                    guard let reloaded = try loader.reloadIfMappingsChanged(pid: pid, interval: .zero) else {
                        return true
                    }
                    report = reloaded
                } else {
                    guard loader.loadsTablesOnFirstSample else { return false }
                    report = try loader.load(pid: pid)
                }
            } catch {
                if !isReload { loader.lastFailedLoad[pid] = now }
                self.logger.debug(
                    "no unwind tables",
                    metadata: ["pid": "\(pid)", "error": "\(error)", "reload": "\(isReload)"]
                )
                return error.code == .processUnreadable
            }
            let latency = Duration.nanoseconds(Int64(clamping: Self.monotonicNanoseconds() &- askedAt))
            let load = UnwindTableLoad(pid: pid, report: report, latency: latency, isReload: isReload)
            self.loads.withLock { $0.append(load) }
            self.logger.debug(
                "unwind tables loaded",
                metadata: [
                    "pid": "\(pid)", "reload": "\(isReload)", "modules.compiled": "\(report.modulesLoaded)",
                    "rows": "\(report.rowsWritten)", "latency.ms": "\(latency.milliseconds)",
                ]
            )
            return true
        }
    }

    static let ownPID = getpid()

    /// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
