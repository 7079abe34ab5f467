// LeaderElector.swift: coordination.k8s.io/v1 Lease leader election (controller-runtime defaults 15 s / 10 s / 2 s).

import Foundation
import HearthBase
import KubeClient
import KubeModel
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Campaigns for a Lease and runs work only while it leads.
///
/// Non-leaders take over once the holder has not renewed for `leaseDuration` (measured on the local clock from
/// when the record last changed, as client-go does, so clock skew does not matter). A leader that cannot renew for
/// `renewDeadline`, or that sees another holder, stops its work at once. On shutdown the lease is released.
public final class LeaderElector: Sendable {
    public struct Configuration: Sendable {
        public var leaseName: String
        public var namespace: String
        /// This candidate's identity (default: host name + random suffix).
        public var identity: String
        public var leaseDuration: Duration = .seconds(15)
        public var renewDeadline: Duration = .seconds(10)
        public var retryPeriod: Duration = .seconds(2)
        /// Release the lease when the work stops (default true).
        public var releaseOnCancel = true

        public init(leaseName: String, namespace: String, identity: String? = nil) {
            self.leaseName = leaseName
            self.namespace = namespace
            self.identity =
                identity ?? "\(ProcessInfo.processInfo.hostName)_\(UUID().uuidString.prefix(8).lowercased())"
        }
    }

    struct Observed {
        var record: LeaseSpec?
        var resourceVersion: String?
        var time: ContinuousClock.Instant = .now
        var leading = false
    }

    public let configuration: Configuration
    let leases: ResourceClient<Lease>
    let logger: Logger
    let observed = Mutex(Observed())
    let status: Gauge
    let metricsFactory: any MetricsFactory

    public init(
        client: KubeClient,
        configuration: Configuration,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.configuration = configuration
        self.leases = client.resource(Lease.self, namespace: configuration.namespace)
        var logger = logger
        logger[metadataKey: "lease"] = "\(configuration.namespace)/\(configuration.leaseName)"
        logger[metadataKey: "lease.identity"] = "\(configuration.identity)"
        self.logger = logger
        self.metricsFactory = metricsFactory
        self.status = Gauge(
            label: "leader_election_master_status",
            dimensions: [("name", configuration.leaseName)],
            factory: metricsFactory
        )
        self.status.record(0)
    }

    /// Whether this candidate currently leads.
    public var isLeader: Bool { self.observed.withLock { $0.leading } }

