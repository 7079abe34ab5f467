// A Swift workload for the .eh_frame unwinder tests, built by the tests with `swiftc -O`: main -> workLoop ->
// sortRound -> qsort (libc) -> ... -> compareKeys (a C-convention closure) -> memcmp, forever. Every function is
// @inline(never) and does work after its call, so no call becomes a tail call and every frame stays on the stack.

#if canImport(Glibc)
import Glibc
#endif

let keyLength = 32

// libc's qsort calls it through a C function pointer; memcmp keeps part of the time in libc.
let compareKeys: @convention(c) (UnsafeRawPointer?, UnsafeRawPointer?) -> Int32 = { left, right in
    memcmp(left!, right!, keyLength)
}

@inline(never)
func sortRound(_ keys: UnsafeMutableRawPointer, count: Int, seed: inout UInt64) -> Int {
    // Pseudo-random keys sharing their first bytes, so memcmp compares past them.
    for index in 0..<count * keyLength {
        seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let byte = index % keyLength < 24 ? 7 : UInt8(truncatingIfNeeded: seed >> 59)
        keys.storeBytes(of: byte, toByteOffset: index, as: UInt8.self)
    }
    qsort(keys, count, keyLength, compareKeys)
    return Int(keys.load(fromByteOffset: keyLength * (count - 1) + keyLength - 1, as: UInt8.self))
}

@inline(never)
func workLoop(rounds: Int) -> Int {
    let count = 4096
    let keys = UnsafeMutableRawPointer.allocate(byteCount: count * keyLength, alignment: 16)
    defer { keys.deallocate() }
    var seed: UInt64 = 42
    var total = 0
    for _ in 0..<rounds {
        total &+= sortRound(keys, count: count, seed: &seed)
        total &+= strlen("after the call")
    }
    return total
}

var total = 0
while true {
    total &+= workLoop(rounds: 100)
    // Never true: keeps the work observable.
    if total == -1 { print(total) }
}
