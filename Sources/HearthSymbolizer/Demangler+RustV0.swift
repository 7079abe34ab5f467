// Demangler+RustV0.swift: the Rust v0 demangler (`_R…`, RFC 2603), printed as `rustc-demangle` does without crate
// hashes: a recursive-descent parser whose depth, output and work are bounded against hostile names.

extension Demangler {
    /// Demangles a Rust "v0" symbol (`_R…`, RFC 2603; rustc's default mangling in recent releases) the way
    /// `rustc-demangle` prints it in its alternate form: crate disambiguators (hashes) left out, so
    /// `_RNvNtCs1234_7mycrate3foo3bar` reads `mycrate::foo::bar`. Returns nil for anything malformed or
    /// unsupported (punycode identifiers, structured constants), so the caller keeps the mangled name.
    static func demangleRustV0(_ symbol: String) -> String? {
        var bytes = Array(symbol.utf8)
        if bytes.starts(with: Array("__R".utf8)) {
            bytes.removeFirst(1)
        }
        guard bytes.starts(with: Array("_R".utf8)) else {
            return nil
        }
        var printer = RustV0Printer(bytes: Array(bytes.dropFirst(2)))
        return printer.demangle()
    }
}

/// A recursive-descent parser that prints while it parses, following the grammar of RFC 2603 and
/// `rustc-demangle`'s `v0.rs`. Hostile input is bounded three ways: backreferences must point backwards,
/// recursion is limited to ``maximumDepth``, output to ``maximumOutput`` bytes, and work to ``maximumSteps``
/// grammar productions (backreferences inside a skipped `impl` path could otherwise re-parse exponentially
/// without printing anything).
private struct RustV0Printer {
    private struct Failure: Error {}

    static let maximumDepth = 300
    static let maximumOutput = 1 << 16
    static let maximumSteps = 1 << 18

