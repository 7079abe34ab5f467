// ArtifactTests.swift: example outputs (flame graphs, folded stacks, pprof, the top table), checked whole, and kept
// for a person to look at when HEARTH_PROFILE_ARTIFACTS names a directory; real stacks too with
// HEARTH_PROFILE_SAMPLES.

import Foundation
import Testing

@testable import HearthProfile

/// Writes example outputs (to a temporary folder, or for a person to look at to `HEARTH_PROFILE_ARTIFACTS`):
/// `small.html`, `small.svg`, `large.html`, `large.svg`, `small.folded`, `small.pb.gz`, `top.txt`.
///
/// With `HEARTH_PROFILE_SAMPLES` naming a JSON file of real stacks (for example converted from `perf script`):
/// `[{"comm": "...", "pid": "...", "count": 3, "frames": [{"function": "...", "module": "...", "address": 123,
/// "kernel": false, "resolved": true}, ...]}]`, leaf first, it also writes `real.html`, `real.svg` and
/// `real.pb.gz`.
@Suite("Example artifacts")
struct ArtifactTests {
    @Test("example outputs are written whole: HTML and SVG name the profile, the pprof is gzip, the tables have rows")
    func write() throws {
        let directory = URL(
            fileURLWithPath: ProcessInfo.processInfo.environment["HEARTH_PROFILE_ARTIFACTS"]
                ?? FileManager.default.temporaryDirectory.appendingPathComponent("hearth-artifacts-\(getpid())").path
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func save(_ name: String, _ text: String) throws {
            try Data(text.utf8).write(to: directory.appendingPathComponent(name))
        }
        let small = Fixtures.small()
        let large = Fixtures.large()
        try save("small.html", FlameGraph.html(small, title: "checkout-api"))
        try save("small.svg", FlameGraph.svg(small, title: "checkout-api"))
        try save("large.html", FlameGraph.html(large, title: "node-1: all processes"))
        try save("large.svg", FlameGraph.svg(large, title: "node-1: all processes"))
        try save("small.folded", FoldedStacks.render(small))
        try save("top.txt", TopFunctions.renderTable(TopFunctions.compute(large, limit: 20)))
        try Data(PprofEncoder.encodeGzipped(small)).write(to: directory.appendingPathComponent("small.pb.gz"))
        func read(_ name: String) throws -> Data { try Data(contentsOf: directory.appendingPathComponent(name)) }
        let html = String(decoding: try read("small.html"), as: UTF8.self)
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.contains("checkout-api") && html.contains("</html>"))
        let svg = String(decoding: try read("large.svg"), as: UTF8.self)
        #expect(svg.contains("<svg") && svg.contains("node-1: all processes") && svg.contains("</svg>"))
        #expect(try read("small.pb.gz").prefix(2) == Data([0x1f, 0x8b]), "gzip magic")
        #expect(!(try read("small.folded")).isEmpty)
        #expect(String(decoding: try read("top.txt"), as: UTF8.self).split(separator: "\n").count > 5)

        if let path = ProcessInfo.processInfo.environment["HEARTH_PROFILE_SAMPLES"] {
            let real = try self.load(URL(fileURLWithPath: path))
            try save("real.html", FlameGraph.html(real, title: "perf: this machine"))
            try save("real.svg", FlameGraph.svg(real, title: "perf: this machine"))
            try Data(PprofEncoder.encodeGzipped(real)).write(to: directory.appendingPathComponent("real.pb.gz"))
        }
    }

    private struct RecordedSample: Decodable {
        struct Frame: Decodable {
            var function: String
            var module: String
            var address: UInt64
            var kernel: Bool
            var resolved: Bool
        }
        var comm: String
        var pid: String
        var count: Int64
        var frames: [Frame]
    }

    private func load(_ url: URL) throws -> CPUProfile {
        let recorded = try JSONDecoder().decode([RecordedSample].self, from: Data(contentsOf: url))
        let samples = recorded.map { sample in
            ProfileSample(
                frames: sample.frames.map {
                    ProfileFrame(
                        function: $0.function,
                        module: $0.module,
                        address: $0.address,
                        isKernel: $0.kernel,
                        isResolved: $0.resolved
                    )
                },
                count: sample.count,
                labels: ["comm": sample.comm, "pid": sample.pid]
            )
        }
        return CPUProfile(startTime: Date(), duration: .seconds(8), frequency: 99, samples: samples)
    }
}
