// plugin.swift: the build tool plugin that compiles each of a target's `bpf/*.bpf.c` programs with clang
// (`-target bpf`) and embeds the object in a generated Swift file through `hearth-embed`.

import Foundation
import PackagePlugin

/// Compiles the target's BPF C program with the toolchain's clang (`-target bpf`) and embeds the object in a
/// generated Swift file, so the program is built from source on every build and nothing prebuilt is committed.
@main
struct BPFCompilerPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let bpfDirectory = target.directoryURL.appending(path: "bpf")
        let sharedHeaders = context.package.directoryURL.appending(path: "Sources/CLibbpf")
        let sources = try FileManager.default.contentsOfDirectory(atPath: bpfDirectory.path())
            .filter { $0.hasSuffix(".bpf.c") }
            .sorted()
        // The programs' own headers (bpf/*.h) and the one shared with Swift: a change to any rebuilds them.
        let localHeaders = try FileManager.default.contentsOfDirectory(atPath: bpfDirectory.path())
            .filter { $0.hasSuffix(".h") }
            .sorted()
            .map { bpfDirectory.appending(path: $0) }
        let headers = [sharedHeaders.appending(path: "hearth_sampler_types.h")] + localHeaders
        let clang = try context.tool(named: "clang").url
        let embed = try context.tool(named: "hearth-embed").url

        var commands: [Command] = []
        for source in sources {
            let name = String(source.dropLast(".bpf.c".count))
            let input = bpfDirectory.appending(path: source)
            let object = context.pluginWorkDirectoryURL.appending(path: "\(name).bpf.o")
            let swiftFile = context.pluginWorkDirectoryURL.appending(path: "\(name)+Object.swift")
            commands.append(
                .buildCommand(
                    displayName: "Compiling BPF program \(source)",
                    executable: clang,
                    arguments: [
                        "-O2", "-g", "-target", "bpf", "-Wall", "-Werror",
                        "-I\(Self.multiarchIncludeDirectory)", "-I\(sharedHeaders.path())",
                        "-c", input.path(), "-o", object.path(),
                    ],
                    inputFiles: [input] + headers,
                    outputFiles: [object]
                )
            )
            commands.append(
                .buildCommand(
                    displayName: "Embedding BPF object \(name).bpf.o",
                    executable: embed,
                    arguments: ["bpf", object.path(), swiftFile.path(), name],
                    inputFiles: [object],
                    outputFiles: [swiftFile]
                )
            )
        }
        return commands
    }

    /// Debian keeps the kernel's asm/ headers in a per-architecture folder.
    static var multiarchIncludeDirectory: String {
        #if arch(x86_64)
        return "/usr/include/x86_64-linux-gnu"
        #elseif arch(arm64)
        return "/usr/include/aarch64-linux-gnu"
        #else
        return "/usr/include"
        #endif
    }
}
