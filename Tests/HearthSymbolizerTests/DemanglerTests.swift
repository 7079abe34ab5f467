//===----------------------------------------------------------------------===//
// Hearth — continuous profiling for Kubernetes. HearthSymbolizer tests.
//===----------------------------------------------------------------------===//

import HearthSymbolizer
import Testing

@Suite("Demangler")
struct DemanglerTests {
    @Test(
        "C++ symbols go through __cxa_demangle",
        arguments: [
            ("_ZN3foo3barEv", "foo::bar()"),
            ("_Z3addii", "add(int, int)"),
            ("_ZNSt6vectorIiSaIiEE9push_backERKi", "std::vector<int, std::allocator<int> >::push_back(int const&)"),
            ("_ZN9Namespace5ClassC2Ev", "Namespace::Class::Class()"),
        ]
    )
    func cxx(mangled: String, expected: String) {
        #expect(Demangler.demangle(mangled) == expected)
    }

    @Test(
        "Rust legacy symbols drop the hash and decode escapes",
        arguments: [
            ("_ZN4core3fmt5Write9write_fmt17h0123456789abcdefE", "core::fmt::Write::write_fmt"),
            (
                "_ZN70_$LT$alloc..vec..Vec$LT$T$C$A$GT$$u20$as$u20$core..ops..drop..Drop$GT$4drop17h5e2a3f9d1c2b4a60E",
                "<alloc::vec::Vec<T,A> as core::ops::drop::Drop>::drop"
            ),
            (
                "_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17h1111111111111111E",
                "std::rt::lang_start::{{closure}}"
            ),
            ("_ZN5hello4main17h0123456789abcdefE.llvm.12345", "hello::main"),
            ("_ZN4test15$RF$x$BP$y$SP$z17h0123456789abcdefE", "test::&x*y@z"),
        ]
    )
    func rustLegacy(mangled: String, expected: String) {
        #expect(Demangler.demangle(mangled) == expected)
    }

    @Test(
        "Swift symbols go through the Swift runtime's demangler",
        arguments: [
            ("$sSi1poiyS2i_SitFZ", "static Swift.Int.+ infix(Swift.Int, Swift.Int) -> Swift.Int"),
            ("$s4main3fooyyF", "main.foo() -> ()"),
            ("_$s4main3fooyyF", "main.foo() -> ()"),
            ("$S4main3fooyyF", "main.foo() -> ()"),
        ]
    )
    func swift(mangled: String, expected: String) {
        #expect(Demangler.demangle(mangled) == expected)
    }

    @Test(
        "plain and malformed names are returned unchanged",
        arguments: ["main", "malloc", "_start", "", "_Z", "$s", "_ZN99abcE"]
    )
    func unchanged(symbol: String) {
        #expect(Demangler.demangle(symbol) == symbol)
    }

    @Test("deeply nested and overlong names are handled without crashing")
    func hostileNames() {
        // A template nested 3000 levels deep: longer than the limit, so returned as is.
        let deep =
            "_Z1fI" + String(repeating: "St6vectorI", count: 3000) + "i" + String(repeating: "E", count: 3001) + "vv"
        #expect(Demangler.demangle(deep) == deep)
        // Nesting just under the limit still terminates (the result may or may not be demangled).
        let nested = "_Z1fI" + String(repeating: "PA1_", count: 2000) + "iEvv"
        _ = Demangler.demangle(nested)
        let swift = "$s" + String(repeating: "Say", count: 2700) + "SiG"
        _ = Demangler.demangle(swift)
        let rust = "_ZN" + String(repeating: "1a", count: 5000) + "17h0123456789abcdefE"
        #expect(Demangler.demangle(rust) == rust)
    }
}
