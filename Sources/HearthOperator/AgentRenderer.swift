// AgentRenderer.swift: the desired agent objects for a set of resolved targets: ServiceAccount, ClusterRole and
// binding, the Role and binding for the agents' node Leases, the ConfigMap holding every target, the credentials
// Secret and the DaemonSet. Only fields the operator owns are set, so server-side apply leaves everything else
// (other managers, server defaults) alone.
//
// The pod template holds only what needs an agent restart (image, security mode, resources, flags): targets reach
// running agents through the mounted ConfigMap and Secret, which the agent reloads live, so a target edit never
// rolls the DaemonSet. Each agent reports the configuration revision it runs in its node Lease.

import HearthAPI
import KubeModel

/// The objects the operator applies, in apply order.
public struct AgentObjects: Sendable {
    public var serviceAccount: ServiceAccount
    public var clusterRole: ClusterRole
    public var clusterRoleBinding: ClusterRoleBinding
    public var leaseRole: Role
    public var leaseRoleBinding: RoleBinding
    public var configMap: ConfigMap
    public var secret: Secret
    public var daemonSet: DaemonSet
    /// The configuration's revision (``AgentConfiguration/revision``), which agents report in their Leases.
    public var revision: String

    /// Every object as JSON, in apply order.
    public var all: [JSONValue] {
        [
            self.serviceAccount.json, self.clusterRole.json, self.clusterRoleBinding.json, self.leaseRole.json,
            self.leaseRoleBinding.json, self.configMap.json, self.secret.json, self.daemonSet.json,
        ]
    }
}

/// Renders agent objects.
public struct AgentRenderer: Sendable {
    public static let configKey = AgentConfiguration.fileName
    /// The capabilities of the `capabilities` security mode, each needed (see the README, "Run in a cluster").
    public static let agentCapabilities = [
        "BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH", "CHECKPOINT_RESTORE", "SYSLOG",
    ]

    public var configuration: OperatorConfiguration

    public init(configuration: OperatorConfiguration) { self.configuration = configuration }

    /// Fingerprint of one entry (stable JSON).
    static func fingerprint(_ entry: AgentConfiguration.Target) -> String {
        SHA256.hex(String(decoding: AgentConfiguration(targets: [entry]).encoded(), as: UTF8.self))
    }

