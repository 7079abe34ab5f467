// SeededGenerator.swift: the fuzz tests' random numbers: SplitMix64, so every run mutates the same way and a failing
// iteration can be replayed alone from its number.

/// SplitMix64: a small deterministic generator, so every run mutates the same way.
public struct SeededGenerator: RandomNumberGenerator {
    public var state: UInt64

    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9e37_79b9_7f4a_7c15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// The generator for one iteration of a test: each iteration can be replayed alone from its number.
    public static func iteration(_ index: Int, of test: UInt64) -> SeededGenerator {
        SeededGenerator(state: test ^ (UInt64(index) &* 0xd134_2543_de82_ef95))
    }
}

/// A number in `0..<bound` (0 when `bound` is not positive).
public func below(_ bound: Int, _ random: inout SeededGenerator) -> Int {
    bound > 0 ? Int(random.next() % UInt64(bound)) : 0
}

/// One of `choices`, chosen by `random`.
public func pick<T>(_ choices: [T], _ random: inout SeededGenerator) -> T {
    choices[below(choices.count, &random)]
}
