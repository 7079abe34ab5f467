// TopFunctionsTests.swift: self and total samples per function (recursion counted once), limits and ordering, and
// the aligned text table.

import Testing

@testable import HearthProfile

@Suite("Top functions")
struct TopFunctionsTests {
    @Test("self and total per function; recursion counts once per sample")
    func small() throws {
        let rows = TopFunctions.compute(Fixtures.small(), limit: 100)
        func row(_ name: String) throws -> FunctionStatistics { try #require(rows.first { $0.function == name }) }

        #expect(rows.count == 12)
        #expect(rows.first?.function == "CheckoutAPI.Pricing.total(for:)")
        #expect(try row("CheckoutAPI.Pricing.total(for:)").selfSamples == 500)
        #expect(try row("CheckoutAPI.Pricing.total(for:)").selfPercent == 50)

        let walk = try row("CheckoutAPI.Tree.walk(_:)")
        #expect(walk.selfSamples == 100)
        #expect(walk.totalSamples == 100, "three frames of walk in one stack count once")
        #expect(walk.totalPercent == 10)

        let main = try row("main")
        #expect(main.selfSamples == 0 && main.totalSamples == 1000 && main.totalPercent == 100)
        #expect(try row("CheckoutAPI.Router.handle(_:)").totalSamples == 850)
        #expect(try row("ksys_write").selfSamples == 150)
        #expect(rows.allSatisfy { $0.totalPercent <= 100 && $0.selfSamples <= $0.totalSamples })

        // Ranked by self, then total, then name.
        #expect(
            rows.map(\.function).prefix(5) == [
                "CheckoutAPI.Pricing.total(for:)", "__memmove_avx_unaligned_erms", "ksys_write",
                "CheckoutAPI.Tree.walk(_:)", "jit-1234.so+0x1234",
            ]
        )
    }

    @Test("limit and ordering by total")
    func orderAndLimit() {
        let rows = TopFunctions.compute(Fixtures.small(), limit: 3, orderedBy: .totalSamples)
        #expect(rows.map(\.function) == ["main", "CheckoutAPI.Server.run()", "CheckoutAPI.Router.handle(_:)"])
        #expect(TopFunctions.compute(Fixtures.small(), limit: 0).isEmpty)
    }

    @Test("the table aligns columns and shows two-decimal percentages")
    func table() {
        let rows = TopFunctions.compute(Fixtures.small(), limit: 3)
        let table = TopFunctions.renderTable(rows)
        #expect(
            table == """
                SELF    SELF%  TOTAL   TOTAL%  FUNCTION
                 500   50.00%    500   50.00%  CheckoutAPI.Pricing.total(for:)
                 200   20.00%    200   20.00%  __memmove_avx_unaligned_erms
                 150   15.00%    150   15.00%  ksys_write

                """
        )
        #expect(TopFunctions.formatPercent(3.14159) == "3.14%")
        #expect(TopFunctions.formatPercent(0.004) == "0.00%")
        #expect(TopFunctions.formatPercent(100) == "100.00%")
    }

    @Test("an empty profile has no rows and a header-only table")
    func empty() {
        let profile = CPUProfile(startTime: Fixtures.start, duration: .seconds(1), frequency: 99, samples: [])
        #expect(TopFunctions.compute(profile, limit: 10).isEmpty)
        #expect(TopFunctions.renderTable([]) == "SELF    SELF%  TOTAL   TOTAL%  FUNCTION\n")
    }
}