    public func render(_ targets: [ResolvedTarget]) -> AgentObjects {
        let configuration = self.configuration
        let namespace = configuration.namespace
        let labels = configuration.commonLabels
        let included = targets.filter { $0.entry != nil }.sorted { $0.key < $1.key }

        // The configuration: every included target, sorted, as stable JSON; its revision also covers the
        // versions of the Secrets the credentials came from (never their values).
        var credentials: [String: String] = [:]
        for target in included { credentials.merge(target.credentials) { _, new in new } }
        let secretVersions = included.flatMap(\.secretVersions).sorted()
        var config = AgentConfiguration(targets: included.compactMap(\.entry))
        config.revision = String(
            SHA256.hex(
                String(decoding: config.encoded(), as: UTF8.self) + "\n" + secretVersions.joined(separator: ",")
                    + "\n" + credentials.keys.sorted().joined(separator: ",")
            ).prefix(16)
        )
        let configText = String(decoding: config.encoded(), as: UTF8.self)

        var serviceAccount = ServiceAccount(name: configuration.agentName, namespace: namespace)
        serviceAccount.metadata.labels = labels

        var clusterRole = ClusterRole(name: configuration.clusterRoleName)
        clusterRole.metadata.labels = labels
        var podsRule = PolicyRule()
        podsRule.apiGroups = [""]
        podsRule.resources = ["pods"]
        // The agent lists and watches its node's pods (a field selector cannot narrow RBAC), nothing else
        // cluster-wide.
        podsRule.verbs = ["list", "watch"]
        clusterRole.rules = [podsRule]

        var binding = ClusterRoleBinding(name: configuration.clusterRoleName)
        binding.metadata.labels = labels
        var roleRef = RoleRef()
        roleRef.apiGroup = "rbac.authorization.k8s.io"
        roleRef.kind = "ClusterRole"
        roleRef.name = configuration.clusterRoleName
        binding.roleRef = roleRef
        var subject = Subject()
        subject.kind = "ServiceAccount"
        subject.name = configuration.agentName
        subject.namespace = namespace
        binding.subjects = [subject]

        // The agents' node Leases: only leases, only in this namespace.
        var leaseRole = Role(name: configuration.agentName, namespace: namespace)
        leaseRole.metadata.labels = labels
        var leasesRule = PolicyRule()
        leasesRule.apiGroups = ["coordination.k8s.io"]
        leasesRule.resources = ["leases"]
        leasesRule.verbs = ["get", "create", "update"]
        leaseRole.rules = [leasesRule]
        var leaseBinding = RoleBinding(name: configuration.agentName, namespace: namespace)
        leaseBinding.metadata.labels = labels
        var leaseRoleRef = RoleRef()
        leaseRoleRef.apiGroup = "rbac.authorization.k8s.io"
        leaseRoleRef.kind = "Role"
        leaseRoleRef.name = configuration.agentName
        leaseBinding.roleRef = leaseRoleRef
        leaseBinding.subjects = [subject]

        var configMap = ConfigMap(name: configuration.configMapName, namespace: namespace)
        configMap.metadata.labels = labels
        configMap.data = [Self.configKey: configText]

        var secret = Secret(name: configuration.secretName, namespace: namespace)
        secret.metadata.labels = labels
        secret.type = "Opaque"
        secret.data = credentials

        var daemonSet = DaemonSet(name: configuration.agentName, namespace: namespace)
        daemonSet.metadata.labels = labels
        let selectorLabels = [
            "app.kubernetes.io/name": "hearth-agent", "profiling.hearth.dev/operator-namespace": namespace,
        ]
        var spec = DaemonSetSpec()
        spec.selector = LabelSelector(matchLabels: selectorLabels)
        var strategy = DaemonSetUpdateStrategy()
        strategy.type = "RollingUpdate"
        strategy.rollingUpdate = AnyObjectView(object: ["maxUnavailable": 1])
        spec.updateStrategy = strategy
        var template = PodTemplateSpec()
        template.metadata = ObjectMeta(labels: labels)
        template.spec = self.podSpec()
        spec.template = template
        daemonSet.spec = spec

        return AgentObjects(
            serviceAccount: serviceAccount,
            clusterRole: clusterRole,
            clusterRoleBinding: binding,
            leaseRole: leaseRole,
            leaseRoleBinding: leaseBinding,
            configMap: configMap,
            secret: secret,
            daemonSet: daemonSet,
            revision: config.revision
        )
    }

