// HearthBaseTests.swift: Duration in other units at the edges (fractions, negatives, the bounds of Int64), and the
// description every CodedError shares.

import HearthBase
import Testing

@Suite("Duration in seconds, milliseconds and nanoseconds")
struct DurationUnitTests {
    struct Case: Sendable {
        var duration: Duration
        var seconds: Double
        var milliseconds: Int64
        var nanoseconds: Int64
    }

    static let cases = [
        Case(duration: .zero, seconds: 0, milliseconds: 0, nanoseconds: 0),
        Case(duration: .seconds(15), seconds: 15, milliseconds: 15_000, nanoseconds: 15_000_000_000),
        Case(duration: .milliseconds(1500), seconds: 1.5, milliseconds: 1500, nanoseconds: 1_500_000_000),
        Case(duration: .nanoseconds(1_999_999), seconds: 0.001_999_999, milliseconds: 1, nanoseconds: 1_999_999),
        Case(duration: .nanoseconds(-1_500_000), seconds: -0.0015, milliseconds: -1, nanoseconds: -1_500_000),
        Case(duration: .seconds(-2), seconds: -2, milliseconds: -2000, nanoseconds: -2_000_000_000),
    ]

    @Test("exact values, truncated toward zero", arguments: cases)
    func units(_ item: Case) {
        #expect(abs(item.duration.seconds - item.seconds) < 1e-12)
        #expect(item.duration.milliseconds == item.milliseconds)
        #expect(item.duration.nanoseconds == item.nanoseconds)
    }

    @Test("past the bounds of Int64 nanoseconds: saturates instead of trapping or wrapping")
    func saturates() {
        #expect(Duration.seconds(Int64.max / 2).nanoseconds == .max)
        #expect(Duration.seconds(Int64.min / 2).nanoseconds == .min)
        #expect(Duration.seconds(9_223_372_036).nanoseconds == 9_223_372_036_000_000_000)
        #expect((Duration.seconds(9_223_372_036) + .nanoseconds(999_999_999)).nanoseconds == .max)
        #expect(Duration.seconds(Int64.max).milliseconds == .max)
    }
}

@Suite("CodedError")
struct CodedErrorTests {
    struct ExampleError: CodedError, Sendable {
        struct Code: CustomStringConvertible, Sendable {
            var description: String { "broken" }
        }
        var code = Code()
        var message: String
        var cause: (any Error & Sendable)?
    }

    struct WithStatus: CodedError {
        var code = "conflict"
        var message = "apply"
        var cause: (any Error)?
        var status = 409
        var codeDescription: String { "\(self.code), \(self.status)" }
    }

    @Test("TypeName(code): message, then the cause in parentheses")
    func description() {
        #expect(ExampleError(message: "reading x").description == "ExampleError(broken): reading x")
        let caused = ExampleError(message: "reading y", cause: ExampleError(message: "inner"))
        #expect(caused.description == "ExampleError(broken): reading y (cause: ExampleError(broken): inner)")
        #expect("\(WithStatus())" == "WithStatus(conflict, 409): apply")
    }
}