    /// Campaigns, runs `work` while leading, and campaigns again after losing the lease. Returns when cancelled or
    /// on graceful shutdown (releasing the lease). `work` is cancelled the moment leadership is lost. When `work`
    /// fails (a controller whose caches never synced), leadership ends, the lease is released and the error is
    /// thrown: a leader that does no work must not keep the lease from a replica that could.
    public func run(whileLeading work: @escaping @Sendable () async throws -> Void) async throws {
        let failure = WorkFailure()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            guard await self.acquire() else { break }
            self.logger.info("became leader")
            self.setLeading(true)
            let lost = await self.lead(work, failure: failure)
            self.setLeading(false)
            if !lost { break }
            self.logger.info("lost leadership")
        }
        if self.configuration.releaseOnCancel {
            // The caller is usually cancelled by now; release in a task that does not inherit the cancellation,
            // and wait for it (at most two retry periods).
            await Task { await self.releaseWithin(self.configuration.retryPeriod * 2) }.value
        }
        if let error = failure.error.withLock({ $0 }) { throw error }
    }

    /// Why the work of a leader failed.
    final class WorkFailure: Sendable {
        let error = Mutex<(any Error)?>(nil)
    }

    func setLeading(_ leading: Bool) {
        self.observed.withLock { $0.leading = leading }
        self.status.record(leading ? 1 : 0)
    }

    /// Tries every retryPeriod until acquired; false when cancelled or shutting down.
    func acquire() async -> Bool {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if await self.tryAcquireOrRenew() { return true }
            do {
                try await Task.sleep(for: self.nextAttemptDelay())
            } catch { return false }
        }
        return false
    }

    func jittered(_ duration: Duration) -> Duration { duration * Double.random(in: 1.0...1.2) }

    /// The jittered retry period, cut short to try again just after the observed holder's lease expires: a
    /// crashed leader is then replaced `leaseDuration` after its last renewal was seen, not up to a retry later.
    func nextAttemptDelay() -> Duration {
        let retry = self.jittered(self.configuration.retryPeriod)
        let untilExpiry = self.observed.withLock { observed -> Duration? in
            guard let seconds = observed.record?.leaseDurationSeconds else { return nil }
            return observed.time + .seconds(seconds) - ContinuousClock.now
        }
        // Already expired and still not acquired (a conflict or an API error): the normal pace.
        guard let untilExpiry, untilExpiry > .zero, untilExpiry < retry else { return retry }
        return untilExpiry + .milliseconds(50)
    }

    /// Runs the work alongside the renew loop. Returns true when leadership was lost, false on cancellation.
    func lead(_ work: @escaping @Sendable () async throws -> Void, failure: WorkFailure) async -> Bool {
        await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                do {
                    try await work()
                } catch {
                    guard !Task.isCancelled else { return nil }
                    self.logger.error("leader work failed; giving up leadership", metadata: ["error": "\(error)"])
                    failure.error.withLock { $0 = error }
                    // Not lost: stop leading, release the lease, and fail.
                    return false
                }
                return nil
            }
            group.addTask {
                // Renew every retryPeriod; give up when no renewal succeeded within renewDeadline.
                var lastRenew = ContinuousClock.now
                while !Task.isCancelled {
                    do { try await Task.sleep(for: self.configuration.retryPeriod) } catch { return false }
                    if await self.tryAcquireOrRenew() {
                        lastRenew = .now
                    } else if self.observed.withLock({ $0.record?.holderIdentity != self.configuration.identity })
                        || ContinuousClock.now - lastRenew >= self.configuration.renewDeadline
                    {
                        // Stop claiming leadership before the work is cancelled, so nobody sees a leader whose
                        // work is already stopping.
                        self.setLeading(false)
                        return true
                    }
                }
                return false
            }
            group.addTask {
                // Graceful shutdown ends leadership (the lease is released by run()).
                try? await gracefulShutdown()
                return false
            }
            var lost = false
            for await outcome in group {
                if let outcome {
                    lost = outcome
                    break
                }
                // The work returned by itself: keep leading until cancelled or lost.
            }
            group.cancelAll()
            return lost
        }
    }

    /// One attempt (client-go tryAcquireOrRenew). True when this candidate holds the lease afterwards.
    func tryAcquireOrRenew() async -> Bool {
        let now = Date()
        let identity = self.configuration.identity
        let durationSeconds = Int(self.configuration.leaseDuration.seconds)
        do {
            guard var lease = try await self.leases.getIfExists(self.configuration.leaseName) else {
                var lease = Lease(name: self.configuration.leaseName, namespace: self.configuration.namespace)
                lease.spec.holderIdentity = identity
                lease.spec.leaseDurationSeconds = durationSeconds
                lease.spec.acquireTime = KubeTime.formatMicro(now)
                lease.spec.renewTime = KubeTime.formatMicro(now)
                lease.spec.leaseTransitions = 0
                let created = try await self.leases.create(lease)
                self.observe(created)
                return true
            }
            let record = lease.spec
            let expired = self.observed.withLock { observed -> Bool in
                if observed.record != record || observed.resourceVersion == nil {
                    observed.record = record
                    observed.resourceVersion = lease.metadata.resourceVersion
                    observed.time = .now
                }
                return ContinuousClock.now - observed.time >= .seconds(record.leaseDurationSeconds ?? durationSeconds)
            }
            let holder = record.holderIdentity ?? ""
            if !holder.isEmpty, holder != identity, !expired { return false }
            var spec = lease.spec
            if holder != identity {
                spec.acquireTime = KubeTime.formatMicro(now)
                spec.leaseTransitions = (spec.leaseTransitions ?? 0) + 1
            }
            spec.holderIdentity = identity
            spec.leaseDurationSeconds = durationSeconds
            spec.renewTime = KubeTime.formatMicro(now)
            lease.spec = spec
            let updated = try await self.leases.update(lease)
            self.observe(updated)
            return true
        } catch {
            self.logger.debug("lease attempt failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    func observe(_ lease: Lease) {
        self.observed.withLock {
            $0.record = lease.spec
            $0.resourceVersion = lease.metadata.resourceVersion
            $0.time = .now
        }
    }

    /// Releases, giving up after `limit`: with the API server unreachable a request only fails at the client's
    /// timeout, and a stopping pod should not wait that long for a courtesy (the lease expires anyway).
    func releaseWithin(_ limit: Duration) async {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.release()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return false
            }
            if await group.next() == false {
                self.logger.info("gave up releasing the lease", metadata: ["timeout": "\(limit)"])
            }
            group.cancelAll()
        }
    }

    /// Gives the lease up so another candidate can take over at once.
    func release() async {
        guard var lease = try? await self.leases.getIfExists(self.configuration.leaseName),
            lease.spec.holderIdentity == self.configuration.identity
        else { return }
        lease.spec.holderIdentity = nil
        lease.spec.leaseDurationSeconds = 1
        lease.spec.renewTime = KubeTime.formatMicro(Date())
        lease.spec.acquireTime = nil
        do {
            _ = try await self.leases.update(lease)
            self.logger.info("released lease")
        } catch {
            self.logger.info("could not release lease", metadata: ["error": "\(error)"])
        }
    }
}

/// Runs a service only while its elector leads (a Service for a ServiceGroup).
public struct LeaderElectedService: ServiceLifecycle.Service {
    let elector: LeaderElector
    let service: any ServiceLifecycle.Service

    public init(elector: LeaderElector, service: any ServiceLifecycle.Service) {
        self.elector = elector
        self.service = service
    }

    public func run() async throws {
        let service = self.service
        try await self.elector.run { try await service.run() }
    }
}
