// AgentRenderer.swift: the desired agent objects for a set of resolved targets: ServiceAccount, ClusterRole and
// binding, the ConfigMap holding every target, the credentials Secret and the DaemonSet. Only fields the operator
// owns are set, so server-side apply leaves everything else (other managers, server defaults) alone.

import HearthAPI
import KubeModel

/// The objects the operator applies, in apply order.
public struct AgentObjects: Sendable {
    public var serviceAccount: ServiceAccount
    public var clusterRole: ClusterRole
    public var clusterRoleBinding: ClusterRoleBinding
    public var configMap: ConfigMap
    public var secret: Secret
    public var daemonSet: DaemonSet
    /// The pod-template annotation value.
    public var configHash: String
    /// Target key → fingerprint of its entry, for "is this target in the running configuration".
    public var entries: [ObjectKey: String]

    /// Every object as JSON, in apply order.
    public var all: [JSONValue] {
        [
            self.serviceAccount.json, self.clusterRole.json, self.clusterRoleBinding.json, self.configMap.json,
            self.secret.json, self.daemonSet.json,
        ]
    }
}

/// Renders agent objects.
public struct AgentRenderer: Sendable {
    public static let configHashAnnotation = "profiling.hearth.dev/config-hash"
    public static let configKey = "targets.json"

    public var configuration: OperatorConfiguration

    public init(configuration: OperatorConfiguration) { self.configuration = configuration }

    /// Fingerprint of one entry (stable JSON).
    static func fingerprint(_ entry: AgentTargetEntry) -> String {
        SHA256.hex(KubeJSON.string(JSONValue.object(entry.json)))
    }

    public func render(_ targets: [ResolvedTarget]) -> AgentObjects {
        let configuration = self.configuration
        let namespace = configuration.namespace
        let labels = configuration.commonLabels
        let included = targets.filter { $0.entry != nil }.sorted { $0.key < $1.key }

        // The configuration: every included target, sorted, as stable JSON.
        let config: JSONValue = [
            "version": 1,
            "targets": .array(included.compactMap { $0.entry.map { JSONValue.object($0.json) } }),
        ]
        let configText = KubeJSON.string(config)
        var credentials: [String: String] = [:]
        for target in included { credentials.merge(target.credentials) { _, new in new } }
        let secretVersions = included.flatMap(\.secretVersions).sorted()
        let hash = SHA256.hex(
            configText + "\n" + secretVersions.joined(separator: ",") + "\n"
                + credentials.keys.sorted().joined(separator: ",")
        )

        var serviceAccount = ServiceAccount(name: configuration.agentName, namespace: namespace)
        serviceAccount.metadata.labels = labels

        var clusterRole = ClusterRole(name: configuration.clusterRoleName)
        clusterRole.metadata.labels = labels
        var podsRule = PolicyRule()
        podsRule.apiGroups = [""]
        podsRule.resources = ["pods"]
        podsRule.verbs = ["get", "list", "watch"]
        var nodesRule = PolicyRule()
        nodesRule.apiGroups = [""]
        nodesRule.resources = ["nodes"]
        nodesRule.verbs = ["get"]
        clusterRole.rules = [podsRule, nodesRule]

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
        var templateMeta = ObjectMeta(labels: labels)
        templateMeta.annotations = [Self.configHashAnnotation: hash]
        template.metadata = templateMeta
        template.spec = self.podSpec()
        spec.template = template
        daemonSet.spec = spec

        var entries: [ObjectKey: String] = [:]
        for target in included {
            if let entry = target.entry { entries[target.key] = Self.fingerprint(entry) }
        }
        return AgentObjects(
            serviceAccount: serviceAccount,
            clusterRole: clusterRole,
            clusterRoleBinding: binding,
            configMap: configMap,
            secret: secret,
            daemonSet: daemonSet,
            configHash: hash,
            entries: entries
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
        container.args = [
            "run", "--config", "/etc/hearth/config/\(Self.configKey)", "--credentials", TargetResolver.credentialsPath,
        ]
        var nodeName = EnvVar()
        nodeName.name = "NODE_NAME"
        var source = EnvVarSource()
        var field = ObjectFieldSelector()
        field.object["fieldPath"] = "spec.nodeName"
        source.fieldRef = field
        nodeName.valueFrom = source
        container.env = [nodeName]
        var port = ContainerPort()
        port.name = "http"
        port.containerPort = 4041
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
        mount("config", "/etc/hearth/config")
        var secretVolume = Volume()
        secretVolume.name = "credentials"
        var secretSource = SecretVolumeSource()
        secretSource.secretName = configuration.secretName
        secretSource.defaultMode = 0o400
        secretVolume.secret = secretSource
        volumes.append(secretVolume)
        mount("credentials", TargetResolver.credentialsPath)
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
            capabilities.add = [
                "BPF", "PERFMON", "SYS_PTRACE", "SYS_RESOURCE", "DAC_READ_SEARCH", "CHECKPOINT_RESTORE",
            ]
            capabilities.drop = ["ALL"]
            security.capabilities = capabilities
            var sysKernel = Volume()
            sysKernel.name = "sys-kernel"
            var hostPath = HostPathVolumeSource()
            hostPath.path = "/sys/kernel"
            hostPath.type = "Directory"
            sysKernel.hostPath = hostPath
            volumes.append(sysKernel)
            mount("sys-kernel", "/sys/kernel")
        } else {
            security.privileged = true
            security.runAsUser = 0
        }
        container.securityContext = security
        container.volumeMounts = mounts
        pod.containers = [container]
        pod.volumes = volumes
        return pod
    }
}