    func podSpec() -> PodSpec {
        let configuration = self.configuration
        var pod = PodSpec()
        pod.serviceAccountName = configuration.agentName
        pod.hostPID = true
        pod.priorityClassName = configuration.priorityClassName
        if !configuration.nodeSelector.isEmpty { pod.nodeSelector = configuration.nodeSelector }
        if !configuration.tolerations.isEmpty { pod.tolerations = configuration.tolerations }

        var container = Container()
        container.name = "agent"
        container.image = configuration.agentImage
        container.args = configuration.agentCommandLine.arguments
        func fromField(_ name: String, _ path: String) -> EnvVar {
            var variable = EnvVar()
            variable.name = name
            var source = EnvVarSource()
            var field = ObjectFieldSelector()
            field.object["fieldPath"] = .string(path)
            source.fieldRef = field
            variable.valueFrom = source
            return variable
        }
        // The node names the agent's pods and Lease; the agent's own namespace holds the Lease.
        container.env = [
            fromField(AgentCommandLine.Environment.nodeName, "spec.nodeName"),
            fromField(AgentCommandLine.Environment.podNamespace, "metadata.namespace"),
        ]
        var port = ContainerPort()
        port.name = "http"
        port.containerPort = AgentCommandLine.listenPort
        port.protocol = "TCP"
        container.ports = [port]
        container.resources = configuration.resources
        func probe(_ path: String) -> Probe {
            var probe = Probe()
            var get = HTTPGetAction()
            get.path = path
            get.port = "http"
            probe.httpGet = get
            probe.periodSeconds = 10
            return probe
        }
        container.livenessProbe = probe("/healthz")
        container.readinessProbe = probe("/readyz")

        var security = SecurityContext()
        var mounts: [VolumeMount] = []
        var volumes: [Volume] = []
        func mount(_ name: String, _ path: String, readOnly: Bool = true) {
            var mount = VolumeMount()
            mount.name = name
            mount.mountPath = path
            mount.readOnly = readOnly
            mounts.append(mount)
        }
        var configVolume = Volume()
        configVolume.name = "config"
        var configSource = ConfigMapVolumeSource()
        configSource.name = configuration.configMapName
        configVolume.configMap = configSource
        volumes.append(configVolume)
        mount("config", AgentCommandLine.Paths.configDirectory)
        var secretVolume = Volume()
        secretVolume.name = "credentials"
        var secretSource = SecretVolumeSource()
        secretSource.secretName = configuration.secretName
        secretSource.defaultMode = 0o400
        secretVolume.secret = secretSource
        volumes.append(secretVolume)
        mount("credentials", AgentCommandLine.Paths.credentialsDirectory)
        // The host's cgroup2 tree (pure v2 hosts; hybrid hosts have it at /sys/fs/cgroup/unified, which the agent
        // finds below this mount), read-only.
        var cgroupVolume = Volume()
        cgroupVolume.name = "host-cgroup"
        var cgroupPath = HostPathVolumeSource()
        cgroupPath.path = AgentCommandLine.defaultCgroupRoot
        cgroupPath.type = "Directory"
        cgroupVolume.hostPath = cgroupPath
        volumes.append(cgroupVolume)
        mount("host-cgroup", AgentCommandLine.Paths.hostCgroupDirectory)
        var tmp = Volume()
        tmp.name = "tmp"
        tmp.emptyDir = AnyObjectView()
        volumes.append(tmp)
        mount("tmp", "/tmp", readOnly: false)

        if configuration.securityMode == .capabilities {
            security.privileged = false
            security.runAsUser = 0
            security.readOnlyRootFilesystem = true
            security.allowPrivilegeEscalation = false
            var capabilities = Capabilities()
            capabilities.add = Self.agentCapabilities
            capabilities.drop = ["ALL"]
            // No tracefs or debugfs mount: the agent attaches to perf events, not to tracepoints or kprobes.
            security.capabilities = capabilities
            // Said explicitly, so a kubelet with --seccomp-default cannot break this mode: container runtimes'
            // default profiles (containerd's and Docker's before 2023, Debian 12's podman) allow bpf() and
            // perf_event_open() only with CAP_SYS_ADMIN, which this mode does not grant.
            var seccomp = SeccompProfile()
            seccomp.type = "Unconfined"
            security.seccompProfile = seccomp
        } else {
            security.privileged = true
            security.runAsUser = 0
            // The agent writes only to /tmp (an emptyDir), in both modes.
            security.readOnlyRootFilesystem = true
        }
        container.securityContext = security
        container.volumeMounts = mounts
        pod.containers = [container]
        pod.volumes = volumes
        return pod
    }
}

/// The entries of the most recent configuration revisions (bounded), so agents still running an older revision
/// count for the targets it already held unchanged.
struct RevisionHistory: Sendable {
    static let capacity = 16
    private var order: [String] = []
    private var entries: [String: [ObjectKey: String]] = [:]

    mutating func record(_ revision: String, entries: [ObjectKey: String]) {
        if self.entries.updateValue(entries, forKey: revision) == nil { self.order.append(revision) }
        while self.order.count > Self.capacity { self.entries.removeValue(forKey: self.order.removeFirst()) }
    }

    /// The fingerprint a target had in `revision`, if that revision is known and held it.
    func fingerprint(of key: ObjectKey, in revision: String) -> String? {
        self.entries[revision]?[key]
    }
}
