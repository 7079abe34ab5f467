// WorkQueueTests.swift: dedupe, per-key exclusivity, delays, failure backoff, bounded workers, shutdown.

import HearthTestSupport
import MetricsTestKit
import Synchronization
import Testing

@testable import KubeRuntime

@Suite("WorkQueue", .timeLimit(.minutes(1)))
struct WorkQueueTests {
    @Test("unfinished work and the longest-running processor are reported as client-go computes them")
    func unfinishedWorkMetrics() async throws {
        let metrics = TestMetrics()
        let clock = ManualClock()
        let queue = WorkQueue<String>(name: "inflight", clock: clock, metricsFactory: metrics)
        let dimensions = [("name", "inflight"), ("controller", "inflight")]
        func gauge(_ name: String) throws -> Double { try metrics.expectGauge(name, dimensions).lastValue ?? -1 }
        queue.updateUnfinishedWork()
        #expect(try gauge("workqueue_unfinished_work_seconds") == 0)
        #expect(try gauge("workqueue_longest_running_processor_seconds") == 0)

        queue.add("a")
        #expect(await queue.next() == "a")
        clock.advance(by: .milliseconds(300))
        queue.add("b")
        #expect(await queue.next() == "b")
        clock.advance(by: .milliseconds(100))
        queue.updateUnfinishedWork()
        // a has run 0.4 s and b 0.1 s: the sum covers both, the longest is a's alone.
        #expect(abs(try gauge("workqueue_unfinished_work_seconds") - 0.5) < 1e-9)
        #expect(abs(try gauge("workqueue_longest_running_processor_seconds") - 0.4) < 1e-9)

        // Finishing an item takes it out of both; the periodic loop keeps the gauges current.
        queue.done("a")
        #expect(abs(try gauge("workqueue_longest_running_processor_seconds") - 0.1) < 1e-9)
        let loop = Task { await queue.runMetricsUpdates(every: .milliseconds(500)) }
        #expect(await clock.waitForSleepers(1))
        clock.advance(by: .milliseconds(500))
        #expect(
            await eventually {
                (try? gauge("workqueue_longest_running_processor_seconds")).map { abs($0 - 0.6) < 1e-9 } ?? false
            }
        )
        queue.done("b")
        #expect(try gauge("workqueue_unfinished_work_seconds") == 0)
        queue.shutdown()
        clock.advance(by: .milliseconds(500))
        await loop.value
        #expect(try gauge("workqueue_unfinished_work_seconds") == 0)
        #expect(try gauge("workqueue_longest_running_processor_seconds") == 0)
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
        let clock = ManualClock()
        let queue = WorkQueue<String>(
            name: "delay",
            rateLimit: .init(base: .milliseconds(100), maximum: .seconds(10)),
            clock: clock
        )
        queue.add("later", after: .milliseconds(200))
        #expect(queue.depth == 0)
        let later = Task { await queue.next() }
        // The worker sleeps until exactly the due time, and gets the item only then.
        #expect(await clock.waitForSleepers(1))
        #expect(clock.sleepingUntil == [clock.start + .milliseconds(200)])
        clock.advance(by: .milliseconds(199))
        #expect(clock.sleepingUntil.count == 1, "not due yet")
        clock.advance(by: .milliseconds(1))
        #expect(await later.value == "later")
        queue.done("later")

        // Three failures: backoff 100, 200, 400 ms; an item already waiting keeps its earliest due time.
        queue.addRateLimited("x")
        queue.addRateLimited("x")
        queue.addRateLimited("x")
        #expect(queue.failures("x") == 3)
        let x = Task { await queue.next() }
        #expect(await clock.waitForSleepers(1))
        #expect(clock.sleepingUntil == [clock.now + .milliseconds(100)])
        clock.advance(by: .milliseconds(100))
        #expect(await x.value == "x")
        queue.done("x")
        queue.forget("x")
        #expect(queue.failures("x") == 0)
        queue.shutdown()
    }

    @Test("many delayed items come out in due order; an earlier re-add wins, a later one and an immediate add replace")
    func manyDelayedItemsInDueOrder() async throws {
        let clock = ManualClock()
        let queue = WorkQueue<Int>(name: "many", clock: clock)
        // 500 items due at shuffled times 1...500 ms.
        var due: [Int: Int] = [:]  // item → microseconds
        for (index, millisecond) in Array(1...500).shuffled().enumerated() {
            queue.add(index, after: .milliseconds(millisecond))
            due[index] = millisecond * 1000
        }
        // Item 0 is moved earlier (wins), item 1 later (ignored: the earlier due time stays), item 2 added now.
        queue.add(0, after: .microseconds(500))
        queue.add(1, after: .seconds(5))
        queue.add(2)
        #expect(queue.depth == 1)
        #expect(await queue.next() == 2)
        queue.done(2)
        clock.advance(by: .milliseconds(600))
        var order: [Int] = []
        // Everything is due: next() promotes and hands out without waiting.
        for _ in 0..<499 {
            guard let item = await queue.next() else { break }
            order.append(item)
            queue.done(item)
        }
        due[0] = 500
        due[2] = nil
        #expect(order == due.keys.sorted { due[$0]! < due[$1]! }, "every delayed item, once each, in due order")
        queue.shutdown()
    }

    @Test("every worker waiting for delayed items wakes when they fall due (no waiter is dropped)")
    func delayedItemsWakeEveryWaiter() async throws {
        let clock = ManualClock()
        let queue = WorkQueue<String>(name: "delayed-waiters", clock: clock)
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
        #expect(await eventually { queue.waitingCount == 4 })
        for key in ["a", "b", "c", "d"] { queue.add(key, after: .milliseconds(100)) }
        #expect(await clock.waitForSleepers(1))
        clock.advance(by: .milliseconds(100))
        let all = await eventually(timeout: .seconds(5), every: .milliseconds(10)) { handedOut.value.count == 4 }
        try #require(all, "handed out \(handedOut.value); a worker was left waiting")
        queue.shutdown()
        for worker in workers { await worker.value }
        #expect(handedOut.value.sorted() == ["a", "b", "c", "d"])
    }

    @Test("shutdown wakes waiting workers")
    func shutdown() async throws {
        let queue = WorkQueue<String>(name: "shutdown")
        let waiting = Task { await queue.next() }
        #expect(await eventually { queue.waitingCount == 1 })
        queue.shutdown()
        #expect(await waiting.value == nil)
        queue.add("ignored")
        #expect(await queue.next() == nil)
    }
}
