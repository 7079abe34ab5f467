import Foundation
import Testing

@testable import HearthProfile

/// Writes example outputs for a person to look at, when `HEARTH_PROFILE_ARTIFACTS` names a directory:
/// `small.html`, `small.svg`, `large.html`, `large.svg`, `small.folded`, `small.pb.gz`, `top.txt`.
@Suite("Example artifacts", .enabled(if: ProcessInfo.processInfo.environment["HEARTH_PROFILE_ARTIFACTS"] != nil))
struct ArtifactTests {
    @Test("write example outputs")
    func write() throws {
        let directory = URL(fileURLWithPath: ProcessInfo.processInfo.environment["HEARTH_PROFILE_ARTIFACTS"]!)
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
    }
}
