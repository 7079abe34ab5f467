// FoldedStacks.swift: a CPUProfile as folded stacks (`root;caller;...;leaf count`), the text format of
// `flamegraph.pl`, speedscope, inferno and Pyroscope's `/ingest?format=folded`.

/// Folded stacks: one line per distinct stack, `root;caller;...;leaf count`.
///
/// The format of Brendan Gregg's `stackcollapse-*` scripts, read by `flamegraph.pl`, speedscope, inferno and
/// Pyroscope's `/ingest?format=folded`.
public enum FoldedStacks {
    /// Renders `profile` as folded stacks.
    ///
    /// Frames are written root first and joined by `;`. A sample's `comm` label (its process name), when present,
    /// is the root frame. Identical stacks are merged and their counts summed; lines are sorted, and each ends
    /// with a newline. Characters that would break the format are replaced: `;` by `:` and line breaks by spaces.
    /// A sample without frames or `comm` is written as `[unknown]`.
    /// - Parameter profile: The profile to render.
    /// - Returns: The folded stacks, empty when the profile has no samples.
    public static func render(_ profile: CPUProfile) -> String {
        var counts: [String: Int64] = [:]
        for sample in profile.samples where sample.count > 0 {
            counts[self.line(for: sample), default: 0] += sample.count
        }
        var output = ""
        for stack in counts.keys.sorted() {
            output += "\(stack) \(counts[stack]!)\n"
        }
        return output
    }

    private static func line(for sample: ProfileSample) -> String {
        var names: [String] = []
        names.reserveCapacity(sample.frames.count + 1)
        if let process = sample.processName { names.append(self.sanitize(process)) }
        for frame in sample.frames.reversed() { names.append(self.sanitize(frame.displayName)) }
        return names.isEmpty ? "[unknown]" : names.joined(separator: ";")
    }

    static func sanitize(_ name: String) -> String {
        guard name.contains(where: { $0 == ";" || $0.isNewline }) else { return name }
        return String(name.map { $0 == ";" ? ":" : $0.isNewline ? " " : $0 })
    }
}
