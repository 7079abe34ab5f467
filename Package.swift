// swift-tools-version:6.2
import PackageDescription

// Dependencies, named once.
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let swiftProtobuf: Target.Dependency = .product(name: "SwiftProtobuf", package: "swift-protobuf")

let package = Package(
    name: "Hearth",
    products: [
        .executable(name: "hearth-agent", targets: ["hearth-agent"]),
        .library(name: "HearthSampler", targets: ["HearthSampler"]),
        .library(name: "HearthSymbolizer", targets: ["HearthSymbolizer"]),
        .library(name: "HearthProfile", targets: ["HearthProfile"]),
        .library(name: "HearthAgent", targets: ["HearthAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // MARK: Node agent: eBPF sampling, symbolization, profiles

        .systemLibrary(
            name: "CLibbpf",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev", "libelf-dev", "zlib1g-dev"])]
        ),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "CDemangle",
            linkerSettings: [.linkedLibrary("stdc++")]
        ),
        .executableTarget(name: "hearth-bpf-embed", path: "Plugins/Tools/hearth-bpf-embed"),
        .plugin(
            name: "BPFCompilerPlugin",
            capability: .buildTool(),
            dependencies: ["hearth-bpf-embed"]
        ),
        .target(
            name: "HearthBPF",
            exclude: ["bpf"],
            plugins: ["BPFCompilerPlugin"]
        ),
        .target(
            name: "HearthSampler",
            dependencies: ["CLibbpf", "HearthBPF", logging]
        ),
        .target(
            name: "HearthSymbolizer",
            dependencies: ["CDemangle", logging]
        ),
        .target(
            name: "HearthProfile",
            dependencies: ["CZlib", swiftProtobuf],
            exclude: ["Generated/profile.proto"]
        ),
        .target(
            name: "HearthAgent",
            dependencies: ["HearthSampler", "HearthSymbolizer", "HearthProfile", logging]
        ),
        .executableTarget(
            name: "hearth-agent",
            dependencies: ["HearthAgent", "HearthSampler", "HearthProfile", argumentParser, logging]
        ),

        // Workloads with known call chains, profiled by the end-to-end tests.
        .executableTarget(
            name: "hearth-workload-swift",
            path: "Tests/Workloads/hearth-workload-swift"
        ),

        // Child processes, build products and external tools (go tool pprof) for the tests.
        .target(name: "HearthTestSupport", path: "Tests/HearthTestSupport"),
        .testTarget(name: "HearthSamplerTests", dependencies: ["HearthSampler", "HearthTestSupport"]),
        .testTarget(name: "HearthSymbolizerTests", dependencies: ["HearthSymbolizer"]),
        .testTarget(name: "HearthProfileTests", dependencies: ["HearthProfile", "HearthTestSupport"]),
        .testTarget(
            name: "HearthAgentTests",
            dependencies: ["HearthAgent", "HearthSampler", "HearthSymbolizer", "HearthProfile", "HearthTestSupport"],
            exclude: ["Fixtures"]
        ),
    ]
)

// --- Shared settings for every target ---
for target in package.targets where target.type != .system && target.type != .plugin {
    var settings = target.swiftSettings ?? []
    settings.append(contentsOf: [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
        .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
    ])
    target.swiftSettings = settings
}
