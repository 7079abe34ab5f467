// AttributionTests.swift: from cgroup folder names and /proc/PID/cgroup files (a corpus of real layouts) to
// containers, and from the configuration and this node's pods to series labels.

import Foundation
import HearthAPI
import KubeModel
import Testing

@testable import HearthAgent

private let id = "0b1d6c5bd8ae0ee6c4ad3ea2a4b3e5f9b6bdf1c2b7d5b18b8ea1f9e4c1a2b3c4"
private let podUID = "6f0b6d3e-1c2a-4b5e-9f8a-7d6c5b4a3f21"

@Suite("Cgroup layouts")
struct CgroupLayoutTests {
    struct Layout: Sendable, CustomTestStringConvertible {
        var name: String
        var text: String
        var expected: String?
        var testDescription: String { self.name }
    }

    /// Real shapes of `/proc/PID/cgroup` for container runtimes and kubelet cgroup drivers.
    static let procCgroups: [Layout] = [
        Layout(
            name: "containerd, systemd driver, cgroup v2",
            text:
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(podUID.replacingOccurrences(of: "-", with: "_")).slice/cri-containerd-\(id).scope\n",
            expected: id
        ),
        Layout(
            name: "containerd, cgroupfs driver, cgroup v2",
            text: "0::/kubepods/besteffort/pod\(podUID)/\(id)\n",
            expected: id
        ),
        Layout(
            name: "CRI-O, systemd driver, cgroup v2",
            text:
                "0::/kubepods.slice/kubepods-pod\(podUID.replacingOccurrences(of: "-", with: "_")).slice/crio-\(id).scope\n",
            expected: id
        ),
        Layout(
            name: "CRI-O's conmon is not the container",
            text:
                "0::/kubepods.slice/kubepods-pod\(podUID.replacingOccurrences(of: "-", with: "_")).slice/crio-conmon-\(id).scope\n",
            expected: nil
        ),
        Layout(
            name: "docker (dockershim / cri-dockerd), systemd driver, cgroup v1",
            text: """
                12:pids:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/docker-\(id).scope
                11:cpu,cpuacct:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/docker-\(id).scope
                1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/docker-\(id).scope

                """,
            expected: id
        ),
        Layout(
            name: "docker, cgroupfs driver, cgroup v1",
            text: "4:memory:/kubepods/burstable/pod\(podUID)/\(id)\n3:cpu:/kubepods/burstable/pod\(podUID)/\(id)\n",
            expected: id
        ),
        Layout(
            name: "hybrid: the v2 line wins",
            text: "5:cpu:/user.slice\n0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-\(id).scope\n",
            expected: id
        ),
        Layout(
            name: "a process nested below the container's cgroup (systemd in a container)",
            text: "0::/kubepods/besteffort/pod\(podUID)/\(id)/init.scope\n",
            expected: id
        ),
        Layout(name: "a host process", text: "0::/system.slice/containerd.service\n", expected: nil),
        Layout(name: "a user session", text: "0::/user.slice/user-0.slice/session-3.scope\n", expected: nil),
        Layout(
            name: "63 hex digits are no container id",
            text: "0::/kubepods/besteffort/pod1/\(id.dropLast())\n",
            expected: nil
        ),
    ]

    @Test("/proc/PID/cgroup names the container", arguments: procCgroups)
    func procCgroup(_ layout: Layout) {
        #expect(ContainerID(procCgroup: layout.text)?.value == layout.expected)
    }

    @Test("pod status container ids of every runtime")
    func podStatusIDs() {
        for prefix in ["containerd://", "cri-o://", "docker://"] {
            #expect(ContainerID(podStatusID: prefix + id)?.value == id)
        }
        #expect(ContainerID(podStatusID: id) == nil)
        #expect(ContainerID(podStatusID: "containerd://XYZ") == nil)
        #expect(ContainerID(podStatusID: "containerd://" + id.uppercased()) == nil)
    }