    let bytes: [UInt8]
    private var position = 0
    private var output = ""
    private var depth = 0
    private var steps = 0
    /// How many lifetimes enclosing `for<…>` binders have bound, for naming `'a`, `'b`, ….
    private var boundLifetimes = 0
    /// While > 0, parse without printing (the path of an `impl`, which the output leaves out).
    private var skipping = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    mutating func demangle() -> String? {
        do {
            // An optional encoding version, as a decimal number; only version 0 (absent) exists.
            if let first = self.peek(), first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") {
                return nil
            }
            try self.printPath(inValue: true)
            // The instantiating crate, if any, isn't printed; anything after is a vendor suffix (`.llvm.…`).
            if let next = self.peek(), next >= UInt8(ascii: "A"), next <= UInt8(ascii: "Z") {
                self.skipping += 1
                try self.printPath(inValue: false)
                self.skipping -= 1
            }
            if let next = self.peek(), next != UInt8(ascii: "."), next != UInt8(ascii: "$") {
                return nil
            }
            return self.output
        } catch {
            return nil
        }
    }

    // MARK: Lexing

    private func peek() -> UInt8? {
        self.position < self.bytes.count ? self.bytes[self.position] : nil
    }

    private mutating func next() throws(Failure) -> UInt8 {
        guard self.position < self.bytes.count else {
            throw Failure()
        }
        defer { self.position += 1 }
        return self.bytes[self.position]
    }

    private mutating func eat(_ byte: Character) -> Bool {
        if self.peek() == byte.asciiValue {
            self.position += 1
            return true
        }
        return false
    }

    private mutating func print(_ text: String) throws(Failure) {
        if self.skipping > 0 {
            return
        }
        self.output += text
        guard self.output.utf8.count <= Self.maximumOutput else {
            throw Failure()
        }
    }

    /// `{0-9a-zA-Z} "_"`: "_" is 0, otherwise the base-62 value plus one.
    private mutating func base62() throws(Failure) -> UInt64 {
        if self.eat("_") {
            return 0
        }
        var value: UInt64 = 0
        while true {
            let byte = try self.next()
            let digit: UInt64
            switch byte {
            case UInt8(ascii: "_"):
                let (result, overflow) = value.addingReportingOverflow(1)
                guard !overflow else { throw Failure() }
                return result
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): digit = 10 + UInt64(byte - UInt8(ascii: "a"))
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): digit = 36 + UInt64(byte - UInt8(ascii: "A"))
            default: throw Failure()
            }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 62)
            let (sum, overflow2) = shifted.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { throw Failure() }
            value = sum
        }
    }

    /// `"0" | [1-9] {0-9}`.
    private mutating func decimal() throws(Failure) -> Int {
        let first = try self.next()
        guard first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else {
            throw Failure()
        }
        if first == UInt8(ascii: "0") {
            return 0
        }
        var value = Int(first - UInt8(ascii: "0"))
        while let byte = self.peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
            self.position += 1
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            guard value <= 1 << 20 else { throw Failure() }
        }
        return value
    }

    /// `["s" <base-62-number>]`: 0 when absent, otherwise the number plus one.
    private mutating func disambiguator() throws(Failure) -> UInt64 {
        guard self.eat("s") else {
            return 0
        }
        let (value, overflow) = try self.base62().addingReportingOverflow(1)
        guard !overflow else { throw Failure() }
        return value
    }

    /// `["u"] <decimal-number> ["_"] <bytes>`; punycode (`u`) identifiers are not supported.
    private mutating func identifier() throws(Failure) -> String {
        if self.eat("u") {
            throw Failure()
        }
        let length = try self.decimal()
        _ = self.eat("_")
        guard length <= self.bytes.count - self.position else {
            throw Failure()
        }
        defer { self.position += length }
        return String(decoding: self.bytes[self.position..<self.position + length], as: UTF8.self)
    }

    /// Runs `body` with the parser moved to a backreference target (`B <base-62-number>`, an offset from
    /// the start of the symbol after `_R`), which must lie before the reference itself.
    private mutating func withBackref(_ body: (inout RustV0Printer) throws(Failure) -> Void) throws(Failure) {
        let start = self.position - 1
        let target = try self.base62()
        guard target < UInt64(start) else {
            throw Failure()
        }
        let resume = self.position
        self.position = Int(target)
        try body(&self)
        self.position = resume
    }

    private mutating func enter() throws(Failure) {
        self.depth += 1
        self.steps += 1
        guard self.depth <= Self.maximumDepth, self.steps <= Self.maximumSteps else {
            throw Failure()
        }
    }

    // MARK: Grammar

    private mutating func printPath(inValue: Bool) throws(Failure) {
        try self.enter()
        defer { self.depth -= 1 }
        let tag = try self.next()
        switch tag {
        case UInt8(ascii: "C"):
            _ = try self.disambiguator()
            try self.print(try self.identifier())
        case UInt8(ascii: "M"), UInt8(ascii: "X"), UInt8(ascii: "Y"):
            if tag != UInt8(ascii: "Y") {
                // The impl's own path (where the impl block is) isn't printed.
                _ = try self.disambiguator()
                self.skipping += 1
                try self.printPath(inValue: false)
                self.skipping -= 1
            }
            try self.print("<")
            try self.printType()
            if tag != UInt8(ascii: "M") {
                try self.print(" as ")
                try self.printPath(inValue: false)
            }
            try self.print(">")
        case UInt8(ascii: "N"):
            let namespace = try self.next()
            guard
                (namespace >= UInt8(ascii: "a") && namespace <= UInt8(ascii: "z"))
                    || (namespace >= UInt8(ascii: "A") && namespace <= UInt8(ascii: "Z"))
            else {
                throw Failure()
            }
            try self.printPath(inValue: inValue)
            let disambiguator = try self.disambiguator()
            let name = try self.identifier()
            if namespace >= UInt8(ascii: "A"), namespace <= UInt8(ascii: "Z") {
                try self.print("::{")
                switch namespace {
                case UInt8(ascii: "C"): try self.print("closure")
                case UInt8(ascii: "S"): try self.print("shim")
                default: try self.print(String(UnicodeScalar(namespace)))
                }
                if !name.isEmpty {
                    try self.print(":\(name)")
                }
                try self.print("#\(disambiguator)}")
            } else if !name.isEmpty {
                try self.print("::\(name)")
            }
        case UInt8(ascii: "I"):
            try self.printPath(inValue: inValue)
            if inValue {
                try self.print("::")
            }
            try self.print("<")
            var first = true
            while !self.eat("E") {
                if !first {
                    try self.print(", ")
                }
                first = false
                try self.printGenericArgument()
            }
            try self.print(">")
        case UInt8(ascii: "B"):
            try self.withBackref { (printer: inout RustV0Printer) throws(Failure) in
                try printer.printPath(inValue: inValue)
            }
        default:
            throw Failure()
        }
    }

    private mutating func printGenericArgument() throws(Failure) {
        if self.eat("L") {
            try self.printLifetime(try self.base62())
        } else if self.eat("K") {
            try self.printConst()
        } else {
            try self.printType()
        }
    }

    private mutating func printLifetime(_ index: UInt64) throws(Failure) {
        if index == 0 {
            try self.print("'_")
            return
        }
        guard index <= UInt64(self.boundLifetimes) else {
            throw Failure()
        }
        let depth = self.boundLifetimes - Int(index)
        if depth < 26 {
            try self.print("'" + String(UnicodeScalar(UInt8(ascii: "a") + UInt8(depth))))
        } else {
            try self.print("'_\(depth)")
        }
    }

    /// `G <base-62-number>`: `for<'a, 'b>` binding that many more lifetimes for the duration of `body`.
    private mutating func withBinder(
        _ body: (inout RustV0Printer) throws(Failure) -> Void
    ) throws(Failure) {
        guard self.eat("G") else {
            try body(&self)
            return
        }
        let (count, overflow) = try self.base62().addingReportingOverflow(1)
        guard !overflow, count <= 64 else { throw Failure() }
        try self.print("for<")
        for i in 0..<Int(count) {
            if i > 0 {
                try self.print(", ")
            }
            self.boundLifetimes += 1
            try self.printLifetime(1)
        }
        try self.print("> ")
        defer { self.boundLifetimes -= Int(count) }
        try body(&self)
    }

    private static let basicTypes: [UInt8: String] = [
        UInt8(ascii: "a"): "i8", UInt8(ascii: "b"): "bool", UInt8(ascii: "c"): "char", UInt8(ascii: "d"): "f64",
        UInt8(ascii: "e"): "str", UInt8(ascii: "f"): "f32", UInt8(ascii: "h"): "u8", UInt8(ascii: "i"): "isize",
        UInt8(ascii: "j"): "usize", UInt8(ascii: "l"): "i32", UInt8(ascii: "m"): "u32", UInt8(ascii: "n"): "i128",
        UInt8(ascii: "o"): "u128", UInt8(ascii: "s"): "i16", UInt8(ascii: "t"): "u16", UInt8(ascii: "u"): "()",
        UInt8(ascii: "v"): "...", UInt8(ascii: "x"): "i64", UInt8(ascii: "y"): "u64", UInt8(ascii: "z"): "!",
        UInt8(ascii: "p"): "_",
    ]

    private mutating func printType() throws(Failure) {
        try self.enter()
        defer { self.depth -= 1 }
        let tag = try self.next()
        if let basic = Self.basicTypes[tag] {
            try self.print(basic)
            return
        }
        switch tag {
        case UInt8(ascii: "R"), UInt8(ascii: "Q"):
            try self.print("&")
            if self.eat("L") {
                let lifetime = try self.base62()
                if lifetime != 0 {
                    try self.printLifetime(lifetime)
                    try self.print(" ")
                }
            }
            if tag == UInt8(ascii: "Q") {
                try self.print("mut ")
            }
            try self.printType()
        case UInt8(ascii: "P"):
            try self.print("*const ")
            try self.printType()
        case UInt8(ascii: "O"):
            try self.print("*mut ")
            try self.printType()
        case UInt8(ascii: "A"):
            try self.print("[")
            try self.printType()
            try self.print("; ")
            try self.printConst()
            try self.print("]")
        case UInt8(ascii: "S"):
            try self.print("[")
            try self.printType()
            try self.print("]")
        case UInt8(ascii: "T"):
            try self.print("(")
            var count = 0
            while !self.eat("E") {
                if count > 0 {
                    try self.print(", ")
                }
                try self.printType()
                count += 1
            }
            if count == 1 {
                try self.print(",")
            }
            try self.print(")")
        case UInt8(ascii: "F"):
            try self.withBinder { (printer: inout RustV0Printer) throws(Failure) in
                try printer.printFunctionSignature()
            }
        case UInt8(ascii: "D"):
            try self.print("dyn ")
            try self.withBinder { (printer: inout RustV0Printer) throws(Failure) in
                try printer.printDynBounds()
            }
            guard self.eat("L") else { throw Failure() }
            let lifetime = try self.base62()
            if lifetime != 0 {
                try self.print(" + ")
                try self.printLifetime(lifetime)
            }
        case UInt8(ascii: "B"):
            try self.withBackref { (printer: inout RustV0Printer) throws(Failure) in
                try printer.printType()
            }
        default:
            // A path: step back and parse it as one, in type position.
            self.position -= 1
            try self.printPath(inValue: false)
        }
    }

    /// `["U"] ["K" <abi>] {<type>} "E" <type>`.
    private mutating func printFunctionSignature() throws(Failure) {
        if self.eat("U") {
            try self.print("unsafe ")
        }
        if self.eat("K") {
            let abi: String
            if self.eat("C") {
                abi = "C"
            } else {
                abi = String(try self.identifier().map { $0 == "_" ? "-" : $0 })
            }
            try self.print("extern \"\(abi)\" ")
        }
        try self.print("fn(")
        var first = true
        while !self.eat("E") {
            if !first {
                try self.print(", ")
            }
            first = false
            try self.printType()
        }
        try self.print(")")
        if self.eat("u") {
            return
        }
        try self.print(" -> ")
        try self.printType()
    }

    /// `{<path> {"p" <undisambiguated-identifier> <type>}} "E"`: `dyn Trait<Assoc = T> + Send`.
    private mutating func printDynBounds() throws(Failure) {
        var first = true
        while !self.eat("E") {
            if !first {
                try self.print(" + ")
            }
            first = false
            // Print the trait path; associated-type bindings join its generic arguments.
            let before = self.output
            try self.printPath(inValue: false)
            var openedGenerics = self.skipping == 0 && self.output.hasSuffix(">") && self.output.count > before.count
            if openedGenerics {
                self.output.removeLast()
            }
            while self.eat("p") {
                try self.print(openedGenerics ? ", " : "<")
                openedGenerics = true
                try self.print(try self.identifier())
                try self.print(" = ")
                try self.printType()
            }
            if openedGenerics {
                try self.print(">")
            }
        }
    }

    /// `<type> <const-data> | "p" | <backref>`; integers, `bool` and `char` values only.
    private mutating func printConst() throws(Failure) {
        try self.enter()
        defer { self.depth -= 1 }
        if self.eat("p") {
            try self.print("_")
            return
        }
        if self.eat("B") {
            try self.withBackref { (printer: inout RustV0Printer) throws(Failure) in
                try printer.printConst()
            }
            return
        }
        let type = try self.next()
        let negative = self.eat("n")
        var hex: [UInt8] = []
        while true {
            let byte = try self.next()
            if byte == UInt8(ascii: "_") {
                break
            }
            guard
                (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                    || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            else {
                throw Failure()
            }
            hex.append(byte)
        }
        let digits = String(decoding: hex, as: UTF8.self)
        let value = hex.isEmpty ? 0 : UInt64(digits, radix: 16)
        switch type {
        case UInt8(ascii: "a"), UInt8(ascii: "s"), UInt8(ascii: "l"), UInt8(ascii: "x"), UInt8(ascii: "n"),
            UInt8(ascii: "i"), UInt8(ascii: "h"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "y"),
            UInt8(ascii: "o"), UInt8(ascii: "j"):
            let text = value.map { String($0) } ?? "0x\(digits)"
            try self.print(negative ? "-\(text)" : text)
        case UInt8(ascii: "b"):
            guard !negative, let value, value <= 1 else { throw Failure() }
            try self.print(value == 1 ? "true" : "false")
        case UInt8(ascii: "c"):
            guard !negative, let value, let scalar = UInt32(exactly: value).flatMap(Unicode.Scalar.init) else {
                throw Failure()
            }
            try self.print("'\(String(scalar).unicodeScalars.map { $0.escaped(asASCII: false) }.joined())'")
        default:
            throw Failure()
        }
    }
}
