// ProgressLine.swift: the progress line `hearth-agent profile` redraws on standard error while it records (only on
// a terminal), and digit grouping for counts.

import Foundation
import HearthAgent
import HearthBase
import Synchronization

/// A one-line progress display on standard error, redrawn in place on a terminal; quiet otherwise.
final class ProgressLine: Sendable {
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private let drawn = Atomic<Bool>(false)

    func update(_ progress: LocalProfiler.Progress) {
        guard self.isTerminal else { return }
        let elapsed = progress.elapsed.seconds
        let total = progress.duration.seconds
        let width = 24
        let filled = total > 0 ? min(width, Int(Double(width) * elapsed / total)) : width
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        var line = String(
            format: "\r  %@ %5.1f/%.0f s  %@ samples  %d processes",
            bar,
            elapsed,
            total,
            groupDigits(progress.samples),
            progress.processes
        )
        if progress.lostSamples > 0 { line += "  \(progress.lostSamples) lost" }
        FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
        self.drawn.store(true, ordering: .relaxed)
    }

    func finish() {
        if self.drawn.load(ordering: .relaxed) { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

func groupDigits(_ value: Int64) -> String {
    let digits = String(value)
    var result = ""
    for (index, character) in digits.enumerated() {
        if index > 0, (digits.count - index) % 3 == 0 { result.append(",") }
        result.append(character)
    }
    return result
}