    @Test("a cgroup2 tree walk maps each container to its cgroup's inode, nested cgroups included")
    func scan() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cgroups-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let other = String(repeating: "e", count: 64)
        let containerd =
            "\(root)/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-\(id).scope"
        let nested = containerd + "/init.scope"
        let cgroupfs = "\(root)/kubepods/burstable/pod\(podUID)/\(other)"
        for path in [nested, cgroupfs, "\(root)/system.slice/containerd.service"] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        let snapshot = CgroupSnapshot.scan(root: root)
        let first = try #require(ContainerID(id))
        let second = try #require(ContainerID(other))
        #expect(Set(snapshot.cgroups[first] ?? []) == Set([containerd, nested].compactMap(CgroupMount.id(ofFolder:))))
        #expect(snapshot.cgroups[second] == [CgroupMount.id(ofFolder: cgroupfs)!])
        #expect(snapshot.cgroups.count == 2)
    }

    @Test("this host's cgroup2 mount is found (hybrid: below unified/)")
    func unifiedRoot() throws {
        let root = try #require(CgroupMount.unifiedRoot())
        #expect(FileManager.default.fileExists(atPath: root + "/cgroup.controllers"))
        // The cgroup id of this process is the inode of its cgroup2 folder.
        let text = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
        let path = try #require(text.split(separator: "\n").first { $0.hasPrefix("0::") }).dropFirst(3)
        #expect(CgroupMount.id(ofFolder: root + path) != nil)
    }
}

@Suite("Attribution")
struct AttributionTests {
    static func pod(
        _ name: String,
        namespace: String = "shop",
        labels: [String: String] = ["app": "checkout"],
        annotations: [String: String]? = nil,
        owner: (kind: String, name: String)? = nil,
        containers: [(String, String)] = [("app", "containerd://" + id)],
        phase: String = "Running"
    ) -> Pod {
        var pod = Pod(name: name, namespace: namespace)
        pod.metadata.labels = labels
        pod.metadata.annotations = annotations
        if let owner {
            pod.metadata.ownerReferences = [
                OwnerReference(object: ["kind": .string(owner.kind), "name": .string(owner.name), "controller": true])
            ]
        }
        pod.status.phase = phase
        pod.status.containerStatuses = containers.map { name, runtimeID in
            var status = ContainerStatus()
            status.name = name
            status.containerID = runtimeID
            return status
        }
        return pod
    }

    static func target(
        _ name: String,
        app: String = "checkout",
        serviceName: String? = nil,
        labels: [String: String] = [:],
        sampleRate: Int = 99
    ) -> AgentConfiguration.Target {
        AgentConfiguration.Target(
            namespace: "shop",
            name: name,
            selector: AgentConfiguration.Selector(matchLabels: ["app": app]),
            sampleRate: sampleRate,
            serviceName: serviceName,
            labels: labels,
            pyroscope: AgentConfiguration.Backend(url: "http://pyroscope:4040")
        )
    }

    @Test("workload names from owner references")
    func workloads() {
        var replicaSet = Self.pod("checkout-7d9f8-abcde", owner: ("ReplicaSet", "checkout-7d9f8"))
        replicaSet.metadata.labels?["pod-template-hash"] = "7d9f8"
        #expect(replicaSet.workloadName == "checkout")
        #expect(Self.pod("x", owner: ("ReplicaSet", "bare-rs")).workloadName == "bare-rs")
        #expect(Self.pod("db-0", owner: ("StatefulSet", "db")).workloadName == "db")
        #expect(Self.pod("agent-x", owner: ("DaemonSet", "agent")).workloadName == "agent")
        #expect(Self.pod("report-29345678-q", owner: ("Job", "report-29345678")).workloadName == "report")
        #expect(Self.pod("migrate-x", owner: ("Job", "migrate-v2")).workloadName == "migrate-v2")
        #expect(Self.pod("standalone").workloadName == "standalone")
    }

