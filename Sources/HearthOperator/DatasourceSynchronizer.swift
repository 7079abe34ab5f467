// DatasourceSynchronizer.swift: keeps Grafana's datasources as the targets ask, through Grafana's HTTP API.
//
// Per datasource uid: GET it; 404 → create; found → compare the owned fields and the stored secrets digest and
// update (with the version read) only on a difference. A synced datasource is not asked about again until its
// resync period (jittered) passes or what a target asks for changes, so a thousand targets sharing one backend
// cost one GET per period. Failures back off exponentially per uid; problems only the user can fix wait for a
// change or the next resync. Datasources are never adopted by name, and only those carrying Hearth's marker are
// deleted. One Grafana operation at a time: they are rare, and two targets creating one datasource must not race.

import Foundation
import GrafanaClient
import HearthAPI
import KubeClient
import KubeModel
import Logging
import Metrics
import Synchronization

/// What became of a target's datasource.
public enum DatasourceOutcome: Sendable, Hashable {
    /// The target asks for no datasource.
    case notRequested
    /// In Grafana as asked.
    case synced(uid: String, name: String)
    /// Cannot be, until someone changes something (False).
    case failed(reason: String, message: String)
    /// Not known: Grafana did not answer, or the target is not resolved yet (Unknown).
    case pending(reason: String, message: String)
}

final class DatasourceSynchronizer: Sendable {
    struct Entry: Sendable {
        /// The target whose request defines the datasource, and its fingerprint.
        var owner: ObjectKey
        var fingerprint: String
        var outcome: DatasourceOutcome
        /// When Grafana is asked again (resync after success, backoff after failure).
        var nextCheck: ContinuousClock.Instant
        var failures = 0
        /// The owner's request was in Grafana as asked at least once (a later difference is drift).
        var syncedOnce = false
    }

    struct State: Sendable {
        var entries: [String: Entry] = [:]
        var digests: [String: String] = [:]
        /// Grafana did not answer: until then no datasource asks it again (reconcile workers never queue up
        /// behind one timeout after another).
        var unreachableUntil: ContinuousClock.Instant?
    }

    let grafana: GrafanaClient
    let settings: GrafanaSettings
    /// The marker value: this operator, by namespace.
    let marker: String
    let logger: Logger
    let driftCorrections: Counter
    let gate = AsyncGate()
    let state = Mutex(State())

    init(
        settings: GrafanaSettings,
        operatorNamespace: String,
        kube: KubeClient,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.settings = settings
        self.marker = "hearth-operator/\(operatorNamespace)"
        self.logger = logger
        var configuration = GrafanaClient.Configuration(url: settings.url)
        configuration.timeout = settings.timeout
        let secret = settings.credentialsSecret
        self.grafana = GrafanaClient(
            configuration: configuration,
            credentials: { try await Self.credentials(from: secret, kube: kube) },
            metricsFactory: metricsFactory
        )
        self.driftCorrections = Counter(label: "hearth_grafana_drift_corrections_total", factory: metricsFactory)
    }

