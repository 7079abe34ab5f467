// LabelSelector.swift: metav1.LabelSelector, selector strings and matching.

import Foundation

/// metav1.LabelSelector.
public struct LabelSelector: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(matchLabels: [String: String]? = nil, matchExpressions: [LabelSelectorRequirement]? = nil) {
        self.object = [:]
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    public var matchLabels: [String: String]? {
        get { self.get("matchLabels") }
        set { self.set("matchLabels", newValue) }
    }
    public var matchExpressions: [LabelSelectorRequirement]? {
        get { self.get("matchExpressions") }
        set { self.set("matchExpressions", newValue) }
    }

    /// The selector as requirements (an empty selector matches everything).
    public var requirements: [SelectorRequirement] {
        var result: [SelectorRequirement] = (self.matchLabels ?? [:]).sorted { $0.key < $1.key }.map {
            SelectorRequirement(key: $0.key, operator: .equals, values: [$0.value])
        }
        for expression in self.matchExpressions ?? [] {
            let op: SelectorRequirement.Operator
            switch expression.operator {
            case "In": op = .in
            case "NotIn": op = .notIn
            case "Exists": op = .exists
            default: op = .doesNotExist
            }
            result.append(SelectorRequirement(key: expression.key ?? "", operator: op, values: expression.values ?? []))
        }
        return result
    }

    /// Whether the labels match.
    public func matches(_ labels: [String: String]?) -> Bool {
        self.requirements.allSatisfy { $0.matches(labels ?? [:]) }
    }

    /// The selector in query-string syntax (`app=x,tier in (a,b)`).
    public var selectorString: String { self.requirements.map(\.description).joined(separator: ",") }
}

/// metav1.LabelSelectorRequirement.
public struct LabelSelectorRequirement: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(key: String, operator op: String, values: [String]? = nil) {
        self.object = [:]
        self.key = key
        self.operator = op
        self.values = values
    }

    public var key: String? {
        get { self.get("key") }
        set { self.set("key", newValue) }
    }
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    public var `operator`: String? {
        get { self.get("operator") }
        set { self.set("operator", newValue) }
    }
    public var values: [String]? {
        get { self.get("values") }
        set { self.set("values", newValue) }
    }
}

/// One requirement of a label or field selector string.
public struct SelectorRequirement: Sendable, Hashable, CustomStringConvertible {
    public enum Operator: Sendable, Hashable { case equals, notEquals, `in`, notIn, exists, doesNotExist }
    public var key: String
    public var `operator`: Operator
    public var values: [String]

    public init(key: String, operator op: Operator, values: [String] = []) {
        self.key = key
        self.operator = op
        self.values = values
    }

    public func matches(_ labels: [String: String]) -> Bool {
        let value = labels[self.key]
        switch self.operator {
        case .equals: return value == self.values.first
        case .notEquals: return value != self.values.first
        case .in: return value.map { self.values.contains($0) } ?? false
        case .notIn: return value.map { !self.values.contains($0) } ?? true
        case .exists: return value != nil
        case .doesNotExist: return value == nil
        }
    }

    public var description: String {
        switch self.operator {
        case .equals: return "\(self.key)=\(self.values.first ?? "")"
        case .notEquals: return "\(self.key)!=\(self.values.first ?? "")"
        case .in: return "\(self.key) in (\(self.values.joined(separator: ",")))"
        case .notIn: return "\(self.key) notin (\(self.values.joined(separator: ",")))"
        case .exists: return self.key
        case .doesNotExist: return "!\(self.key)"
        }
    }
}

/// A parsed selector string (`labelSelector` or `fieldSelector` query parameter): comma-separated requirements,
/// all of which must match.
public struct Selector: Sendable, Hashable, CustomStringConvertible {
    public var requirements: [SelectorRequirement]

    public init(_ requirements: [SelectorRequirement] = []) { self.requirements = requirements }

    /// Parses `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`, joined by commas.
    public init(parsing string: String) throws {
        var requirements: [SelectorRequirement] = []
        for term in Self.splitTerms(string) {
            let term = term.trimmingSpaces
            if term.isEmpty { continue }
            if term.hasPrefix("!") {
                requirements.append(.init(key: String(term.dropFirst()).trimmingSpaces, operator: .doesNotExist))
            } else if let range = term.range(of: "!=") {
                requirements.append(
                    .init(
                        key: String(term[..<range.lowerBound]).trimmingSpaces,
                        operator: .notEquals,
                        values: [String(term[range.upperBound...]).trimmingSpaces]
                    )
                )
            } else if let range = term.range(of: "==") ?? term.range(of: "=") {
                requirements.append(
                    .init(
                        key: String(term[..<range.lowerBound]).trimmingSpaces,
                        operator: .equals,
                        values: [String(term[range.upperBound...]).trimmingSpaces]
                    )
                )
            } else if let open = term.firstIndex(of: "("), term.hasSuffix(")") {
                let head = term[..<open].split(separator: " ", omittingEmptySubsequences: true)
                guard head.count == 2, head[1] == "in" || head[1] == "notin" else {
                    throw KubeModelError(code: .invalidSelector, message: "unable to parse requirement: \(term)")
                }
                let values = term[term.index(after: open)..<term.index(before: term.endIndex)]
                    .split(separator: ",").map { String($0).trimmingSpaces }
                requirements.append(
                    .init(key: String(head[0]), operator: head[1] == "in" ? .in : .notIn, values: values)
                )
            } else if term.contains(" ") {
                throw KubeModelError(code: .invalidSelector, message: "unable to parse requirement: \(term)")
            } else {
                requirements.append(.init(key: term, operator: .exists))
            }
        }
        self.requirements = requirements
    }

    public func matches(_ labels: [String: String]) -> Bool { self.requirements.allSatisfy { $0.matches(labels) } }

    public var isEmpty: Bool { self.requirements.isEmpty }

    public var description: String { self.requirements.map(\.description).joined(separator: ",") }

    private static func splitTerms(_ string: String) -> [String] {
        var terms: [String] = []
        var current = ""
        var depth = 0
        for character in string {
            switch character {
            case "(": depth += 1
            case ")": depth -= 1
            case "," where depth == 0:
                terms.append(current)
                current = ""
                continue
            default: break
            }
            current.append(character)
        }
        terms.append(current)
        return terms
    }
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while slice.first == " " { slice = slice.dropFirst() }
        while slice.last == " " { slice = slice.dropLast() }
        return String(slice)
    }
}
