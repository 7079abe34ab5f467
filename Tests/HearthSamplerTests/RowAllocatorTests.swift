// RowAllocatorTests.swift: first-fit allocation of unwind-row ranges, and freed neighbours merging back.

import Testing

@testable import HearthSampler

@Suite("Row allocator")
struct RowAllocatorTests {
    @Test("allocates first fit and refuses what no free range holds")
    func firstFit() {
        var allocator = RowAllocator(capacity: 100)
        #expect(allocator.allocate(40) == 0..<40)
        #expect(allocator.allocate(50) == 40..<90)
        #expect(allocator.allocate(11) == nil)
        #expect(allocator.allocate(10) == 90..<100)
        #expect(allocator.freeRows == 0)
        #expect(allocator.allocate(0) == nil)
    }

    @Test("freed ranges merge with free neighbours, so a large module fits again")
    func mergesOnRelease() {
        var allocator = RowAllocator(capacity: 100)
        let a = allocator.allocate(30)!
        let b = allocator.allocate(30)!
        let c = allocator.allocate(30)!
        allocator.release(a)
        allocator.release(c)
        #expect(allocator.free == [0..<30, 60..<100])
        #expect(allocator.allocate(70) == nil)
        allocator.release(b)
        #expect(allocator.free == [0..<100])
        #expect(allocator.allocate(100) == 0..<100)
    }
}
