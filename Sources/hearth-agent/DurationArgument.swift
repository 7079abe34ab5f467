// DurationArgument.swift: the duration flag syntax of `run` (`--upload-interval 15s`, `2m30s`, `500ms`).

import ArgumentParser

/// `15s`, `1m`, `500ms`, `2m30s`.
struct DurationArgument: ExpressibleByArgument {
    var duration: Duration

    init?(argument: String) {
        var total = Duration.zero
        var number = ""
        var rest = Substring(argument)
        guard !rest.isEmpty else { return nil }
        while let first = rest.first {
            if first.isNumber || first == "." {
                number.append(first)
                rest = rest.dropFirst()
                continue
            }
            guard let value = Double(number) else { return nil }
            let unit: Duration
            if rest.hasPrefix("ms") {
                unit = .milliseconds(1)
                rest = rest.dropFirst(2)
            } else if rest.hasPrefix("s") {
                unit = .seconds(1)
                rest = rest.dropFirst()
            } else if rest.hasPrefix("m") {
                unit = .seconds(60)
                rest = rest.dropFirst()
            } else if rest.hasPrefix("h") {
                unit = .seconds(3600)
                rest = rest.dropFirst()
            } else {
                return nil
            }
            total += unit * value
            number = ""
        }
        guard number.isEmpty else { return nil }
        self.duration = total
    }

    var defaultValueDescription: String { "\(self.duration)" }
}
