// Attribution.swift: which target each container on this node belongs to, and the series labels its samples
// carry. Pure: the configuration, the node's pods and a cgroup snapshot in, a cgroup-id table out (table-tested),
// so a reload recomputes it in one step and the in-kernel filter is programmed from the same table. Also each
// target's slot in the sampler, the unit of its fair share of the kernel's counts map.

import Foundation
import HearthAPI
import KubeModel

/// One container of a pod on this node.
public struct PodContainer: Sendable, Hashable {
    public var namespace: String
    public var pod: String
    public var container: String
    public var podLabels: [String: String]
    public var podAnnotations: [String: String]
    /// The workload that owns the pod (Deployment, StatefulSet, DaemonSet, Job, CronJob), else the pod itself.
    public var workload: String

    public init(
        namespace: String,
        pod: String,
        container: String,
        podLabels: [String: String] = [:],
        podAnnotations: [String: String] = [:],
        workload: String
    ) {
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.podLabels = podLabels
        self.podAnnotations = podAnnotations
        self.workload = workload
    }
}

extension Pod {
    /// The pod's running containers by runtime id (regular and init containers; pods that finished have none).
    public var runningContainers: [ContainerID: PodContainer] {
        let phase = self.status.phase ?? ""
        guard phase != "Succeeded", phase != "Failed" else { return [:] }
        let namespace = self.metadata.namespace ?? ""
        let name = self.metadata.name ?? ""
        let workload = self.workloadName
        let statuses =
            (self.status.containerStatuses ?? [])
            + ((self.status.get("initContainerStatuses") as [ContainerStatus]?) ?? [])
        var result: [ContainerID: PodContainer] = [:]
        for status in statuses {
            guard let raw = status.containerID, let id = ContainerID(podStatusID: raw) else { continue }
            result[id] = PodContainer(
                namespace: namespace,
                pod: name,
                container: status.name ?? "",
                podLabels: self.metadata.labels ?? [:],
                podAnnotations: self.metadata.annotations ?? [:],
                workload: workload
            )
        }
        return result
    }

    /// The owning workload's name: a ReplicaSet's Deployment (the name without the pod-template-hash suffix), a
    /// Job's CronJob (the name without the schedule suffix), any other controller's own name, else the pod's name.
    public var workloadName: String {
        let owner =
            (self.metadata.ownerReferences ?? []).first { $0.controller == true }
            ?? self.metadata.ownerReferences?.first
        guard let owner, let name = owner.name else { return self.metadata.name ?? "" }
        switch owner.kind {
        case "ReplicaSet":
            if let hash = self.metadata.labels?["pod-template-hash"], name.hasSuffix("-" + hash) {
                return String(name.dropLast(hash.count + 1))
            }
            return name
        case "Job":
            // CronJob jobs are named NAME-<minutes since epoch> (8 or more digits).
            if let dash = name.lastIndex(of: "-") {
                let suffix = name[name.index(after: dash)...]
                if suffix.count >= 8, suffix.allSatisfy(\.isNumber) { return String(name[..<dash]) }
            }
            return name
        default:
            return name
        }
    }
}

/// Where a container's samples go.
public struct SeriesAssignment: Sendable, Hashable {
    /// The target (`namespace/name`).
    public var target: String
    /// Series labels, `__name__` and `service_name` included.
    public var labels: [String: String]
    /// The target's sampling rate in Hz.
    public var sampleRate: Int
    public var backend: AgentConfiguration.Backend
}

/// The attribution of every targeted container on this node.
public struct AttributionTable: Sendable, Equatable {
    /// Container → where its samples go.
    public var containers: [ContainerID: SeriesAssignment] = [:]
    /// Cgroup id → where its samples go (every cgroup of every targeted container).
    public var cgroups: [UInt64: SeriesAssignment] = [:]
    /// Targeted containers whose cgroup was not found (not started yet, or another cgroup layout).
    public var containersWithoutCgroup: Set<ContainerID> = []

