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

    /// The selector as requirements (an empty selector matches everything); nil when an expression has an operator
    /// the API does not define (such a selector is invalid and selects nothing).
    public var requirements: [SelectorRequirement]? {
        SelectorRequirement.labelSelector(
            matchLabels: self.matchLabels,
            matchExpressions: (self.matchExpressions ?? []).map { ($0.key ?? "", $0.operator ?? "", $0.values ?? []) }
        )
    }

    /// Whether the labels match.
    public func matches(_ labels: [String: String]?) -> Bool {
        SelectorRequirement.matches(self.requirements, labels ?? [:])
    }

    /// The selector in query-string syntax (`app=x,tier in (a,b)`); nil when it is invalid.
    public var selectorString: String? { self.requirements?.map(\.description).joined(separator: ",") }
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

    /// A `metav1.LabelSelectorRequirement`: `In`, `NotIn`, `Exists` or `DoesNotExist`; nil for any other operator.
    public init?(key: String, labelSelectorOperator op: String, values: [String]) {
        switch op {
        case "In": self.init(key: key, operator: .in, values: values)
        case "NotIn": self.init(key: key, operator: .notIn, values: values)
        case "Exists": self.init(key: key, operator: .exists, values: values)
        case "DoesNotExist": self.init(key: key, operator: .doesNotExist, values: values)
        default: return nil
        }
    }

    /// The requirements of a `metav1.LabelSelector`'s fields: `matchLabels` as equalities (sorted by key), then
    /// the expressions; nil when an expression's operator is not one the API defines. The one place label
    /// selectors are read, by the operator (``LabelSelector``) and the agent (its configuration's selectors).
    public static func labelSelector(
        matchLabels: [String: String]?,
        matchExpressions: [(key: String, operator: String, values: [String])]
    ) -> [SelectorRequirement]? {
        var result = (matchLabels ?? [:]).sorted { $0.key < $1.key }.map {
            SelectorRequirement(key: $0.key, operator: .equals, values: [$0.value])
        }
        for expression in matchExpressions {
            guard
                let requirement = SelectorRequirement(
                    key: expression.key,
                    labelSelectorOperator: expression.operator,
                    values: expression.values
                )
            else { return nil }
            result.append(requirement)
        }
        return result
    }

    /// Whether `labels` meet every requirement; an invalid selector (nil) matches nothing.
    public static func matches(_ requirements: [SelectorRequirement]?, _ labels: [String: String]) -> Bool {
        requirements?.allSatisfy { $0.matches(labels) } ?? false
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
