// PprofEncoderTests.swift: pprof encoding decoded back: header, sample types and totals, valid and deduplicated
// ids, mappings with build ids, labels, the cpuOnly layout, edge cases and a large profile.

import FoundationEssentials
import Testing

@testable import HearthProfile

@Suite("pprof encoding")
struct PprofEncoderTests {
    private func decode(
        _ profile: CPUProfile,
        options: PprofEncoder.Options = .init()
    ) throws
        -> Perftools_Profiles_Profile
    {
        let gzipped = try PprofEncoder.encodeGzipped(profile, options: options)
        #expect(Gzip.isCompressed(gzipped))
        let raw = try Gzip.decompress(gzipped)
        #expect(raw == (try PprofEncoder.encode(profile, options: options)))
        return try Perftools_Profiles_Profile(pprof: gzipped)
    }

    @Test("round trip: header, sample types, period, time and totals")
    func roundTrip() throws {
        let profile = Fixtures.small()
        let decoded = try self.decode(profile)
        let strings = decoded.stringTable
        #expect(strings.first == "")
        #expect(Set(strings).count == strings.count, "strings are interned once")

        #expect(
            decoded.sampleType.map { [strings[Int($0.type)], strings[Int($0.unit)]] } == [
                ["samples", "count"], ["cpu", "nanoseconds"],
            ]
        )
        #expect(strings[Int(decoded.periodType.type)] == "cpu")
        #expect(strings[Int(decoded.periodType.unit)] == "nanoseconds")
        #expect(decoded.period == 10_101_010)  // 1e9 / 99
        #expect(profile.periodNanoseconds == 10_101_010)
        #expect(strings[Int(decoded.defaultSampleType)] == "cpu")
        #expect(decoded.timeNanos == 1_764_076_562_000_000_000)
        #expect(decoded.durationNanos == 10_000_000_000)

