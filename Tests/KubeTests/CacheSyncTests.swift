// CacheSyncTests.swift: the signals the controller runtime waits on instead of polling: a store's first list
// (WaitForCacheSync) and a shut-down queue with nothing in progress.

import HearthTestSupport
import KubeModel
import KubeRuntime
import Testing

@Suite("Cache sync and drain signals", .timeLimit(.minutes(1)))
struct CacheSyncTests {
    @Test("waitUntilSynced returns only after the first list completes, and at once afterwards")
    func storeSync() async throws {
        let store = Store<ConfigMap>()
        let waiter = Task { await store.waitUntilSynced() }
        store.apply(.initStarted)
        store.apply(.initApply(ConfigMap(name: "a", namespace: "default")))
        #expect(!store.hasSynced)
        store.apply(.initDone)
        await waiter.value
        #expect(store.hasSynced && store.keys.count == 1)
        await store.waitUntilSynced()  // already synced: returns at once
    }

    @Test("a cancelled wait for a store that never syncs returns")
    func storeSyncCancelled() async {
        let store = Store<ConfigMap>()
        let waiter = Task { await store.waitUntilSynced() }
        waiter.cancel()
        await waiter.value
        #expect(!store.hasSynced)
    }

    @Test("drained returns once the queue is shut down and the item in progress is done")
    func queueDrained() async throws {
        let queue = WorkQueue<String>(name: "drain")
        queue.add("a")
        #expect(await queue.next() == "a")
        let drained = Locked(false)
        let waiter = Task {
            await queue.drained()
            drained.withLock { $0 = true }
        }
        queue.shutdown()
        #expect(await eventually { queue.isShuttingDown })
        #expect(!drained.value, "an item is still in progress")
        queue.done("a")
        await waiter.value
        #expect(drained.value)
        await queue.drained()  // already drained: returns at once
    }
}
