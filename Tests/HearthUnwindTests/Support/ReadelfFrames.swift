// ReadelfFrames.swift: runs `readelf --debug-dump=frames-interp` and parses its tables (LOC, CFA and one column per
// register), the independent reference the compiled unwind tables are checked against.

import Foundation
import HearthTestSupport

/// The interpreted frame tables `readelf --debug-dump=frames-interp` prints for a file.
struct ReadelfFrames {
    /// One CIE or FDE and the rows printed under it.
    struct Entry {
        var offset: UInt64
        var isCIE: Bool
        /// For an FDE, its CIE's offset.
        var cieOffset: UInt64
        /// For a CIE, its augmentation string.
        var augmentation: String
        /// For an FDE, its address range.
        var range: Range<UInt64>
        var rows: [Row] = []
    }

    /// One printed row: the location, the CFA rule (`rsp+8`, `exp`...) and each shown register's rule (`u`,
    /// `c-16`, `exp`...), keyed by register name.
    struct Row {
        var location: UInt64
        var cfa: String
        var registers: [String: String]
    }

    var entries: [Entry] = []

    /// Runs readelf on `path` and parses its output.
    static func load(_ path: String) throws -> ReadelfFrames {
        let output = try ChildProcess.run("/usr/bin/readelf", ["--debug-dump=frames-interp", path])
        // readelf warns (and may exit non-zero) about a missing separate debug file, which doesn't matter here.
        guard output.stdout.contains("Contents of the .eh_frame section") else {
            throw ReadelfError(message: "readelf failed: \(output.stderr)")
        }
        return ReadelfFrames(parsing: output.stdout)
    }

    init(parsing text: String) {
        var columns: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            // A register rule naming another register prints as two words, `r10 (r10)`: keep them together.
            var fields: [Substring] = []
            for word in line.split(separator: " ", omittingEmptySubsequences: true) {
                if word.hasPrefix("("), let last = fields.popLast() {
                    fields.append(line[last.startIndex..<word.endIndex])
                } else {
                    fields.append(word)
                }
            }
            guard let first = fields.first else { continue }
            if first == "LOC" {
                columns = fields.dropFirst(2).map(String.init)
                continue
            }
            if fields.count >= 4, fields[3] == "CIE" || fields[3] == "FDE",
                let offset = UInt64(first, radix: 16)
            {
                columns = []
                var entry = Entry(
                    offset: offset,
                    isCIE: fields[3] == "CIE",
                    cieOffset: 0,
                    augmentation: "",
                    range: 0..<0
                )
                if entry.isCIE, fields.count >= 5 {
                    entry.augmentation = fields[4].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                }
                for field in fields.dropFirst(4) {
                    if field.hasPrefix("cie="), let cie = UInt64(field.dropFirst(4), radix: 16) {
                        entry.cieOffset = cie
                    } else if field.hasPrefix("pc=") {
                        let bounds = field.dropFirst(3).split(separator: ".", omittingEmptySubsequences: true)
                        if bounds.count == 2, let low = UInt64(bounds[0], radix: 16),
                            let high = UInt64(bounds[1], radix: 16), low <= high
                        {
                            entry.range = low..<high
                        }
                    }
                }
                self.entries.append(entry)
                continue
            }
            // A row: a hex location, the CFA, then one value per column.
            guard !columns.isEmpty, fields.count == columns.count + 2, let location = UInt64(first, radix: 16),
                !self.entries.isEmpty
            else {
                continue
            }
            var registers: [String: String] = [:]
            for (name, value) in zip(columns, fields.dropFirst(2)) {
                registers[name] = String(value)
            }
            self.entries[self.entries.count - 1].rows.append(
                Row(location: location, cfa: String(fields[1]), registers: registers)
            )
        }
    }
}

struct ReadelfError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}
