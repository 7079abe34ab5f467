// TargetReconciler+Grafana.swift: the target's side of datasource provisioning: what it asks for, the outcome for
// its status, removal before its finalizer goes; and the periodic sweep of datasources no target asks for, a task of
// its own. Grafana never blocks the agent or the Pyroscope wiring: these run after them and only add to the status.

import GrafanaClient
import HearthAPI
import KubeModel
import KubeRuntime
import Logging
import ServiceLifecycle

extension TargetReconciler {
    /// The datasource outcome for a live target, and when to look again (nil: no reason to).
    func syncDatasource(
        _ target: ProfilingTarget,
        _ resolved: ResolvedTarget
    ) async -> (
        DatasourceOutcome, Duration?
    ) {
        guard let asked = DesiredDatasource.of(target, resolved: resolved) else { return (.notRequested, nil) }
        guard let synchronizer = self.datasources else {
            return (
                .failed(
                    reason: ConditionReason.grafanaNotConfigured,
                    message: "the operator runs without --grafana-url, so it provisions no Grafana datasource "
                        + "(set grafana.url and grafana.credentialsSecret in the Helm values)"
                ), nil
            )
        }
        if !resolved.violations.isEmpty { return (.pending(reason: ConditionReason.invalidSpec, message: ""), nil) }
        let desired: DesiredDatasource
        switch asked {
        case .unresolved(let problem):
            return (.pending(reason: problem.reason, message: "datasource not provisioned: " + problem.message), nil)
        case .known(let value): desired = value
        }
        let resolver = self.resolver
        let targets = self.stores.targets
        let (outcome, retryAfter, corrected) = await synchronizer.sync(desired, for: target.objectKey) { owner in
            guard let ownerTarget = targets.get(owner), !ownerTarget.metadata.isBeingDeleted,
                case .known(let wanted)? = DesiredDatasource.of(ownerTarget, resolved: resolver.resolve(ownerTarget)),
                wanted.uid == desired.uid
            else { return nil }
            return wanted.fingerprint
        }
        if !corrected.isEmpty, let recorder = self.recorder {
            await recorder.record(
                target,
                type: .normal,
                reason: "DriftCorrected",
                action: "UpdateDatasource",
                note: "Grafana datasource \(desired.uid) differed in \(corrected.joined(separator: ", ")); restored"
            )
        }
        return (outcome, retryAfter)
    }

    /// Before a deleted target's finalizer goes: removes its datasource when no other target uses it. Throws
    /// (keeping the finalizer, retried with backoff) while Grafana cannot confirm, unless the target opts out.
    func removeDatasource(of target: ProfilingTarget) async throws {
        guard let synchronizer = self.datasources, target.spec.grafana != nil else { return }
        let resolver = self.resolver
        let uid: String
        switch DesiredDatasource.of(target, resolved: resolver.resolve(target)) {
        case .known(let desired)?: uid = desired.uid
        default:
            guard let explicit = target.spec.grafana?.datasource?.uid else { return }
            uid = explicit
        }
        if target.metadata.annotations?[ProfilingTarget.skipDatasourceCleanupAnnotation] == "true" {
            self.logger.info(
                "datasource cleanup skipped by annotation",
                metadata: ["k8s.object": "\(target.objectKey)", "grafana.uid": "\(uid)"]
            )
            return
        }
        if self.datasourceUIDsInUse(excluding: target.objectKey).contains(uid) { return }
        do {
            try await synchronizer.delete(uid: uid)
        } catch {
            throw OperatorError(
                code: .datasourceCleanupFailed,
                message: "removing Grafana datasource \(uid) before \(target.objectKey) goes (annotate the "
                    + "target \(ProfilingTarget.skipDatasourceCleanupAnnotation)=true to delete it without waiting)",
                cause: error
            )
        }
    }

    /// The uids live targets ask for.
    func datasourceUIDsInUse(excluding excluded: ObjectKey? = nil) -> Set<String> {
        DatasourceSweep.knownUIDs(in: self.stores.targets, resolver: self.resolver, excluding: excluded) ?? []
    }
}

/// Deletes Hearth's datasources that no target asks for any more (a removed spec.grafana, a target deleted while
/// cleanup was skipped), once per resync period: at start, then periodically, whatever the targets do.
struct DatasourceSweep: ServiceLifecycle.Service {
    let synchronizer: DatasourceSynchronizer
    let targets: Store<ProfilingTarget>
    let resolver: TargetResolver

    func run() async throws {
        while !Task.isCancelled {
            // Never while a uid is unknown: its datasource may be one a target asks for.
            if let wanted = Self.knownUIDs(in: self.targets, resolver: self.resolver) {
                await self.synchronizer.sweep(keeping: wanted)
            }
            try await Task.sleep(for: self.synchronizer.settings.resyncPeriod)
        }
    }

    /// The uids live targets ask for, or nil when one cannot be known yet (then nothing may be swept).
    static func knownUIDs(
        in targets: Store<ProfilingTarget>,
        resolver: TargetResolver,
        excluding excluded: ObjectKey? = nil
    ) -> Set<String>? {
        var uids: Set<String> = []
        for target in targets.byIndex("grafana", "true")
        where target.objectKey != excluded && !target.metadata.isBeingDeleted {
            switch DesiredDatasource.of(target, resolved: resolver.resolve(target)) {
            case .known(let desired)?: uids.insert(desired.uid)
            case .unresolved?:
                // An explicit uid is known even when the rest is not.
                guard let uid = target.spec.grafana?.datasource?.uid else { return nil }
                uids.insert(uid)
            case nil: break
            }
        }
        return uids
    }
}
