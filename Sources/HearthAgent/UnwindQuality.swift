// UnwindQuality.swift: how many stacks reach a known root (the program's or a thread's start), per module of their
// leaf frame, and where the others stop: which binaries still give short stacks, and why.

import Foundation
import HearthSampler
import HearthSymbolizer

/// Samples per module of their leaf user frame, how many of their stacks reach a known root, and where the others
/// end (an unwinder marker, frame pointers without tables, or the module of their outermost frame).
public struct UnwindQuality: Sendable, Hashable {
    public struct Module: Sendable, Hashable, Codable {
        public var samples: Int64 = 0
        public var rooted: Int64 = 0
        /// Where stacks that reach no root end, with their samples.
        public var shortStacksEndIn: [String: Int64] = [:]

        /// The share of samples whose stack reaches a root, from 0 to 1.
        public var rootedShare: Double { self.samples == 0 ? 1 : Double(self.rooted) / Double(self.samples) }
    }

    /// What one user stack says about unwinding, worked out once per interned stack.
    struct Shape: Hashable {
        var leafModule: String
        var rooted: Bool
        var ending: String
    }

    /// By module name (the file name of the leaf frame's module, `[anon]` for JIT code).
    public private(set) var modules: [String: Module] = [:]

    public init() {}

    /// Functions that start a program or a thread: a stack that reaches one is complete.
    static let roots: Set<String> = [
        "_start", "__libc_start_main", "__libc_start_main_impl", "__libc_start_call_main", "start_thread", "clone",
        "clone3", "__clone", "__clone3", "thread_start",
    ]

    /// The module marker frames of the unwinder carry (see StackAggregator.symbolizeUser).
    static let markerModule = "[unwinder]"

    static func shape(of frames: [SymbolizedFrame]) -> Shape? {
        guard let leaf = frames.first else { return nil }
        // The last two frames: `_start` may be unnamed in a stripped executable, `__libc_start_main` is not.
        let rooted = frames.suffix(2).contains { $0.function.map(Self.roots.contains) ?? false }
        let last = frames[frames.count - 1]
        let ending =
            last.module == Self.markerModule
            ? (last.function ?? "[unwinder]") : "stops in \(Self.moduleName(last.module))"
        return Shape(leafModule: Self.moduleName(leaf.module), rooted: rooted, ending: ending)
    }

    static func moduleName(_ path: String) -> String {
        path.hasPrefix("[") ? path : String(path.split(separator: "/").last ?? Substring(path))
    }

    mutating func add(_ shape: Shape, source: UserStackSource, count: Int64) {
        var module = self.modules[shape.leafModule, default: Module()]
        module.samples += count
        if shape.rooted {
            module.rooted += count
        } else {
            // Without tables the frame-pointer walk is the reason, wherever it stopped.
            let ending = source == .framePointers ? "frame pointers (no tables)" : shape.ending
            module.shortStacksEndIn[ending, default: 0] += count
        }
        self.modules[shape.leafModule] = module
    }

    public mutating func merge(_ other: UnwindQuality) {
        for (name, theirs) in other.modules {
            var module = self.modules[name, default: Module()]
            module.samples += theirs.samples
            module.rooted += theirs.rooted
            module.shortStacksEndIn.merge(theirs.shortStacksEndIn, uniquingKeysWith: +)
            self.modules[name] = module
        }
    }

    /// Every module's counts, the most sampled first.
    public var bySamples: [(name: String, module: Module)] {
        self.modules.map { ($0.key, $0.value) }.sorted { ($0.module.samples, $1.name) > ($1.module.samples, $0.name) }
    }

    public var samples: Int64 { self.modules.values.reduce(0) { $0 + $1.samples } }
    public var rooted: Int64 { self.modules.values.reduce(0) { $0 + $1.rooted } }
}
