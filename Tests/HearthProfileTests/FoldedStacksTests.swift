// FoldedStacksTests.swift: folded stacks root first, comm as the root frame, identical stacks merged and lines
// sorted; separators in names replaced; nothing for an empty profile.

import Testing

@testable import HearthProfile

@Suite("Folded stacks")
struct FoldedStacksTests {
    @Test("root first, comm as the root frame, identical stacks merged, lines sorted")
    func small() {
        let folded = FoldedStacks.render(Fixtures.small())
        let expected = """
            checkout-api;main;CheckoutAPI.Server.run();CheckoutAPI.Router.handle(_:);CheckoutAPI.Pricing.total(for:) 500
            checkout-api;main;CheckoutAPI.Server.run();CheckoutAPI.Router.handle(_:);JSONEncoder.encode<A>(_:);\
            __memmove_avx_unaligned_erms 200
            checkout-api;main;CheckoutAPI.Server.run();CheckoutAPI.Router.handle(_:);__GI___libc_write;\
            entry_SYSCALL_64_after_hwframe;do_syscall_64;ksys_write 150
            checkout-api;main;CheckoutAPI.Server.run();CheckoutAPI.Tree.walk(_:);CheckoutAPI.Tree.walk(_:);\
            CheckoutAPI.Tree.walk(_:) 100
            checkout-api;main;jit-1234.so+0x1234 50

            """
        #expect(folded == expected)
        let total = folded.split(separator: "\n").reduce(Int64(0)) { $0 + Int64($1.split(separator: " ").last!)! }
        #expect(total == Fixtures.small().totalSamples)
    }

    @Test("without a comm label the outermost frame is the root; separators in names are replaced")
    func noComm() {
        let frames = [
            ProfileFrame(function: "leaf;with;semicolons", module: "/bin/x", address: 2),
            ProfileFrame(function: "multi\nline", module: "/bin/x", address: 1),
        ]
        let profile = CPUProfile(
            startTime: Fixtures.start,
            duration: .seconds(1),
            frequency: 100,
            samples: [
                ProfileSample(frames: frames, count: 3, labels: ["pid": "1"]),
                ProfileSample(frames: [], count: 2),
                ProfileSample(frames: frames, count: 0),
            ]
        )
        #expect(FoldedStacks.render(profile) == "[unknown] 2\nmulti line;leaf:with:semicolons 3\n")
    }

    @Test("an empty profile renders nothing")
    func empty() {
        let profile = CPUProfile(startTime: Fixtures.start, duration: .seconds(1), frequency: 99, samples: [])
        #expect(FoldedStacks.render(profile) == "")
    }
}
