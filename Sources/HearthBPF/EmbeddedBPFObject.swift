// EmbeddedBPFObject.swift: the type of the BPF objects the build compiles from `bpf/*.bpf.c` and embeds as base64
// (the generated extensions add one static property per program), decoded to the ELF bytes on use.

import Foundation

/// A BPF object file compiled from `Sources/HearthBPF/bpf/*.bpf.c` by the package build and embedded here.
public struct EmbeddedBPFObject: Sendable {
    /// The object's name, as libbpf reports it in its messages.
    public let name: String
    private let base64: String

    init(name: String, base64: String) {
        self.name = name
        self.base64 = base64
    }

    /// The ELF object's bytes.
    public var bytes: [UInt8] {
        // The literal comes from the build; failing to decode it would be a build bug, not a runtime error.
        guard let data = Data(base64Encoded: self.base64) else {
            fatalError("embedded BPF object \(self.name) is not valid base64")
        }
        return [UInt8](data)
    }
}