        #expect(decoded.sample.count == profile.samples.count)
        #expect(decoded.sample.allSatisfy { $0.value.count == 2 && $0.value[1] == $0.value[0] * decoded.period })
        #expect(decoded.sample.reduce(0) { $0 + $1.value[0] } == 1000)
        #expect(decoded.sample.reduce(0) { $0 + $1.value[1] } == 1000 * 10_101_010)
    }

    @Test("every id is valid and locations, functions and mappings are deduplicated")
    func referentialIntegrity() throws {
        let decoded = try self.decode(Fixtures.small())
        let strings = decoded.stringTable
        let locationIDs = Set(decoded.location.map(\.id))
        let functionIDs = Set(decoded.function.map(\.id))
        let mappingIDs = Set(decoded.mapping.map(\.id))
        #expect(locationIDs.count == decoded.location.count && !locationIDs.contains(0))
        #expect(functionIDs.count == decoded.function.count && !functionIDs.contains(0))
        #expect(mappingIDs.count == decoded.mapping.count && !mappingIDs.contains(0))
        #expect(locationIDs == Set(1...UInt64(decoded.location.count)))

        for sample in decoded.sample {
            #expect(!sample.locationID.isEmpty)
            #expect(sample.locationID.allSatisfy(locationIDs.contains))
        }
        for location in decoded.location {
            #expect(mappingIDs.contains(location.mappingID), "every location is linked to a mapping")
            #expect(location.line.count == 1)
            #expect(functionIDs.contains(location.line[0].functionID))
            let mapping = try #require(decoded.mapping.first { $0.id == location.mappingID })
            #expect(location.address >= mapping.memoryStart && location.address < mapping.memoryLimit)
        }
        for function in decoded.function {
            #expect(Int(function.name) < strings.count)
        }
        // One location per distinct (mapping, address): 12 distinct frames in the fixture.
        let keys = Set(decoded.location.map { "\($0.mappingID)/\($0.address)" })
        #expect(keys.count == decoded.location.count)
        #expect(decoded.location.count == 12)
        // Names are unique among functions.
        let names = decoded.function.map { strings[Int($0.name)] }
        #expect(Set(names).count == names.count)
        #expect(names.contains("CheckoutAPI.Pricing.total(for:)"))
        #expect(names.contains("jit-1234.so+0x1234"))

        // The leaf comes first: the first sample's leaf is Pricing.total(for:).
        let leaf = try #require(decoded.location.first { $0.id == decoded.sample[0].locationID[0] })
        let leafFunction = try #require(decoded.function.first { $0.id == leaf.line[0].functionID })
        #expect(strings[Int(leafFunction.name)] == "CheckoutAPI.Pricing.total(for:)")
    }

    @Test("mappings carry build ids; the kernel and unknown modules get mappings of their own")
    func mappings() throws {
        let decoded = try self.decode(Fixtures.small())
        let strings = decoded.stringTable
        func mapping(_ file: String) throws -> Perftools_Profiles_Mapping {
            try #require(decoded.mapping.first { strings[Int($0.filename)] == file })
        }
        #expect(decoded.mapping.count == 4)
        #expect(strings[Int(decoded.mapping[0].filename)] == Fixtures.appPath, "the main binary is mapping[0]")

        let app = try mapping(Fixtures.appPath)
        #expect(strings[Int(app.buildID)] == Fixtures.appBuildID)
        #expect(app.memoryStart == 0x40_0000 && app.memoryLimit == 0x50_0000)
        #expect(app.hasFunctions_p)

        let libc = try mapping(Fixtures.libcPath)
        #expect(strings[Int(libc.buildID)] == Fixtures.libcBuildID)
        #expect(libc.fileOffset == 0x2_8000)
        #expect(libc.hasFunctions_p)

        let kernel = try mapping("[kernel.kallsyms]")
        #expect(kernel.memoryStart == 0xffff_ffff_8100_0000)
        #expect(kernel.memoryLimit == 0xffff_ffff_8100_2001)
        #expect(kernel.hasFunctions_p)
        let kernelLocations = decoded.location.filter { $0.mappingID == kernel.id }
        #expect(kernelLocations.count == 3)

        let jit = try mapping("/tmp/jit-1234.so")
        #expect(!jit.hasFunctions_p, "unresolved frames leave has_functions false for a server-side symbolizer")
    }

    @Test("frames outside every mapping of their file still land in a mapping")
    func framesOutsideMappings() throws {
        let lib = "/usr/lib/libx.so"
        let frames = [0x1000, 0x2500, 0x9000].map { ProfileFrame(function: "f\($0)", module: lib, address: UInt64($0)) }
        let profile = CPUProfile(
            startTime: Fixtures.start,
            duration: .seconds(1),
            frequency: 99,
            samples: [ProfileSample(frames: frames, count: 1)],
            mappings: [
                ProfileMapping(start: 0x1000, limit: 0x2000, file: lib, buildID: "ab"),
                ProfileMapping(start: 0x3000, limit: 0x4000, fileOffset: 0x2000, file: lib, buildID: "ab"),
            ]
        )
        let decoded = try self.decode(profile)
        #expect(decoded.location.allSatisfy { $0.mappingID != 0 })
        #expect(decoded.mapping.count == 3, "two given, one derived for 0x2500 and 0x9000")
        for location in decoded.location {
            let mapping = try #require(decoded.mapping.first { $0.id == location.mappingID })
            #expect(location.address >= mapping.memoryStart && location.address < mapping.memoryLimit)
        }
    }

    @Test("string labels, and numeric labels with their own keys")
    func labels() throws {
        let decoded = try self.decode(Fixtures.small())
        let strings = decoded.stringTable
        for sample in decoded.sample {
            var stringLabels: [String: String] = [:]
            for label in sample.label where label.str != 0 {
                stringLabels[strings[Int(label.key)]] = strings[Int(label.str)]
            }
            #expect(stringLabels == Fixtures.labels)
        }
        let kernelSample = decoded.sample[2]
        let tid = try #require(kernelSample.label.first { strings[Int($0.key)] == "tid" })
        #expect(tid.num == 4243 && tid.str == 0)
    }

    @Test("cpuOnly writes the legacy Pyroscope eBPF layout")
    func cpuOnly() throws {
        let profile = Fixtures.small()
        let decoded = try self.decode(profile, options: .init(sampleTypes: .cpuOnly, comments: ["hearth test"]))
        let strings = decoded.stringTable
        #expect(decoded.sampleType.map { strings[Int($0.type)] } == ["cpu"])
        #expect(decoded.sample.allSatisfy { $0.value.count == 1 })
        #expect(decoded.sample.reduce(0) { $0 + $1.value[0] } == profile.totalSamples * profile.periodNanoseconds)
        #expect(decoded.comment.map { strings[Int($0)] } == ["hearth test"])
    }

    @Test("samples with no count are dropped; an empty profile is still valid")
    func edgeCases() throws {
        var profile = Fixtures.small()
        profile.samples.append(ProfileSample(frames: [Fixtures.main], count: 0))
        #expect(try self.decode(profile).sample.count == Fixtures.small().samples.count)

        profile.samples.append(ProfileSample(frames: [Fixtures.main], count: -5))
        #expect(profile.totalSamples == 1000, "non-positive counts are ignored")
        #expect(try self.decode(profile).sample.count == Fixtures.small().samples.count)

        let nameless = CPUProfile(
            startTime: Fixtures.start,
            duration: .seconds(1),
            frequency: 99,
            samples: [ProfileSample(frames: [ProfileFrame(function: "", module: "/bin/x", address: 1)], count: 1)]
        )
        let namelessDecoded = try self.decode(nameless)
        #expect(namelessDecoded.stringTable[Int(namelessDecoded.function[0].name)] == "[unknown]")
        #expect(FoldedStacks.render(nameless) == "[unknown] 1\n")
        #expect(TopFunctions.compute(nameless, limit: 1).first?.function == "[unknown]")

        let empty = CPUProfile(startTime: Fixtures.start, duration: .milliseconds(1500), frequency: 19, samples: [])
        let decoded = try self.decode(empty)
        #expect(decoded.stringTable.first == "")
        #expect(decoded.sample.isEmpty && decoded.location.isEmpty && decoded.mapping.isEmpty)
        #expect(decoded.period == 52_631_578)
        #expect(decoded.durationNanos == 1_500_000_000)
    }

    @Test("100,000 samples over 20,000 stacks encode with shared locations")
    func large() throws {
        let profile = Fixtures.large()
        #expect(profile.totalSamples == 100_000)
        let decoded = try self.decode(profile)
        #expect(decoded.sample.reduce(0) { $0 + $1.value[0] } == 100_000)
        struct Key: Hashable {
            var module: String
            var address: UInt64
        }
        let distinct = Set(profile.samples.flatMap { $0.frames.map { Key(module: $0.module, address: $0.address) } })
        #expect(decoded.location.count == distinct.count, "one location per distinct frame, shared between stacks")
        let locationIDs = Set(decoded.location.map(\.id))
        #expect(decoded.sample.allSatisfy { $0.locationID.allSatisfy(locationIDs.contains) })
    }
}
