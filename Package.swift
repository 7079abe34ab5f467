// swift-tools-version:6.2
import PackageDescription

// Dependencies, named once.
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let swiftProtobuf: Target.Dependency = .product(name: "SwiftProtobuf", package: "swift-protobuf")

// MARK: Kubernetes layer: dependencies, named once
let asyncHTTPClient: Target.Dependency = .product(name: "AsyncHTTPClient", package: "async-http-client")
let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let nioHTTP1: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let nioFoundationCompat: Target.Dependency = .product(name: "NIOFoundationCompat", package: "swift-nio")
let nioSSL: Target.Dependency = .product(name: "NIOSSL", package: "swift-nio-ssl")
let serviceLifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let metrics: Target.Dependency = .product(name: "Metrics", package: "swift-metrics")
let metricsTestKit: Target.Dependency = .product(name: "MetricsTestKit", package: "swift-metrics")
let yams: Target.Dependency = .product(name: "Yams", package: "Yams")
let prometheus: Target.Dependency = .product(name: "Prometheus", package: "swift-prometheus")
let crypto: Target.Dependency = .product(name: "Crypto", package: "swift-crypto")
let cryptoExtras: Target.Dependency = .product(name: "CryptoExtras", package: "swift-crypto")

let package = Package(
    name: "Hearth",
    products: [
        .executable(name: "hearth-agent", targets: ["hearth-agent"]),
        .library(name: "HearthSampler", targets: ["HearthSampler"]),
        .library(name: "HearthELF", targets: ["HearthELF"]),
        .library(name: "HearthSymbolizer", targets: ["HearthSymbolizer"]),
        .library(name: "HearthProfile", targets: ["HearthProfile"]),
        .library(name: "HearthAgent", targets: ["HearthAgent"]),
        .library(name: "HearthUnwind", targets: ["HearthUnwind"]),
        // MARK: Kubernetes layer
        .library(name: "HearthJSON", targets: ["HearthJSON"]),
        .library(name: "KubeModel", targets: ["KubeModel"]),
        .library(name: "KubeClient", targets: ["KubeClient"]),
        .library(name: "KubeRuntime", targets: ["KubeRuntime"]),
        .library(name: "KubeTestServer", targets: ["KubeTestServer"]),
        .executable(name: "kube-test-server", targets: ["kube-test-server"]),
        // MARK: Operator
        .library(name: "HearthAPI", targets: ["HearthAPI"]),
        .library(name: "HearthOperator", targets: ["HearthOperator"]),
        .library(name: "GrafanaClient", targets: ["GrafanaClient"]),
        .executable(name: "hearth-operator", targets: ["hearth-operator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // MARK: Kubernetes layer
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Already in the graph (through async-http-client); the operator's digests (SHA-256, PBKDF2).
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // MARK: Node agent: eBPF sampling, symbolization, profiles

        .systemLibrary(
            name: "CLibbpf",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev", "libelf-dev", "zlib1g-dev"])]
        ),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMalloc"),
        .systemLibrary(name: "CSystemCalls"),
        .target(
            name: "CDemangle",
            linkerSettings: [.linkedLibrary("stdc++")]
        ),
        .executableTarget(name: "hearth-embed", path: "Plugins/Tools/hearth-embed"),
        .plugin(
            name: "BPFCompilerPlugin",
            capability: .buildTool(),
            dependencies: ["hearth-embed"]
        ),
        .plugin(
            name: "TextEmbedPlugin",
            capability: .buildTool(),
            dependencies: ["hearth-embed"]
        ),
        .target(
            name: "HearthBPF",
            exclude: ["bpf"],
            plugins: ["BPFCompilerPlugin"]
        ),
        .target(
            name: "HearthSampler",
            dependencies: ["CLibbpf", "HearthBase", "HearthBPF", "HearthUnwind", "HearthELF", logging]
        ),
        // Files a workload names, read as hostile input: the ELF reader (sections, symbol tables, MiniDebugInfo),
        // /proc/PID/maps, file identity, opening inside a process's root, reads with a deadline.
        .target(
            name: "HearthELF",
            dependencies: ["CSystemCalls", "HearthBase"]
        ),
        // Addresses to names: the ELF symbol tables, perf maps and kallsyms, demangled, behind a byte budget.
        .target(
            name: "HearthSymbolizer",
            dependencies: ["HearthELF", "CDemangle", logging]
        ),
        // Call frame information (.eh_frame, .debug_frame) compiled into unwind tables for the BPF unwinder.
        .target(
            name: "HearthUnwind",
            dependencies: ["HearthBase", "HearthELF", logging]
        ),
        .target(
            name: "HearthProfile",
            dependencies: ["CZlib", "HearthBase", swiftProtobuf],
            exclude: ["Generated/profile.proto", "Templates"],
            plugins: ["TextEmbedPlugin"]
        ),
        .target(
            name: "HearthAgent",
            dependencies: [
                "HearthBase", "HearthSampler", "HearthELF", "HearthSymbolizer", "HearthProfile", "HearthAPI",
                "KubeModel", "KubeClient", "KubeRuntime", asyncHTTPClient, swiftProtobuf, nioCore, nioHTTP1,
                serviceLifecycle, metrics, logging,
            ],
            exclude: ["Generated/push.proto", "Generated/types.proto"]
        ),
        .executableTarget(
            name: "hearth-agent",
            dependencies: [
                "HearthAgent", "HearthBase", "HearthSampler", "HearthSymbolizer", "HearthProfile", "HearthAPI",
                "HearthTelemetry", "KubeClient",
                "CMalloc",
                argumentParser, serviceLifecycle, .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                metrics, logging,
            ]
        ),

        // Workloads with known call chains, profiled by the end-to-end tests.
        .executableTarget(
            name: "hearth-workload-swift",
            path: "Tests/Workloads/hearth-workload-swift"
        ),

        // MARK: Kubernetes layer: model, client, controller runtime, in-memory API server

        // What every layer shares: the CodedError protocol and Duration in other units.
        .target(name: "HearthBase"),
        .testTarget(name: "HearthBaseTests", dependencies: ["HearthBase"]),

        // A Sendable JSON tree, its parser and typed views over it; no dependencies (GrafanaClient needs only this).
        .target(name: "HearthJSON"),
        .target(name: "KubeModel", dependencies: ["HearthJSON"]),
        .target(
            name: "KubeClient",
            dependencies: [
                "HearthBase", "KubeModel", asyncHTTPClient, nioCore, nioPosix, nioHTTP1, nioFoundationCompat, nioSSL,
                yams, metrics, serviceLifecycle, logging,
            ]
        ),
        .target(
            name: "KubeRuntime",
            dependencies: [
                "HearthBase", "KubeModel", "KubeClient", serviceLifecycle, metrics, logging,
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "KubeTestServer",
            dependencies: ["KubeModel", nioCore, nioPosix, nioHTTP1, nioFoundationCompat, yams, logging]
        ),
        .executableTarget(
            name: "kube-test-server",
            dependencies: ["KubeTestServer", logging]
        ),
        .executableTarget(
            name: "kube-bench",
            dependencies: ["HearthBase", "KubeModel", "KubeClient", "KubeRuntime", "KubeTestServer", logging]
        ),
        .testTarget(name: "KubeModelTests", dependencies: ["KubeModel"]),
        .testTarget(
            name: "KubeTests",
            dependencies: [
                "KubeModel", "KubeClient", "KubeRuntime", "KubeTestServer", "HearthTestSupport", serviceLifecycle,
                metrics, metricsTestKit, nioHTTP1, nioPosix, logging,
            ]
        ),

        // MARK: Telemetry shared by the operator and the agent: /metrics, /healthz, /readyz

        .target(
            name: "HearthTelemetry",
            dependencies: [nioCore, nioPosix, nioHTTP1, serviceLifecycle, metrics, prometheus, logging]
        ),
        .testTarget(name: "HearthTelemetryTests", dependencies: ["HearthTelemetry", metrics]),

        // MARK: Operator: ProfilingTarget API (source of truth for crds/), reconcilers, the hearth-operator command

        .target(name: "HearthAPI", dependencies: ["KubeModel"]),
        // Grafana's datasource HTTP API (the operator provisions the Pyroscope datasource through it).
        .target(
            name: "GrafanaClient",
            dependencies: [
                "HearthBase", "HearthJSON", asyncHTTPClient, nioCore, nioHTTP1, nioFoundationCompat, metrics,
            ]
        ),
        .target(
            name: "HearthOperator",
            dependencies: [
                "GrafanaClient", "HearthAPI", "HearthBase", "HearthTelemetry", "KubeModel", "KubeClient",
                "KubeRuntime", asyncHTTPClient, nioCore, nioHTTP1, serviceLifecycle, metrics, logging, yams, crypto,
                cryptoExtras,
            ]
        ),
        .executableTarget(
            name: "hearth-operator",
            dependencies: [
                "HearthAPI", "HearthOperator", "HearthTelemetry", "KubeModel", "KubeClient", "KubeRuntime", "CMalloc",
                argumentParser,
                serviceLifecycle, .product(name: "UnixSignals", package: "swift-service-lifecycle"), metrics, logging,
            ]
        ),
        .testTarget(name: "HearthAPITests", dependencies: ["HearthAPI", "KubeModel"]),
        .testTarget(
            name: "HearthOperatorTests",
            dependencies: [
                "HearthAPI", "HearthOperator", "GrafanaClient", "GrafanaTestServer", "KubeModel", "KubeClient",
                "KubeRuntime", "KubeTestServer", "HearthTestSupport", logging, metrics, metricsTestKit, nioCore,
                nioPosix, nioHTTP1, serviceLifecycle,
                asyncHTTPClient,
            ]
        ),

        // MARK: Pyroscope test receiver: the documented push/ingest API and server-side validation, for tests and
        // benchmarks (Pyroscope itself cannot run here).
        // HTTP/1.1 plumbing shared by the test doubles (binding, keep-alive, bodies, clean stop).
        .target(
            name: "HTTPTestServing",
            dependencies: [nioCore, nioPosix, nioHTTP1, logging]
        ),
        .target(
            name: "PyroscopeTestServer",
            dependencies: [
                "HTTPTestServing", "CZlib", "HearthBase", nioCore, nioPosix, nioHTTP1, nioFoundationCompat, logging,
            ]
        ),
        .executableTarget(
            name: "pyroscope-test-server",
            dependencies: ["PyroscopeTestServer", "HTTPTestServing", argumentParser, logging]
        ),
        .testTarget(
            name: "PyroscopeTestServerTests",
            dependencies: ["PyroscopeTestServer", "HearthProfile", asyncHTTPClient, nioCore, nioHTTP1]
        ),

        // MARK: Grafana test server: the documented datasource API (status codes, versions, read-only datasources,
        // secrets never returned), for tests (Grafana itself cannot run here).
        .target(
            name: "GrafanaTestServer",
            dependencies: ["HTTPTestServing", "HearthJSON", nioHTTP1, logging]
        ),
        .executableTarget(
            name: "grafana-test-server",
            dependencies: ["GrafanaTestServer", "HTTPTestServing", argumentParser, logging]
        ),

        // MARK: Node agent tests
        // Child processes, build products and external tools (go tool pprof) for the tests.
        .target(name: "HearthTestSupport", dependencies: ["KubeClient", logging], path: "Tests/HearthTestSupport"),
        .testTarget(
            name: "HearthSamplerTests",
            dependencies: ["HearthSampler", "HearthELF", "HearthSymbolizer", "HearthTestSupport", logging],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "HearthSymbolizerTests",
            dependencies: ["HearthELF", "HearthSymbolizer", "HearthTestSupport"]
        ),
        .testTarget(
            name: "HearthUnwindTests",
            dependencies: ["HearthUnwind", "HearthELF", "HearthTestSupport"]
        ),
        .testTarget(name: "HearthProfileTests", dependencies: ["HearthProfile", "HearthTestSupport"]),
        .testTarget(
            name: "HearthAgentTests",
            dependencies: [
                "HearthAgent", "HearthSampler", "HearthELF", "HearthSymbolizer", "HearthProfile", "HearthTestSupport",
                "HearthAPI", "KubeModel", "KubeRuntime", "HearthOperator", "PyroscopeTestServer", asyncHTTPClient,
                logging, metrics,
                metricsTestKit,
                serviceLifecycle,
            ],
            exclude: ["Fixtures"]
        ),
        // The agent's command line: the operator renders the DaemonSet, the agent's own parser reads its args.
        .testTarget(
            name: "HearthAgentCommandTests",
            dependencies: ["hearth-agent", "HearthAPI", "HearthOperator", "KubeModel", argumentParser]
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
