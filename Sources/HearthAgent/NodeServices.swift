// NodeServices.swift: the agent's two Kubernetes services: the informer of this node's pods (a field-selected
// watch, so a 5,000-pod cluster costs the agent its own ~110 pods) and the node Lease that tells the operator which
// configuration revision runs here.

import Foundation
import HearthAPI
import KubeClient
import KubeModel
import KubeRuntime
import Logging
import ServiceLifecycle

/// Keeps a Store of the pods scheduled to one node.
public struct NodePodInformer: ServiceLifecycle.Service {
    public let store: Store<Pod>
    let client: KubeClient
    let node: String
    let state: AgentState
    let logger: Logger

    public init(client: KubeClient, node: String, state: AgentState, logger: Logger) {
        self.client = client
        self.node = node
        self.state = state
        self.logger = logger
        self.store = Store(transform: Self.reduce)
    }

    /// Only what attribution reads: identity, labels, annotations, owners, phase and container statuses.
    @Sendable static func reduce(_ pod: Pod) -> Pod {
        var reduced = Pod(name: pod.metadata.name ?? "", namespace: pod.metadata.namespace)
        reduced.metadata.uid = pod.metadata.uid
        reduced.metadata.resourceVersion = pod.metadata.resourceVersion
        reduced.metadata.labels = pod.metadata.labels
        reduced.metadata.annotations = pod.metadata.annotations?.filter {
            $0.key == AgentConfiguration.serviceNameAnnotation
        }
        reduced.metadata.ownerReferences = pod.metadata.ownerReferences
        reduced.status = pod.status
        return reduced
    }

    public func run() async throws {
        let watcher = Watcher(
            self.client.resource(Pod.self),
            configuration: .init(fieldSelector: "spec.nodeName=\(self.node)"),
            logger: self.logger
        )
        // The watch never ends by itself: stop it when the agent shuts down.
        try? await cancelWhenGracefulShutdown {
            for try await event in watcher {
                self.store.apply(event)
                switch event {
                case .initStarted, .initApply: continue
                case .initDone, .apply, .delete: self.state.podsChanged()
                }
            }
        }
    }
}

/// Creates and renews `hearth-agent-NODE` in the agent's namespace with the loaded configuration revision.
public struct NodeLeaseReporter: ServiceLifecycle.Service {
    let client: KubeClient
    let namespace: String
    let node: String
    let state: AgentState
    let logger: Logger
    let interval: Duration

    public init(
        client: KubeClient,
        namespace: String,
        node: String,
        state: AgentState,
        logger: Logger,
        interval: Duration = AgentLease.renewInterval
    ) {
        self.client = client
        self.namespace = namespace
        self.node = node
        self.state = state
        self.logger = logger
        self.interval = interval
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown { await self.renewForever() }
    }

    private func renewForever() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await self.renew()
                if failures > 0 {
                    self.logger.info("node Lease renewed again", metadata: ["lease.failures": "\(failures)"])
                }
                failures = 0
            } catch {
                failures += 1
                // 1, 2, 4, 8, … failures at warning; the rest at debug, so an unreachable API server is no log storm.
                let level: Logger.Level = failures & (failures - 1) == 0 ? .warning : .debug
                self.logger.log(
                    level: level,
                    "node Lease renewal failed",
                    metadata: ["lease.error": "\(error)", "lease.failures": "\(failures)"]
                )
            }
            try? await Task.sleep(for: self.interval)
        }
    }

    /// One renewal: create the Lease, or update holder, renew time and revision.
    public func renew() async throws {
        let leases = self.client.resource(Lease.self, namespace: self.namespace)
        let name = AgentLease.name(node: self.node)
        let now = KubeTime.formatMicro(Date())
        let revision = self.state.revision ?? ""
        if var lease = try await leases.getIfExists(name) {
            lease.spec.holderIdentity = self.node
            lease.spec.leaseDurationSeconds = AgentLease.durationSeconds
            lease.spec.renewTime = now
            var annotations = lease.metadata.annotations ?? [:]
            annotations[AgentLease.revisionAnnotation] = revision
            annotations[AgentLease.degradedAnnotation] = self.state.degradation
            lease.metadata.annotations = annotations
            var labels = lease.metadata.labels ?? [:]
            labels.merge(AgentLease.labels) { _, new in new }
            lease.metadata.labels = labels
            _ = try await leases.update(lease)
        } else {
            var lease = Lease(name: name, namespace: self.namespace)
            lease.metadata.labels = AgentLease.labels
            lease.metadata.annotations = [AgentLease.revisionAnnotation: revision]
            lease.metadata.annotations?[AgentLease.degradedAnnotation] = self.state.degradation
            lease.spec.holderIdentity = self.node
            lease.spec.leaseDurationSeconds = AgentLease.durationSeconds
            lease.spec.acquireTime = now
            lease.spec.renewTime = now
            _ = try await leases.create(lease)
        }
    }
}
