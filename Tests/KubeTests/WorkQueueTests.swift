// WorkQueueTests.swift: dedupe, per-key exclusivity, delays, failure backoff, bounded workers, shutdown.

import HearthTestSupport
import KubeRuntime
import MetricsTestKit
import Synchronization
import Testing

@Suite("WorkQueue", .timeLimit(.minutes(1)))
struct WorkQueueTests {
    @Test("unfinished work and the longest-running processor are reported as client-go computes them")
    func unfinishedWorkMetrics() async throws {
        let metrics = TestMetrics()
        let queue = WorkQueue<String>(name: "inflight", metricsFactory: metrics)
        let dimensions = [("name", "inflight"), ("controller", "inflight")]
        queue.updateUnfinishedWork()
        #expect(try metrics.expectGauge("workqueue_unfinished_work_seconds", dimensions).lastValue == 0)
        #expect(try metrics.expectGauge("workqueue_longest_running_processor_seconds", dimensions).lastValue == 0)

        queue.add("a")
        #expect(await queue.next() == "a")
        try await Task.sleep(for: .milliseconds(200))
        queue.add("b")
        #expect(await queue.next() == "b")
        try await Task.sleep(for: .milliseconds(100))
        queue.updateUnfinishedWork()
        let unfinished = try metrics.expectGauge("workqueue_unfinished_work_seconds", dimensions).lastValue ?? -1
        let longest = try metrics.expectGauge("workqueue_longest_running_processor_seconds", dimensions).lastValue ?? -1
        // a has run >= 0.3 s and b >= 0.1 s: the sum covers both, the longest is a's alone.
        #expect(longest >= 0.3)
        #expect(unfinished >= 0.4)
        #expect(unfinished >= longest + 0.1)
        #expect(unfinished < longest * 2)

        // Finishing an item takes it out of both; the periodic loop keeps the gauges current.
        queue.done("a")
        let afterA = try metrics.expectGauge("workqueue_longest_running_processor_seconds", dimensions).lastValue ?? -1
        #expect(afterA >= 0.1 && afterA < longest)
        let loop = Task { await queue.runMetricsUpdates(every: .milliseconds(20)) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(
            try metrics.expectGauge("workqueue_longest_running_processor_seconds", dimensions).lastValue ?? 0
                >= afterA + 0.05
        )
        queue.done("b")
        #expect(try metrics.expectGauge("workqueue_unfinished_work_seconds", dimensions).lastValue == 0)
        queue.shutdown()
        await loop.value
        #expect(try metrics.expectGauge("workqueue_unfinished_work_seconds", dimensions).lastValue == 0)
        #expect(try metrics.expectGauge("workqueue_longest_running_processor_seconds", dimensions).lastValue == 0)
    }

    @Test("an item added many times before a worker takes it is processed once")
    func dedupe() async throws {
        let queue = WorkQueue<String>(name: "dedupe")
        for _ in 0..<5 { queue.add("a") }
        queue.add("b")
        #expect(queue.depth == 2)
        #expect(await queue.next() == "a")
        #expect(await queue.next() == "b")
        #expect(queue.depth == 0)
    }

    @Test("an item re-added while processing waits for done() and is never handed out twice at once")
    func exclusivity() async throws {
        let queue = WorkQueue<String>(name: "exclusive")
        queue.add("a")
        let first = await queue.next()
        #expect(first == "a")
        queue.add("a")
        #expect(queue.depth == 0)
        queue.add("b")
        #expect(await queue.next() == "b")
        queue.done("b")
        queue.done("a")
        #expect(queue.depth == 1)
        #expect(await queue.next() == "a")
    }

    @Test("several workers never process one key concurrently")
    func concurrentWorkers() async throws {
        let queue = WorkQueue<Int>(name: "workers")
        let active = Locked<Set<Int>>([])
        let violations = Locked(0)
        let processed = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    while let key = await queue.next() {
                        let clash = active.withLock { !$0.insert(key).inserted }
                        if clash { violations.withLock { $0 += 1 } }
                        await Task.yield()
                        active.withLock { _ = $0.remove(key) }
                        processed.withLock { $0 += 1 }
                        queue.done(key)
                    }
                }
            }
            for round in 0..<200 { queue.add(round % 5) }
            #expect(await eventually { queue.depth == 0 && queue.processingCount == 0 })
            queue.shutdown()
            try await group.waitForAll()
        }
        #expect(violations.withLock { $0 } == 0)
        #expect(processed.withLock { $0 } >= 5)
    }

    @Test("delayed adds wait; rate-limited adds back off exponentially per key until forgotten")
    func delaysAndBackoff() async throws {
        let queue = WorkQueue<String>(name: "delay", rateLimit: .init(base: .milliseconds(100), maximum: .seconds(10)))
        let start = ContinuousClock.now
        queue.add("later", after: .milliseconds(200))
        #expect(queue.depth == 0)
        #expect(await queue.next() == "later")
        #expect(ContinuousClock.now - start >= .milliseconds(200))
        queue.done("later")

        queue.addRateLimited("x")
        queue.addRateLimited("x")
        queue.addRateLimited("x")
        #expect(queue.failures("x") == 3)
        let backoffStart = ContinuousClock.now
        #expect(await queue.next() == "x")
        // The first (shortest, 100 ms) delay wins for an item that is already waiting.
        #expect(ContinuousClock.now - backoffStart >= .milliseconds(90))
        queue.done("x")
        queue.forget("x")
        #expect(queue.failures("x") == 0)
    }

    @Test("every worker waiting for delayed items wakes when they fall due (no waiter is dropped)")
    func delayedItemsWakeEveryWaiter() async throws {
        let queue = WorkQueue<String>(name: "delayed-waiters")
        let handedOut = Locked<[String]>([])
        // Four workers wait on one due time; the first to wake promotes the items and must wake the others.
        // Unstructured tasks: with the bug a worker never returns, and a task group would hang the test with it.
        let workers = (0..<4).map { _ in
            Task {
                guard let key = await queue.next() else { return }
                handedOut.withLock { $0.append(key) }
                queue.done(key)
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        for key in ["a", "b", "c", "d"] { queue.add(key, after: .milliseconds(100)) }
        let all = await eventually(timeout: .seconds(5), every: .milliseconds(10)) { handedOut.value.count == 4 }
        try #require(all, "handed out \(handedOut.value); a worker was left waiting")
        queue.shutdown()
        for worker in workers { await worker.value }
        #expect(handedOut.value.sorted() == ["a", "b", "c", "d"])
    }

    @Test("shutdown wakes waiting workers")
    func shutdown() async throws {
        let queue = WorkQueue<String>(name: "shutdown")
        async let waiting = queue.next()
        try await Task.sleep(for: .milliseconds(50))
        queue.shutdown()
        #expect(await waiting == nil)
        queue.add("ignored")
        #expect(await queue.next() == nil)
    }
}