    /// Reads the credentials Secret on every call: a rotated token is used at once, and it is never cached.
    static func credentials(from key: ObjectKey, kube: KubeClient) async throws -> GrafanaCredentials {
        let name = "\(key.namespace ?? "")/\(key.name)"
        guard let secret = try await kube.resource(Secret.self, namespace: key.namespace).getIfExists(key.name) else {
            throw OperatorError(code: .invalidInput, message: "the Grafana credentials Secret \(name) does not exist")
        }
        func value(_ field: String) -> String? {
            if let encoded = secret.data?[field], let data = Data(base64Encoded: encoded) {
                return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return secret.stringData?[field]
        }
        if let token = value("token"), !token.isEmpty { return .token(token) }
        if let username = value("username"), let password = value("password"), !username.isEmpty {
            return .basic(username: username, password: password)
        }
        throw OperatorError(
            code: .invalidInput,
            message:
                "the Grafana credentials Secret \(name) has neither key \"token\" nor keys \"username\" and \"password\""
        )
    }

    // MARK: Sync

    /// Makes the datasource match, or says why it cannot. `ownerWants` answers whether a target still asks for a
    /// datasource with a fingerprint (to tell a conflict between targets from a changed request).
    func sync(
        _ desired: DesiredDatasource,
        for target: ObjectKey,
        ownerWants: (ObjectKey) -> String?,
        now: ContinuousClock.Instant = .now
    ) async -> (outcome: DatasourceOutcome, retryAfter: Duration, corrected: [String]) {
        let fingerprint = desired.fingerprint
        if let cached = self.cached(desired, for: target, fingerprint: fingerprint, ownerWants: ownerWants, now: now) {
            return (cached.0, cached.1, [])
        }
        await self.gate.lock()
        defer { self.gate.unlock() }
        if let cached = self.cached(desired, for: target, fingerprint: fingerprint, ownerWants: ownerWants, now: now) {
            return (cached.0, cached.1, [])
        }
        if let until = self.state.withLock({ $0.unreachableUntil }), ContinuousClock.now < until {
            return (
                .pending(
                    reason: ConditionReason.grafanaUnreachable,
                    message: "Grafana at \(self.settings.url) did not answer another datasource's call just now; "
                        + "retrying with backoff"
                ), until - ContinuousClock.now, []
            )
        }
        let previous = self.state.withLock { $0.entries[desired.uid] }
        let drift = previous.map { $0.syncedOnce && $0.fingerprint == fingerprint } ?? false
        let started = ContinuousClock.now
        let (outcome, corrected, userProblem) = await self.apply(desired)
        // The outcome holds from when Grafana answered (or timed out), not from when it was asked: a call as long
        // as the backoff would otherwise be stale on arrival, and the next reconcile would ask again at once.
        let answered = now + (ContinuousClock.now - started)
        let failures = outcome.isSynced ? 0 : (previous?.fingerprint == fingerprint ? (previous?.failures ?? 0) : 0) + 1
        let retryAfter: Duration
        if outcome.isSynced || userProblem {
            retryAfter = self.jitteredResync(desired.uid)
        } else {
            // 5 s, 10 s, 20 s … up to the resync period.
            let backoff = self.settings.initialBackoff * (1 << min(failures - 1, 12))
            retryAfter = min(backoff, self.settings.resyncPeriod)
        }
        let unreachable = outcome.reason == ConditionReason.grafanaUnreachable
        self.state.withLock { state in
            state.unreachableUntil = unreachable ? ContinuousClock.now + retryAfter : nil
            state.entries[desired.uid] = Entry(
                owner: target,
                fingerprint: fingerprint,
                outcome: outcome,
                nextCheck: answered + retryAfter,
                failures: failures,
                syncedOnce: outcome.isSynced || (previous?.fingerprint == fingerprint && previous?.syncedOnce == true)
            )
        }
        let driftCorrected = drift && !corrected.isEmpty
        if driftCorrected { self.driftCorrections.increment() }
        return (outcome, retryAfter, driftCorrected ? corrected : [])
    }

    /// The remembered outcome while it holds (no Grafana call), or nil.
    func cached(
        _ desired: DesiredDatasource,
        for target: ObjectKey,
        fingerprint: String,
        ownerWants: (ObjectKey) -> String?,
        now: ContinuousClock.Instant
    ) -> (DatasourceOutcome, Duration)? {
        guard let entry = self.state.withLock({ $0.entries[desired.uid] }) else { return nil }
        if entry.fingerprint != fingerprint, entry.owner != target, entry.syncedOnce,
            ownerWants(entry.owner) == entry.fingerprint
        {
            return (
                .failed(
                    reason: ConditionReason.datasourceSpecConflict,
                    message: "target \(entry.owner) already defines datasource uid \(desired.uid) differently "
                        + "(name, URL, tenant or credentials); give this target its own spec.grafana.datasource.uid "
                        + "or ask for the same datasource"
                ),
                self.settings.resyncPeriod
            )
        }
        guard entry.fingerprint == fingerprint, now < entry.nextCheck else { return nil }
        return (entry.outcome, entry.nextCheck - now)
    }

    func jitteredResync(_ uid: String) -> Duration {
        // Deterministic per uid (0-10%), so a datasource's period does not wander between runs.
        let spread = Double(UInt8(truncatingIfNeeded: uid.utf8.reduce(0) { $0 &* 31 &+ Int($1) })) / 2550
        return self.settings.resyncPeriod * (1 + spread)
    }

    func digest(_ desired: DesiredDatasource) -> String {
        let fingerprint = desired.fingerprint
        if let digest = self.state.withLock({ $0.digests[fingerprint] }) { return digest }
        let digest = desired.secretsDigest()
        self.state.withLock { state in
            if state.digests.count > 4096 { state.digests.removeAll() }
            state.digests[fingerprint] = digest
        }
        return digest
    }

    /// One pass against Grafana: the outcome, the fields corrected, and whether only the user can fix it.
    func apply(_ desired: DesiredDatasource) async -> (DatasourceOutcome, [String], Bool) {
        let digest = self.digest(desired)
        let synced = DatasourceOutcome.synced(uid: desired.uid, name: desired.name)
        do {
            guard let live = try await self.grafana.datasource(uid: desired.uid) else {
                return try await self.create(desired, digest: digest)
            }
            if live.readOnly {
                return (
                    .failed(
                        reason: ConditionReason.datasourceReadOnly,
                        message: "datasource uid \(desired.uid) (\"\(live.name)\") is provisioned from a file in "
                            + "Grafana and cannot be changed through the API; remove it from Grafana's provisioning "
                            + "or use another spec.grafana.datasource.uid"
                    ), [], true
                )
            }
            let differences = desired.differences(from: live, marker: self.marker, secretsDigest: digest)
            if differences.isEmpty { return (synced, [], false) }
            let command = desired.command(preserving: live, marker: self.marker, secretsDigest: digest)
            do {
                _ = try await self.grafana.updateDatasource(uid: desired.uid, command)
            } catch let error where error.code == .conflict {
                return try await self.explainConflict(desired, error)
            }
            self.logger.info(
                "updated Grafana datasource",
                metadata: ["grafana.uid": "\(desired.uid)", "grafana.fields": "\(differences.joined(separator: ","))"]
            )
            return (synced, differences, false)
        } catch {
            return Self.outcome(of: error, uid: desired.uid)
        }
    }

    func create(
        _ desired: DesiredDatasource,
        digest: String
    ) async throws(GrafanaError) -> (
        DatasourceOutcome, [String], Bool
    ) {
        let command = desired.command(preserving: nil, marker: self.marker, secretsDigest: digest)
        do {
            _ = try await self.grafana.createDatasource(command)
        } catch let error where error.code == .conflict {
            return try await self.explainConflict(desired, error)
        }
        self.logger.info(
            "created Grafana datasource",
            metadata: ["grafana.uid": "\(desired.uid)", "grafana.name": "\(desired.name)"]
        )
        return (.synced(uid: desired.uid, name: desired.name), ["created"], false)
    }

    /// A 409: the name is another datasource's (never taken over), or a race (retried).
    func explainConflict(
        _ desired: DesiredDatasource,
        _ error: GrafanaError
    ) async throws(GrafanaError) -> (
        DatasourceOutcome, [String], Bool
    ) {
        if let holder = try await self.grafana.datasource(name: desired.name), holder.uid != desired.uid {
            return (
                .failed(
                    reason: ConditionReason.datasourceNameConflict,
                    message: "Grafana already has a datasource named \"\(desired.name)\" with uid \(holder.uid), "
                        + "which Hearth does not manage and will not take over; rename or delete it in Grafana, or "
                        + "set another spec.grafana.datasource.name"
                ), [], true
            )
        }
        return (
            .pending(
                reason: ConditionReason.reconciling,
                message: "Grafana answered 409 (\(error.message)); the datasource changed meanwhile, retrying"
            ), [], false
        )
    }

    static func outcome(of error: any Error, uid: String) -> (DatasourceOutcome, [String], Bool) {
        guard let error = error as? GrafanaError else {
            return (.pending(reason: ConditionReason.grafanaUnreachable, message: "\(error)"), [], false)
        }
        switch error.code {
        case .unauthorized, .forbidden, .invalidConfiguration:
            return (
                .failed(
                    reason: ConditionReason.grafanaUnauthorized,
                    message: "Grafana refused the operator's credentials (\(error)); the service account needs the "
                        + "datasource permissions (Admin role, or datasources:create, write, read and delete)"
                ), [], false
            )
        case .badRequest:
            return (
                .failed(
                    reason: ConditionReason.datasourceRejected,
                    message: "Grafana rejected datasource \(uid): \(error)"
                ), [], true
            )
        default:
            return (.pending(reason: ConditionReason.grafanaUnreachable, message: "\(error)"), [], false)
        }
    }

    // MARK: Removal

    /// Deletes the datasource if Hearth's marker is on it; true when none is left to wait for.
    func delete(uid: String) async throws(GrafanaError) {
        await self.gate.lock()
        defer { self.gate.unlock() }
        defer { self.state.withLock { _ = $0.entries.removeValue(forKey: uid) } }
        guard let live = try await self.grafana.datasource(uid: uid) else { return }
        guard live.jsonData[DesiredDatasource.managedByKey]?.stringValue == self.marker, !live.readOnly else {
            self.logger.info("left a Grafana datasource Hearth does not manage", metadata: ["grafana.uid": "\(uid)"])
            return
        }
        try await self.grafana.deleteDatasource(uid: uid)
        self.logger.info("deleted Grafana datasource", metadata: ["grafana.uid": "\(uid)"])
    }

    /// Deletes Hearth's datasources that no target asks for any more (a removed spec.grafana, a target deleted
    /// while cleanup was skipped). Errors wait for the next sweep.
    func sweep(keeping wanted: Set<String>) async {
        let all: [Datasource]
        do {
            all = try await self.grafana.datasources()
        } catch {
            // Tried again at the next period: a Grafana that refuses or is down is not asked on every reconcile.
            self.logger.debug("datasource sweep skipped", metadata: ["error": "\(error)"])
            return
        }
        for datasource in all
        where datasource.jsonData[DesiredDatasource.managedByKey]?.stringValue == self.marker
            && !wanted.contains(datasource.uid)
        {
            do {
                try await self.delete(uid: datasource.uid)
            } catch {
                self.logger.warning(
                    "could not delete an unused Grafana datasource",
                    metadata: ["grafana.uid": "\(datasource.uid)", "error": "\(error)"]
                )
            }
        }
    }
}

extension DatasourceOutcome {
    var isSynced: Bool {
        if case .synced = self { return true }
        return false
    }

    var reason: String? {
        switch self {
        case .notRequested, .synced: nil
        case .failed(let reason, _), .pending(let reason, _): reason
        }
    }
}
