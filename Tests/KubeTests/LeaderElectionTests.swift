// LeaderElectionTests.swift: two electors on one Lease.

import Foundation
import HearthTestSupport
import KubeClient
import KubeModel
import Synchronization
import Testing

@testable import KubeRuntime

@Suite("Leader election", .serialized, .timeLimit(.minutes(2)))
struct LeaderElectionTests {
    func elector(_ client: KubeClient, _ identity: String, fast: Bool, release: Bool = true) -> LeaderElector {
        var configuration = LeaderElector.Configuration(
            leaseName: "hearth-operator",
            namespace: "default",
            identity: identity
        )
        if fast {
            configuration.leaseDuration = .seconds(3)
            configuration.renewDeadline = .seconds(2)
            configuration.retryPeriod = .milliseconds(500)
        }
        configuration.releaseOnCancel = release
        return LeaderElector(client: client, configuration: configuration, logger: testLogger())
    }

    /// Work that runs until cancelled and records it.
    static func work(_ log: Locked<[String]>, _ name: String) -> @Sendable () async throws -> Void {
        {
            log.withLock { $0.append("start \(name)") }
            await withTaskCancellationHandler {
                while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(20)) }
            } onCancel: {
                log.withLock { $0.append("stop \(name)") }
            }
        }
    }

    @Test("a follower tries again just after the observed lease expires, not a whole retry period later")
    func attemptAtExpiry() async throws {
        try await withServerAndClient { _, client in
            let follower = self.elector(client, "b", fast: false)
            var spec = LeaseSpec()
            spec.holderIdentity = "a"
            spec.leaseDurationSeconds = 15
            // Seen 14 s ago: it expires in 1 s, sooner than the 2-2.4 s retry.
            follower.observed.withLock {
                $0.record = spec
                $0.time = .now - .seconds(14)
            }
            let nearExpiry = follower.nextAttemptDelay()
            #expect(nearExpiry > .milliseconds(900) && nearExpiry <= .milliseconds(1050), "\(nearExpiry)")
            // Seen just now: the jittered retry period.
            follower.observed.withLock { $0.time = .now }
            let fresh = follower.nextAttemptDelay()
            #expect(fresh >= .seconds(2) && fresh <= .milliseconds(2400), "\(fresh)")
            // Already expired but not acquired (a conflict or an API error): the normal pace, no hot loop.
            follower.observed.withLock { $0.time = .now - .seconds(20) }
            let expired = follower.nextAttemptDelay()
            #expect(expired >= .seconds(2), "\(expired)")
        }
    }

    @Test("exactly one of two electors leads; the other takes over within 20 s of the leader's loss (15 s/10 s/2 s)")
    func takeover() async throws {
        try await withServerAndClient { _, client in
            let log = Locked<[String]>([])
            let a = self.elector(client, "a", fast: false, release: false)
            let b = self.elector(client, "b", fast: false, release: false)
            let taskA = Task { try await a.run(whileLeading: Self.work(log, "a")) }
            #expect(await eventually { a.isLeader })
            let taskB = Task { try await b.run(whileLeading: Self.work(log, "b")) }
            defer { taskB.cancel() }
            // For a while, never two leaders and always A.
            let deadline = ContinuousClock.now + .seconds(3)
            while ContinuousClock.now < deadline {
                #expect(a.isLeader && !b.isLeader)
                try await Task.sleep(for: .milliseconds(100))
            }
            // The leader dies without releasing the lease.
            taskA.cancel()
            let lost = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(25)) { b.isLeader })
            let takeover = ContinuousClock.now - lost
            #expect(takeover < .seconds(20), "took \(takeover)")
            #expect(takeover >= .seconds(10), "took over before the lease expired: \(takeover)")
            #expect(log.value.prefix(3) == ["start a", "stop a", "start b"])
            let lease = try await client.resource(Lease.self, namespace: "default").get("hearth-operator")
            #expect(lease.spec.holderIdentity == "b")
            #expect(lease.spec.leaseTransitions == 1)
            #expect(lease.spec.renewTime?.contains(".") == true)
        }
    }

    @Test("a leader that loses the Lease stops its work at once")
    func lossStopsWork() async throws {
        try await withServerAndClient { _, client in
            let log = Locked<[String]>([])
            let a = self.elector(client, "a", fast: true)
            let task = Task { try await a.run(whileLeading: Self.work(log, "a")) }
            defer { task.cancel() }
            #expect(await eventually { a.isLeader && log.value == ["start a"] })
            // Someone else takes the lease (e.g. after a network partition).
            let leases = client.resource(Lease.self, namespace: "default")
            var lease = try await leases.get("hearth-operator")
            lease.spec.holderIdentity = "intruder"
            lease.spec.leaseDurationSeconds = 60
            lease.spec.renewTime = KubeTime.formatMicro(Date())
            _ = try await leases.update(lease)
            #expect(await eventually(timeout: .seconds(10)) { log.value.contains("stop a") })
            #expect(!a.isLeader)
        }
    }

    @Test("a leader shutting down releases the lease, so the next takes over quickly")
    func releaseOnShutdown() async throws {
        try await withServerAndClient { _, client in
            let log = Locked<[String]>([])
            let a = self.elector(client, "a", fast: false)
            let b = self.elector(client, "b", fast: false)
            let taskA = Task { try await a.run(whileLeading: Self.work(log, "a")) }
            #expect(await eventually { a.isLeader })
            let taskB = Task { try await b.run(whileLeading: Self.work(log, "b")) }
            defer { taskB.cancel() }
            try await Task.sleep(for: .milliseconds(500))
            taskA.cancel()
            _ = try? await taskA.value
            let released = try await client.resource(Lease.self, namespace: "default").get("hearth-operator")
            #expect(released.spec.holderIdentity == nil)
            let start = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(10)) { b.isLeader })
            #expect(ContinuousClock.now - start < .seconds(8))
        }
    }

    @Test("a leader whose work fails releases the lease and throws the work's error")
    func failedWorkEndsLeadership() async throws {
        struct CachesNeverSynced: Error {}
        try await withServerAndClient { _, client in
            let a = self.elector(client, "a", fast: false)
            await #expect(throws: CachesNeverSynced.self) {
                try await a.run(whileLeading: { throw CachesNeverSynced() })
            }
            #expect(!a.isLeader)
            let released = try await client.resource(Lease.self, namespace: "default").get("hearth-operator")
            #expect(released.spec.holderIdentity == nil)
        }
    }
}
