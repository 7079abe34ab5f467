#!/usr/bin/env python3
"""Generates Sources/KubeModel/Generated/Kinds.swift: typed views over JSON for the kinds Hearth reads and writes.

Each entry: TypeName, resource (group, version, kind, plural, namespaced) or None, fields.
A field is "name:Type" (optional accessor) or "name:!View" (non-optional nested view, empty when absent).
"""
import re, sys

KINDS = [
  # core/v1
  ("Pod", ("", "v1", "Pod", "pods", True), "spec:!PodSpec status:!PodStatus"),
  ("PodSpec", None, "containers:[Container] initContainers:[Container] volumes:[Volume] serviceAccountName:String "
     "nodeName:String nodeSelector:[String:String] hostPID:Bool hostNetwork:Bool securityContext:PodSecurityContext "
     "tolerations:[Toleration] affinity:AnyObjectView priorityClassName:String restartPolicy:String "
     "terminationGracePeriodSeconds:Int64 dnsPolicy:String automountServiceAccountToken:Bool imagePullSecrets:[LocalObjectReference]"),
  ("PodStatus", None, "phase:String podIP:String hostIP:String conditions:[PodCondition] containerStatuses:[ContainerStatus] startTime:String"),
  ("PodCondition", None, "type:String status:String reason:String message:String"),
  ("ContainerStatus", None, "name:String ready:Bool restartCount:Int containerID:String image:String imageID:String"),
  ("PodTemplateSpec", None, "metadata:!ObjectMeta spec:!PodSpec"),
  ("Container", None, "name:String image:String imagePullPolicy:String command:[String] args:[String] workingDir:String "
     "env:[EnvVar] envFrom:[AnyObjectView] ports:[ContainerPort] resources:ResourceRequirements volumeMounts:[VolumeMount] "
     "securityContext:SecurityContext livenessProbe:Probe readinessProbe:Probe startupProbe:Probe"),
  ("EnvVar", None, "name:String value:String valueFrom:EnvVarSource"),
  ("EnvVarSource", None, "fieldRef:ObjectFieldSelector secretKeyRef:KeySelector configMapKeyRef:KeySelector"),
  ("ObjectFieldSelector", None, "apiVersion:String fieldPath:String"),
  ("KeySelector", None, "name:String key:String optional:Bool"),
  ("ContainerPort", None, "name:String containerPort:Int protocol:String hostPort:Int"),
  ("ResourceRequirements", None, "limits:[String:String] requests:[String:String]"),
  ("VolumeMount", None, "name:String mountPath:String readOnly:Bool subPath:String mountPropagation:String"),
  ("Volume", None, "name:String hostPath:HostPathVolumeSource configMap:ConfigMapVolumeSource secret:SecretVolumeSource emptyDir:AnyObjectView projected:AnyObjectView"),
  ("HostPathVolumeSource", None, "path:String type:String"),
  ("ConfigMapVolumeSource", None, "name:String defaultMode:Int optional:Bool items:[KeyToPath]"),
  ("SecretVolumeSource", None, "secretName:String defaultMode:Int optional:Bool items:[KeyToPath]"),
  ("KeyToPath", None, "key:String path:String mode:Int"),
  ("SecurityContext", None, "privileged:Bool runAsUser:Int64 runAsGroup:Int64 runAsNonRoot:Bool readOnlyRootFilesystem:Bool "
     "allowPrivilegeEscalation:Bool capabilities:Capabilities seccompProfile:SeccompProfile"),
  ("PodSecurityContext", None, "runAsUser:Int64 runAsGroup:Int64 runAsNonRoot:Bool fsGroup:Int64 seccompProfile:SeccompProfile"),
  ("Capabilities", None, "add:[String] drop:[String]"),
  ("SeccompProfile", None, "type:String localhostProfile:String"),
  ("Toleration", None, "key:String operator:String value:String effect:String tolerationSeconds:Int64"),
  ("Probe", None, "httpGet:HTTPGetAction exec:ExecAction tcpSocket:AnyObjectView initialDelaySeconds:Int periodSeconds:Int "
     "timeoutSeconds:Int failureThreshold:Int successThreshold:Int"),
  ("HTTPGetAction", None, "path:String port:JSONValue scheme:String host:String"),
  ("ExecAction", None, "command:[String]"),
  ("LocalObjectReference", None, "name:String"),
  ("Node", ("", "v1", "Node", "nodes", False), "spec:!NodeSpec status:!NodeStatus"),
  ("NodeSpec", None, "unschedulable:Bool taints:[Taint] podCIDR:String providerID:String"),
  ("Taint", None, "key:String value:String effect:String"),
  ("NodeStatus", None, "conditions:[PodCondition] addresses:[NodeAddress] nodeInfo:AnyObjectView capacity:[String:String] allocatable:[String:String]"),
  ("NodeAddress", None, "type:String address:String"),
  ("Namespace", ("", "v1", "Namespace", "namespaces", False), "spec:!AnyObjectView status:!AnyObjectView"),
  ("ConfigMap", ("", "v1", "ConfigMap", "configmaps", True), "data:[String:String] binaryData:[String:String] immutable:Bool"),
  ("Secret", ("", "v1", "Secret", "secrets", True), "data:[String:String] stringData:[String:String] type:String immutable:Bool"),
  ("Service", ("", "v1", "Service", "services", True), "spec:!ServiceSpec status:!AnyObjectView"),
  ("ServiceSpec", None, "type:String selector:[String:String] ports:[ServicePort] clusterIP:String"),
  ("ServicePort", None, "name:String port:Int targetPort:JSONValue protocol:String nodePort:Int"),
  ("ServiceAccount", ("", "v1", "ServiceAccount", "serviceaccounts", True), "secrets:[AnyObjectView] imagePullSecrets:[LocalObjectReference] automountServiceAccountToken:Bool"),
  # apps/v1
  ("DaemonSet", ("apps", "v1", "DaemonSet", "daemonsets", True), "spec:!DaemonSetSpec status:!DaemonSetStatus"),
  ("DaemonSetSpec", None, "selector:LabelSelector template:!PodTemplateSpec updateStrategy:DaemonSetUpdateStrategy minReadySeconds:Int revisionHistoryLimit:Int"),
  ("DaemonSetUpdateStrategy", None, "type:String rollingUpdate:AnyObjectView"),
  ("DaemonSetStatus", None, "currentNumberScheduled:Int desiredNumberScheduled:Int numberAvailable:Int numberMisscheduled:Int "
     "numberReady:Int numberUnavailable:Int updatedNumberScheduled:Int observedGeneration:Int64 conditions:[PodCondition]"),
  # rbac.authorization.k8s.io/v1
  ("ClusterRole", ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False), "rules:[PolicyRule] aggregationRule:AnyObjectView"),
  ("Role", ("rbac.authorization.k8s.io", "v1", "Role", "roles", True), "rules:[PolicyRule]"),
  ("PolicyRule", None, "apiGroups:[String] resources:[String] verbs:[String] resourceNames:[String] nonResourceURLs:[String]"),
  ("ClusterRoleBinding", ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False), "roleRef:RoleRef subjects:[Subject]"),
  ("RoleBinding", ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True), "roleRef:RoleRef subjects:[Subject]"),
  ("RoleRef", None, "apiGroup:String kind:String name:String"),
  ("Subject", None, "kind:String name:String namespace:String apiGroup:String"),
  # coordination.k8s.io/v1
  ("Lease", ("coordination.k8s.io", "v1", "Lease", "leases", True), "spec:!LeaseSpec"),
  ("LeaseSpec", None, "holderIdentity:String leaseDurationSeconds:Int acquireTime:String renewTime:String leaseTransitions:Int preferredHolder:String strategy:String"),
  # events.k8s.io/v1
  ("Event", ("events.k8s.io", "v1", "Event", "events", True), "eventTime:String series:EventSeries reportingController:String "
     "reportingInstance:String action:String reason:String regarding:ObjectReference related:ObjectReference note:String type:String "
     "deprecatedCount:Int deprecatedFirstTimestamp:String deprecatedLastTimestamp:String"),
  ("EventSeries", None, "count:Int lastObservedTime:String"),
  ("ObjectReference", None, "apiVersion:String kind:String name:String namespace:String uid:String resourceVersion:String fieldPath:String"),
  # apiextensions.k8s.io/v1
  ("CustomResourceDefinition", ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False),
     "spec:!CustomResourceDefinitionSpec status:!CustomResourceDefinitionStatus"),
  ("CustomResourceDefinitionSpec", None, "group:String names:!CustomResourceDefinitionNames scope:String versions:[CustomResourceDefinitionVersion] preserveUnknownFields:Bool"),
  ("CustomResourceDefinitionNames", None, "plural:String singular:String kind:String listKind:String shortNames:[String] categories:[String]"),
  ("CustomResourceDefinitionVersion", None, "name:String served:Bool storage:Bool deprecated:Bool schema:CustomResourceValidation "
     "subresources:CustomResourceSubresources additionalPrinterColumns:[CustomResourceColumnDefinition]"),
  ("CustomResourceValidation", None, "openAPIV3Schema:JSONValue"),
  ("CustomResourceSubresources", None, "status:AnyObjectView scale:AnyObjectView"),
  ("CustomResourceColumnDefinition", None, "name:String type:String format:String description:String priority:Int jsonPath:String"),
  ("CustomResourceDefinitionStatus", None, "conditions:[Condition] acceptedNames:CustomResourceDefinitionNames storedVersions:[String]"),
]