    @Test("service_name: the target's template, else the pod annotation, else namespace/workload")
    func serviceNames() {
        var checkout = Self.pod("checkout-1", owner: ("StatefulSet", "checkout"))
        let container = checkout.runningContainers.values.first!
        #expect(
            AttributionTable.serviceName(target: Self.target("t"), container: container, node: "n1") == "shop/checkout"
        )
        #expect(
            AttributionTable.serviceName(
                target: Self.target("t", serviceName: "{{namespace}}.{{workload}}.{{pod}}.{{container}}@{{node}}"),
                container: container,
                node: "n1"
            ) == "shop.checkout.checkout-1.app@n1"
        )
        checkout.metadata.annotations = [AgentConfiguration.serviceNameAnnotation: "payments-api"]
        let annotated = checkout.runningContainers.values.first!
        #expect(
            AttributionTable.serviceName(target: Self.target("t"), container: annotated, node: "n1") == "payments-api"
        )
        #expect(
            AttributionTable.serviceName(
                target: Self.target("t", serviceName: "fixed"),
                container: annotated,
                node: "n1"
            )
                == "fixed"
        )
    }

    @Test(
        "the table: labels, cgroups of every container, first target by name wins, finished pods and other namespaces ignored"
    )
    func table() throws {
        let sidecar = String(repeating: "c", count: 64)
        let unmatched = String(repeating: "d", count: 64)
        let pods = [
            Self.pod("checkout-1", containers: [("app", "containerd://" + id), ("proxy", "containerd://" + sidecar)]),
            Self.pod("other-1", labels: ["app": "other"], containers: [("app", "containerd://" + unmatched)]),
            Self.pod(
                "done-1",
                containers: [("app", "containerd://" + String(repeating: "f", count: 64))],
                phase: "Succeeded"
            ),
            Self.pod("elsewhere", namespace: "billing"),
        ]
        let configuration = AgentConfiguration(
            revision: "r",
            targets: [
                Self.target("zeta", sampleRate: 19),
                Self.target("alpha", labels: ["team": "payments", "namespace": "spoofed"], sampleRate: 49),
            ]
        )
        let snapshot = CgroupSnapshot(cgroups: [
            try #require(ContainerID(id)): [100, 101],
            try #require(ContainerID(unmatched)): [300],
        ])
        let table = AttributionTable.build(configuration: configuration, pods: pods, cgroups: snapshot, node: "n1")
        #expect(table.containers.count == 2)
        #expect(Set(table.cgroups.keys) == [100, 101])
        #expect(table.containersWithoutCgroup == [try #require(ContainerID(sidecar))])
        let assignment = try #require(table.cgroups[100])
        #expect(assignment.target == "shop/alpha")
        #expect(assignment.sampleRate == 49)
        #expect(
            assignment.labels == [
                "__name__": "process_cpu", "service_name": "shop/checkout-1", "namespace": "shop",
                "pod": "checkout-1", "container": "app", "node": "n1", "team": "payments",
            ]
        )
        #expect(table.containers[try #require(ContainerID(sidecar))]?.labels["container"] == "proxy")
    }

    @Test("each target keeps its slot while others come and go; a new one takes the lowest free slot")
    func targetSlots() {
        var slots = TargetSlots(capacity: 3)
        slots.assign(["shop/b", "shop/a"])
        #expect(slots.slots == ["shop/a": 0, "shop/b": 1])
        slots.assign(["shop/b", "shop/c"])
        #expect(slots.slots == ["shop/b": 1, "shop/c": 0], "b keeps its slot; c takes a's")
        slots.assign(["shop/b", "shop/c", "shop/d", "shop/e"])
        // Past the capacity, targets share the last slot.
        #expect(slots.slots == ["shop/b": 1, "shop/c": 0, "shop/d": 2, "shop/e": 2])
        slots.assign([])
        #expect(slots.slots.isEmpty)
    }
}
