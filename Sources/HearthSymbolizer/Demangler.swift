// Demangler.swift: mangled symbol names made readable: Swift through the runtime's own demangler, C++ through
// `__cxa_demangle`, Rust legacy here (Rust v0 in Demangler+RustV0.swift); anything else is returned unchanged.

internal import CDemangle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The Swift runtime's demangler (`swift/Demangling/Demangle.h`, exported by libswiftCore).
/// Returns a `malloc`'d string when `outputBuffer` is nil, or nil when the name isn't a Swift symbol.
@_silgen_name("swift_demangle")
private func _swiftDemangle(
    _ mangledName: UnsafePointer<CChar>?,
    _ mangledNameLength: Int,
    _ outputBuffer: UnsafeMutablePointer<CChar>?,
    _ outputBufferSize: UnsafeMutablePointer<Int>?,
    _ flags: UInt32
) -> UnsafeMutablePointer<CChar>?

/// Turns mangled symbol names into readable ones.
///
/// - Swift (`$s…`, `$S…`, `_$s…`, `_$S…`, `$e…`, `_T0…`): the Swift runtime's own demangler, so the result
///   matches what the toolchain prints (`static Foo.bar(x: Swift.Int) -> Swift.String`).
/// - Rust legacy (`_ZN…17h<16 hex digits>E`): the path joined with `::`, the hash dropped and the `$…$`
///   escapes decoded (`core::fmt::Write::write_fmt`, `<alloc::vec::Vec<T> as core::ops::Drop>::drop`).
/// - Rust v0 (`_R…`): printed as `rustc-demangle` does without crate hashes
///   (`<mycrate::Wrapper<u32> as mycrate::Greeter>::greet`, `mycrate::main::{closure#0}`).
/// - C++ Itanium ABI (`_Z…`): the C++ runtime's `__cxa_demangle` (`foo::bar()`).
/// - Anything else, or a name a demangler rejects, is returned unchanged.
///
/// Names come from binaries the agent doesn't control, and the C++ and Swift demanglers are recursive, so
/// names longer than ``maximumLength`` bytes are returned unchanged rather than risk a deep recursion.
public enum Demangler {
    /// The longest name handed to a demangler, in UTF-8 bytes.
    public static let maximumLength = 8192

    /// Demangles `symbol`, or returns it unchanged when it isn't a recognised mangled name.
    public static func demangle(_ symbol: String) -> String {
        guard symbol.utf8.count <= Self.maximumLength else {
            return symbol
        }
        if Self.isSwift(symbol) {
            return Self.demangleSwift(symbol) ?? symbol
        }
        if let rust = Self.demangleRustLegacy(symbol) {
            return rust
        }
        if symbol.hasPrefix("_R") || symbol.hasPrefix("__R") {
            return Self.demangleRustV0(symbol) ?? symbol
        }
        if symbol.hasPrefix("_Z") {
            return Self.demangleCxx(symbol) ?? symbol
        }
        return symbol
    }

    static func isSwift(_ symbol: String) -> Bool {
        symbol.hasPrefix("$s") || symbol.hasPrefix("$S") || symbol.hasPrefix("_$s") || symbol.hasPrefix("_$S")
            || symbol.hasPrefix("$e") || symbol.hasPrefix("_$e") || symbol.hasPrefix("_T0")
    }

    static func demangleSwift(_ symbol: String) -> String? {
        var symbol = symbol
        return symbol.withUTF8 { utf8 -> String? in
            utf8.withMemoryRebound(to: CChar.self) { chars -> String? in
                guard let result = _swiftDemangle(chars.baseAddress, chars.count, nil, nil, 0) else {
                    return nil
                }
                defer { free(result) }
                return String(cString: result)
            }
        }
    }

    static func demangleCxx(_ symbol: String) -> String? {
        guard let result = CDemangle_cxx(symbol) else {
            return nil
        }
        defer { free(result) }
        return String(cString: result)
    }

    /// Demangles a Rust "legacy" symbol: `_ZN` + length-prefixed path components + `E`, whose last
    /// component is `h` + 16 hex digits. A trailing `.llvm.…` or similar suffix is ignored. Returns nil for
    /// anything that doesn't have exactly that shape.
    static func demangleRustLegacy(_ symbol: String) -> String? {
        var bytes = Array(symbol.utf8)
        if bytes.starts(with: Array("__ZN".utf8)) {
            bytes.removeFirst(3)
        } else if bytes.starts(with: Array("_ZN".utf8)) {
            bytes.removeFirst(3)
        } else if bytes.starts(with: Array("ZN".utf8)) {
            bytes.removeFirst(2)
        } else {
            return nil
        }
        var components: [ArraySlice<UInt8>] = []
        var position = 0
        while true {
            guard position < bytes.count else {
                return nil
            }
            if bytes[position] == UInt8(ascii: "E") {
                position += 1
                break
            }
            var length = 0
            var digits = 0
            while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 {
                length = length * 10 + Int(bytes[position] - 0x30)
                position += 1
                digits += 1
                guard digits <= 6 else {
                    return nil
                }
            }
            guard digits > 0, length > 0, length <= bytes.count - position else {
                return nil
            }
            components.append(bytes[position..<position + length])
            position += length
        }
        // Anything after the `E` must be a compiler suffix such as `.llvm.123`.
        guard position == bytes.count || bytes[position] == UInt8(ascii: ".") else {
            return nil
        }
        guard let hash = components.last, Self.isRustHash(hash), components.count >= 2 else {
            return nil
        }
        var parts: [String] = []
        for component in components.dropLast() {
            guard let decoded = Self.decodeRustComponent(component) else {
                return nil
            }
            parts.append(decoded)
        }
        return parts.joined(separator: "::")
    }

    private static func isRustHash(_ component: ArraySlice<UInt8>) -> Bool {
        guard component.count == 17, component.first == UInt8(ascii: "h") else {
            return false
        }
        return component.dropFirst().allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66)
        }
    }

    private static let rustEscapes: [String: String] = [
        "SP": "@", "BP": "*", "RF": "&", "LT": "<", "GT": ">", "LP": "(", "RP": ")", "C": ",",
    ]

    private static func decodeRustComponent(_ component: ArraySlice<UInt8>) -> String? {
        var input = component
        // A leading `_$` marks a component that would otherwise start with `$`.
        if input.starts(with: Array("_$".utf8)) {
            input = input.dropFirst()
        }
        var output = ""
        var index = input.startIndex
        while index < input.endIndex {
            let byte = input[index]
            if byte == UInt8(ascii: "$") {
                guard let close = input[(index + 1)...].firstIndex(of: UInt8(ascii: "$")) else {
                    return nil
                }
                let escape = String(decoding: input[(index + 1)..<close], as: UTF8.self)
                if let replacement = Self.rustEscapes[escape] {
                    output += replacement
                } else if escape.hasPrefix("u"), let value = UInt32(escape.dropFirst(), radix: 16),
                    let scalar = Unicode.Scalar(value)
                {
                    output.unicodeScalars.append(scalar)
                } else {
                    return nil
                }
                index = close + 1
            } else if byte == UInt8(ascii: "."), index + 1 < input.endIndex, input[index + 1] == UInt8(ascii: ".") {
                output += "::"
                index += 2
            } else {
                output.unicodeScalars.append(Unicode.Scalar(byte))
                index += 1
            }
        }
        return output
    }
}