    public init() {}

    /// Label names Hearth sets itself; a target's labels cannot replace them.
    public static let reservedLabels: Set<String> = [
        "__name__", "service_name", "namespace", "pod", "container", "node",
    ]

    /// Builds the table. A container selected by several targets of its namespace goes to the first by name, so
    /// its CPU time is never counted twice.
    public static func build(
        configuration: AgentConfiguration,
        pods: [Pod],
        cgroups: CgroupSnapshot,
        node: String
    ) -> AttributionTable {
        var table = AttributionTable()
        let targetsByNamespace = Dictionary(grouping: configuration.targets, by: \.namespace)
            .mapValues { $0.sorted { $0.name < $1.name } }
        for pod in pods {
            guard let targets = targetsByNamespace[pod.metadata.namespace ?? ""] else { continue }
            let labels = pod.metadata.labels ?? [:]
            guard let target = targets.first(where: { $0.selector.matches(labels) }) else { continue }
            for (id, container) in pod.runningContainers {
                let assignment = SeriesAssignment(
                    target: target.key,
                    labels: Self.labels(target: target, container: container, node: node),
                    sampleRate: target.sampleRate,
                    backend: target.pyroscope
                )
                table.containers[id] = assignment
                if let ids = cgroups.cgroups[id] {
                    for cgroup in ids { table.cgroups[cgroup] = assignment }
                } else {
                    table.containersWithoutCgroup.insert(id)
                }
            }
        }
        return table
    }

    /// The series labels of one container's samples.
    static func labels(target: AgentConfiguration.Target, container: PodContainer, node: String) -> [String: String] {
        var labels = target.labels.filter { !Self.reservedLabels.contains($0.key) }
        labels["__name__"] = "process_cpu"
        labels["service_name"] = Self.serviceName(target: target, container: container, node: node)
        labels["namespace"] = container.namespace
        labels["pod"] = container.pod
        labels["container"] = container.container
        labels["node"] = node
        return labels
    }

    /// The target's template if it chose one, else the pod's `pyroscope.io/service_name`, else
    /// `namespace/workload`; never empty.
    static func serviceName(target: AgentConfiguration.Target, container: PodContainer, node: String) -> String {
        if target.serviceName == nil,
            let annotated = container.podAnnotations[AgentConfiguration.serviceNameAnnotation],
            !annotated.isEmpty
        {
            return annotated
        }
        let template = target.serviceName ?? AgentConfiguration.defaultServiceName
        let expanded =
            template
            .replacingOccurrences(of: "{{namespace}}", with: container.namespace)
            .replacingOccurrences(of: "{{workload}}", with: container.workload)
            .replacingOccurrences(of: "{{pod}}", with: container.pod)
            .replacingOccurrences(of: "{{container}}", with: container.container)
            .replacingOccurrences(of: "{{node}}", with: node)
        return expanded.isEmpty ? "\(container.namespace)/\(container.workload)" : expanded
    }
}

/// The sampler's slot of each target with cgroups on this node: all of a target's cgroups share the slot, and with it
/// one share of the kernel's counts map, however many pods and containers the target has here.
struct TargetSlots: Sendable, Equatable {
    /// Target (`namespace/name`) → slot, in `0..<capacity`.
    private(set) var slots: [String: Int] = [:]
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Gives `targets` their slots: a target keeps the slot it had (so its filter entries are not rewritten when
    /// other targets come and go), a new one takes the lowest free slot, and targets past the capacity share the
    /// last slot, and its share. Targets not listed give theirs up.
    mutating func assign(_ targets: Set<String>) {
        self.slots = self.slots.filter { targets.contains($0.key) }
        let used = Set(self.slots.values)
        var free = (0..<self.capacity).lazy.filter { !used.contains($0) }.makeIterator()
        for target in targets.sorted() where self.slots[target] == nil {
            self.slots[target] = free.next() ?? self.capacity - 1
        }
    }
}
