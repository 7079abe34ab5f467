// TopFunctions.swift: the functions that used the most CPU, as `go tool pprof -top` and `perf report` list them:
// self and total samples per function (recursion counted once per sample), ranked, and as a plain-text table.

/// Self and total samples of one function.
public struct FunctionStatistics: Hashable, Sendable {
    /// The function's display name.
    public var function: String
    /// Samples in which the function was the leaf (running its own code).
    public var selfSamples: Int64
    /// Samples in which the function was anywhere on the stack, counted once per sample even when recursive.
    public var totalSamples: Int64
    /// ``selfSamples`` as a percentage of all samples in the profile.
    public var selfPercent: Double
    /// ``totalSamples`` as a percentage of all samples in the profile.
    public var totalPercent: Double

    /// Creates statistics.
    public init(function: String, selfSamples: Int64, totalSamples: Int64, selfPercent: Double, totalPercent: Double) {
        self.function = function
        self.selfSamples = selfSamples
        self.totalSamples = totalSamples
        self.selfPercent = selfPercent
        self.totalPercent = totalPercent
    }
}

/// The functions that used the most CPU, as `go tool pprof -top` and `perf report` list them.
public enum TopFunctions {
    /// How to rank functions.
    public struct Order: Hashable, Sendable {
        private enum Value: Hashable, Sendable {
            case selfSamples
            case totalSamples
        }
        private let value: Value

        /// By self samples, then total samples (the default; where the CPU was actually spent).
        public static let selfSamples = Order(value: .selfSamples)
        /// By total samples, then self samples (which call paths were expensive).
        public static let totalSamples = Order(value: .totalSamples)

        var bySelf: Bool { self.value == .selfSamples }
    }

    /// Computes per-function statistics.
    ///
    /// Functions are identified by display name. A function that appears several times in one stack (recursion)
    /// counts once towards its total for that sample, so no total exceeds 100%.
    /// - Parameters:
    ///   - profile: The profile.
    ///   - limit: The largest number of rows to return.
    ///   - order: How to rank functions; by self samples unless given. Ties are broken by name.
    /// - Returns: At most `limit` rows, best first.
    public static func compute(
        _ profile: CPUProfile,
        limit: Int,
        orderedBy order: Order = .selfSamples
    ) -> [FunctionStatistics] {
        var selfCounts: [String: Int64] = [:]
        var totalCounts: [String: Int64] = [:]
        var seen = Set<String>()
        for sample in profile.samples where sample.count > 0 {
            guard let leaf = sample.frames.first else { continue }
            selfCounts[leaf.displayName, default: 0] += sample.count
            seen.removeAll(keepingCapacity: true)
            for frame in sample.frames where seen.insert(frame.displayName).inserted {
                totalCounts[frame.displayName, default: 0] += sample.count
            }
        }
        let total = profile.totalSamples
        let rows = totalCounts.map { function, totalSamples in
            let selfSamples = selfCounts[function] ?? 0
            return FunctionStatistics(
                function: function,
                selfSamples: selfSamples,
                totalSamples: totalSamples,
                selfPercent: self.percent(selfSamples, of: total),
                totalPercent: self.percent(totalSamples, of: total)
            )
        }
        let sorted = rows.sorted { a, b in
            let (a1, a2, b1, b2) =
                order.bySelf
                ? (a.selfSamples, a.totalSamples, b.selfSamples, b.totalSamples)
                : (a.totalSamples, a.selfSamples, b.totalSamples, b.selfSamples)
            if a1 != b1 { return a1 > b1 }
            if a2 != b2 { return a2 > b2 }
            return a.function < b.function
        }
        return Array(sorted.prefix(max(0, limit)))
    }

    /// Renders rows as an aligned plain-text table for a terminal:
    ///
    /// ```
    ///     SELF   SELF%    TOTAL  TOTAL%  FUNCTION
    ///     1523  45.21%     1523  45.21%  compress_block
    ///      412  12.23%     3310  98.25%  main
    /// ```
    /// - Parameter rows: The rows, in the order to show them.
    /// - Returns: The table, one line per row after a header, each line ending in a newline.
    public static func renderTable(_ rows: [FunctionStatistics]) -> String {
        let selfWidth = max(4, rows.map { String($0.selfSamples).count }.max() ?? 0)
        let totalWidth = max(5, rows.map { String($0.totalSamples).count }.max() ?? 0)
        var output = ""
        output += self.pad("SELF", selfWidth) + "  " + self.pad("SELF%", 7) + "  "
        output += self.pad("TOTAL", totalWidth) + "  " + self.pad("TOTAL%", 7) + "  FUNCTION\n"
        for row in rows {
            output += self.pad(String(row.selfSamples), selfWidth) + "  "
            output += self.pad(self.formatPercent(row.selfPercent), 7) + "  "
            output += self.pad(String(row.totalSamples), totalWidth) + "  "
            output += self.pad(self.formatPercent(row.totalPercent), 7) + "  "
            output += row.function + "\n"
        }
        return output
    }

    static func percent(_ part: Int64, of whole: Int64) -> Double {
        whole > 0 ? Double(part) * 100 / Double(whole) : 0
    }

    /// `12.34%`, with two decimals.
    static func formatPercent(_ value: Double) -> String {
        let hundredths = Int64((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)%"
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}
