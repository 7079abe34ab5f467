// EventRecorder.swift: events.k8s.io/v1 Events, with repeats aggregated into an EventSeries.

import Foundation
import HearthBase
import KubeClient
import KubeModel
import Logging
import Synchronization

/// Records Events about objects. The same (object, type, reason, action, note) within `seriesWindow` updates one
/// Event's series count instead of creating a new Event. Failures are logged, never thrown: events are best effort.
public final class EventRecorder: Sendable {
    struct Entry {
        var name: String
        var namespace: String
        var count: Int
        var last: Date
    }

    public let controller: String
    public let instance: String
    let client: KubeClient
    let logger: Logger
    let seriesWindow: TimeInterval
    let cache = Mutex<[String: Entry]>([:])

    public init(
        client: KubeClient,
        controller: String,
        instance: String,
        logger: Logger,
        seriesWindow: Duration = .seconds(360)
    ) {
        self.client = client
        self.controller = controller
        self.instance = instance
        self.logger = logger
        self.seriesWindow = seriesWindow.seconds
    }

    /// `Normal` or `Warning`.
    public struct EventType: Sendable, Hashable, RawRepresentable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let normal = Self(rawValue: "Normal")
        public static let warning = Self(rawValue: "Warning")
    }

    /// Records an event about `regarding`.
    public func record<Object: KubeObject>(
        _ regarding: Object,
        type: EventType,
        reason: String,
        action: String,
        note: String
    ) async {
        var reference = ObjectReference()
        reference.apiVersion = regarding.apiVersion
        reference.kind = regarding.kind
        reference.name = regarding.metadata.name
        reference.namespace = regarding.metadata.namespace
        reference.uid = regarding.metadata.uid
        reference.resourceVersion = regarding.metadata.resourceVersion
        let namespace = regarding.metadata.namespace ?? "default"
        let key = [
            reference.uid ?? "", reference.kind ?? "", reference.name ?? "", type.rawValue, reason, action, note,
        ]
        .joined(separator: "\u{1}")
        let now = Date()
        let events = self.client.resource(Event.self, namespace: namespace)
        let existing = self.cache.withLock { cache -> Entry? in
            guard let entry = cache[key], now.timeIntervalSince(entry.last) < self.seriesWindow else { return nil }
            cache[key]?.count += 1
            cache[key]?.last = now
            return cache[key]
        }
        do {
            if let existing {
                _ = try await events.patch(
                    existing.name,
                    .merge([
                        "series": [
                            "count": .int(Int64(existing.count)),
                            "lastObservedTime": .string(KubeTime.formatMicro(now)),
                        ]
                    ])
                )
                return
            }
            var event = Event(
                name: "\(reference.name ?? "object").\(String(UInt64(now.timeIntervalSince1970 * 1e9), radix: 16))",
                namespace: namespace
            )
            event.eventTime = KubeTime.formatMicro(now)
            event.reportingController = self.controller
            event.reportingInstance = self.instance
            event.action = action
            event.reason = reason
            event.regarding = reference
            event.note = String(note.prefix(1024))
            event.type = type.rawValue
            let created = try await events.create(event)
            self.cache.withLock {
                $0[key] = Entry(name: created.metadata.name ?? "", namespace: namespace, count: 1, last: now)
                if $0.count > 4096 { $0.removeAll() }
            }
        } catch {
            self.logger.debug("could not record event", metadata: ["error": "\(error)", "event.reason": "\(reason)"])
        }
    }
}
