// SystemLibraries.swift: where the real libraries the tests compile (libc, libstdc++, the Swift runtime) live.

import Foundation

enum SystemLibraries {
    static let libc = "/lib/x86_64-linux-gnu/libc.so.6"
    static let libstdcxx = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"

    /// `libswiftCore.so` of the toolchain running the tests: `$(dirname $(readlink -f $(which swift)))/../lib/...`.
    static var libswiftCore: String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/swift"
            guard FileManager.default.isExecutableFile(atPath: candidate) else { continue }
            let resolved = URL(fileURLWithPath: candidate).resolvingSymlinksInPath().deletingLastPathComponent()
            let library = resolved.appendingPathComponent("../lib/swift/linux/libswiftCore.so").standardized.path
            if FileManager.default.fileExists(atPath: library) {
                return library
            }
        }
        return "/opt/swift/usr/lib/swift/linux/libswiftCore.so"
    }
}
