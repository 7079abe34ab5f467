// main.swift: a Swift workload with one known hot function, for the end-to-end profiling tests: the profiler must
// name `SwiftWorkload.spinHotFunction(rounds:)`, demangled.

struct SwiftWorkload {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15

    @inline(never)
    mutating func spinHotFunction(rounds: Int) -> UInt64 {
        // A plain counter, not a Range: a debug build would spend time in the range iterator's functions.
        var round = 0
        while round < rounds {
            // xorshift: cheap, and opaque enough that the optimizer keeps the loop.
            self.state ^= self.state << 13
            self.state ^= self.state >> 7
            self.state ^= self.state << 17
            round &+= 1
        }
        return self.state
    }
}

var workload = SwiftWorkload()
var checksum: UInt64 = 0
while true {
    checksum &+= workload.spinHotFunction(rounds: 1_000_000)
    if checksum == 42 { print(checksum) }  // never true in practice; keeps the result alive
}