KEYWORDS = {"protocol", "operator", "type", "exec", "default"}

out = ["// Generated by scripts/gen-kube-model.py. Do not edit.", "// swift-format-ignore-file", ""]
for name, res, fields in KINDS:
    if res:
        g, v, k, p, ns = res
        out.append(f"/// {(g + '/' if g else '')}{v} {k}.")
        out.append(f"public struct {name}: KubeResource {{")
        out.append(f"    public static let resourceType = ResourceType(group: \"{g}\", version: \"{v}\", kind: \"{k}\", plural: \"{p}\", namespaced: {'true' if ns else 'false'})")
    else:
        out.append(f"/// {name}.")
        out.append(f"public struct {name}: JSONView {{")
    out.append("    public var object: JSONObject")
    out.append("    public init(object: JSONObject) { self.object = object }")
    for f in fields.split():
        key, typ = f.split(":", 1)
        ident = f"`{key}`" if key in KEYWORDS else key
        if typ.startswith("!"):
            t = typ[1:]
            out.append(f"    public var {ident}: {t} {{ get {{ self.view(\"{key}\") }} set {{ self.setView(\"{key}\", newValue) }} }}")
        else:
            out.append(f"    public var {ident}: {typ}? {{ get {{ self.get(\"{key}\") }} set {{ self.set(\"{key}\", newValue) }} }}")
    out.append("}")
    out.append("")
open(sys.argv[1], "w").write("\n".join(out))
