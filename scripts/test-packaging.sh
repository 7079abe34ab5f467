#!/usr/bin/env bash
# Packaging checks with the real tools users run (issue 10): the Helm chart (helm lint and template for every
# option set in charts/hearth/ci/, kubernetes-validate, checkov with every skip explained), the operator's agent
# objects (kubernetes-validate, checkov), manifests/ and the chart's CRD in sync with crds/; the Argo CD health
# check under lua5.4 and lua5.1 and the Flux CEL checks; the root re-exec of the README's scripts; the images
# built by podman FROM scratch and run: the agent checks and profiles this host, the operator image reconciles
# the samples against kube-test-server after each option set's `helm template | kubectl apply --server-side`,
# the README's Helm install (an upgrade that must upgrade the CRD) and its `kubectl apply -k manifests/`, the
# agent image runs the DaemonSet the operator rendered until a target is Ready, and every request the operator
# made is checked against the chart's RBAC.
#
# Binaries (built when missing): HEARTH_OPERATOR, HEARTH_AGENT, HEARTH_KUBE_TEST_SERVER (default .build/...).
# Needs root (podman, eBPF): re-runs itself through sudo when needed.
set -euo pipefail
source "$(dirname "$0")/lib/root.sh"
hearth_require_root "$0" "$@"
cd "$(dirname "$0")/.."
root=$PWD
started=$SECONDS

operator_binary=${HEARTH_OPERATOR:-.build/release/hearth-operator}
agent_binary=${HEARTH_AGENT:-.build/release/hearth-agent}
server_binary=${HEARTH_KUBE_TEST_SERVER:-.build/debug/kube-test-server}
grafana_binary=${HEARTH_GRAFANA_TEST_SERVER:-.build/debug/grafana-test-server}
podman=(podman --runtime runc)
# This machine's hybrid cgroups and missing CAP_SYS_RESOURCE reject podman's default rlimits.
run=("${podman[@]}" run --ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
operator_image=ghcr.io/hearth-dev/hearth-operator:0.1.0
agent_image=ghcr.io/hearth-dev/hearth-agent:0.1.0

work=$(mktemp -d /tmp/hearth-packaging.XXXXXX)
chmod 755 "$work"
pids=()
containers=()
cleanup() {
    local status=$?
    for name in "${containers[@]}"; do "${podman[@]}" rm -f -t 2 "$name" >/dev/null 2>&1 || true; done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if ((status)); then echo "FAILED after $((SECONDS - started)) s; logs in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

step() { echo "==> $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# Polls `$@` (quietly) every 0.5 s for up to $wait_seconds seconds.
wait_seconds=60
wait_until() {
    local what=$1 deadline=$((SECONDS + wait_seconds))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "timed out after ${wait_seconds} s waiting for $what"
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------------------------------------
step "tools"
source scripts/packaging/tools.sh
hearth_packaging_tools --debian
helm version --short
python=$hearth_packaging_dir/venv/bin/python

if [[ ! -x $operator_binary ]]; then bash scripts/build-release.sh hearth-operator; fi
if [[ ! -x $agent_binary ]]; then bash scripts/build-release.sh hearth-agent; fi
if [[ ! -x $server_binary ]]; then swift build --product kube-test-server; fi
if [[ ! -x $grafana_binary ]]; then swift build --product grafana-test-server; fi

# ---------------------------------------------------------------------------------------------------------------
step "the chart's CRD and manifests/ are rendered from crds/ and the chart"
bash scripts/render-manifests.sh --check

step "helm lint and helm template for every option set in charts/hearth/ci/"
mkdir -p "$work/rendered"
option_sets=()
for values in charts/hearth/ci/*-values.yaml; do
    name=$(basename "$values" -values.yaml)
    option_sets+=("$name")
    helm lint --strict charts/hearth -f "$values" >"$work/lint-$name.log" ||
        { cat "$work/lint-$name.log"; fail "helm lint $values"; }
    helm template hearth charts/hearth --namespace hearth-system -f "$values" >"$work/rendered/$name.yaml"
    echo "    $name: $(grep -c '^kind:' "$work/rendered/$name.yaml") objects"
done
# A value the schema rejects must fail, not render.
if helm template hearth charts/hearth --set agent.securityMode=root >/dev/null 2>&1; then
    fail "values.schema.json let agent.securityMode=root through"
fi

step "the agent objects the operator renders with the chart's flags, in both security modes"
mkdir -p "$work/agent"
for mode in privileged capabilities; do
    values=charts/hearth/ci/default-values.yaml
    [[ $mode == capabilities ]] && values=charts/hearth/ci/capabilities-values.yaml
    # The Deployment's agent flags, as the chart renders them.
    mapfile -t flags < <("$python" - "$work/rendered/$(basename "$values" -values.yaml).yaml" <<'PYTHON'
import sys, yaml
for o in yaml.safe_load_all(open(sys.argv[1])):
    if o and o["kind"] == "Deployment":
        for a in o["spec"]["template"]["spec"]["containers"][0]["args"]:
            if a.split("=")[0] in ("--agent-image", "--security-mode", "--toleration", "--node-selector",
                                   "--cpu-request", "--memory-request", "--cpu-limit", "--memory-limit",
                                   "--priority-class-name"):
                print(a)
PYTHON
    )
    "$operator_binary" render -f manifests/samples/20-checkout.yaml --namespace hearth-system "${flags[@]}" \
        >"$work/agent/$mode.yaml"
    grep -q "image: \"$agent_image\"" "$work/agent/$mode.yaml" || fail "the $mode agent DaemonSet has another image"
done

step "kubernetes-validate (strict, Kubernetes 1.29 and latest)"
for version in 1.29 ""; do
    kubernetes-validate --strict --quiet ${version:+-k $version} "$work"/rendered/*.yaml "$work"/agent/*.yaml \
        >"$work/validate.log" 2>&1 || { cat "$work/validate.log"; fail "kubernetes-validate"; }
done
grep -v "ServiceMonitor" "$work/validate.log" | grep -q . && { cat "$work/validate.log"; fail "kubernetes-validate warned"; }
echo "    $(ls "$work"/rendered/*.yaml "$work"/agent/*.yaml | wc -l) files valid (ServiceMonitor: no schema, a CRD)"

step "checkov (every skipped check has its reason in scripts/packaging/checkov-*.yaml)"
checkov_run() { # CONFIG FILE...
    local config=$1
    shift
    local files=()
    for file in "$@"; do files+=(-f "$file"); done
    checkov --config-file "$config" "${files[@]}" >"$work/checkov.log" 2>&1 || { cat "$work/checkov.log"; fail "checkov $config"; }
    grep -E '^Passed checks' "$work/checkov.log" | sed 's/^/    /'
}
checkov_run scripts/packaging/checkov-chart.yaml "$work"/rendered/*.yaml
checkov_run scripts/packaging/checkov-agent-capabilities.yaml "$work/agent/capabilities.yaml"
checkov_run scripts/packaging/checkov-agent-privileged.yaml "$work/agent/privileged.yaml"
# The options that close two of the chart's skips really do: a digest, and the NetworkPolicy.
checkov -f "$work/rendered/monitoring.yaml" --framework kubernetes --skip-download --compact --quiet \
    --check CKV_K8S_43,CKV2_K8S_6 >"$work/checkov.log" 2>&1 || { cat "$work/checkov.log"; fail "checkov: monitoring values"; }

step "Argo CD health check: lua5.4 and lua5.1 (Argo CD runs Lua 5.1) on every fixture"
"$python" gitops/argocd/run_health_tests.py --lua lua5.4 --lua lua5.1 >"$work/lua.log" ||
    { cat "$work/lua.log"; fail "Argo CD health tests"; }
echo "    $(grep -c '^ok' "$work/lua.log") fixture runs passed"

step "Flux: the CEL health checks (gitops/flux/healthcheckexprs.yaml) on the same fixtures"
"$python" gitops/flux/run_cel_tests.py >"$work/cel.log" || { cat "$work/cel.log"; fail "Flux CEL health checks"; }
echo "    $(grep -c '^ok' "$work/cel.log") fixtures: current, failed and in progress as Argo CD's check says"

step "the README's scripts run as root without sudo, and re-run themselves through sudo otherwise"
mkdir -p "$work/reexec/bin" "$work/reexec/sudo-bin"
cat >"$work/reexec/probe.sh" <<EOF
source "$root/scripts/lib/root.sh"
hearth_require_root "\$0" "\$@"
echo "ran as \$(id -u): \$*"
EOF
# A sudo that records how it was called (it cannot really switch users), and a PATH without any sudo.
printf '#!/bin/bash\necho "sudo $*" >%s\n' "$work/reexec/sudo-call" >"$work/reexec/sudo-bin/sudo"
chmod 755 "$work/reexec/sudo-bin/sudo" "$work/reexec/probe.sh"
touch "$work/reexec/sudo-call" && chmod 666 "$work/reexec/sudo-call"
for tool in bash id dirname basename grep env; do ln -sf "$(command -v $tool)" "$work/reexec/bin/$tool"; done
[[ $(env -i PATH="$work/reexec/bin" bash "$work/reexec/probe.sh" a b) == "ran as 0: a b" ]] || fail "root re-exec: as root"
as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups env -i)
if message=$("${as_nobody[@]}" PATH="$work/reexec/bin" bash "$work/reexec/probe.sh" 2>&1); then
    fail "a non-root user without sudo was not stopped"
fi
grep -q "run it as root, or install sudo" <<<"$message" || fail "no clear message without sudo: $message"
"${as_nobody[@]}" PATH="$work/reexec/sudo-bin:$work/reexec/bin" HEARTH_REQUIRE_BPF=1 \
    bash "$work/reexec/probe.sh" a b >/dev/null 2>&1
[[ $(cat "$work/reexec/sudo-call") == "sudo env PATH=$work/reexec/sudo-bin:$work/reexec/bin HEARTH_REQUIRE_BPF=1 bash $work/reexec/probe.sh a b" ]] ||
    fail "sudo re-exec: $(cat "$work/reexec/sudo-call")"
echo "    root: runs; no root, no sudo: stops with a message; no root, sudo: re-runs through sudo with PATH and HEARTH_*"

# ---------------------------------------------------------------------------------------------------------------
step "images: FROM scratch, from the host's binaries (images/rootfs.sh + --build-arg ROOTFS=prebuilt)"
for image in operator agent; do
    binary=$operator_binary
    [[ $image == agent ]] && binary=$agent_binary
    bash images/rootfs.sh "$binary" "$work/image-$image/rootfs"
    previous=$("${podman[@]}" image inspect --format '{{.Id}}' "ghcr.io/hearth-dev/hearth-$image:0.1.0" 2>/dev/null || true)
    "${podman[@]}" build -q --build-arg ROOTFS=prebuilt -f "images/$image/Containerfile" \
        -t "ghcr.io/hearth-dev/hearth-$image:0.1.0" "$work/image-$image" >/dev/null
    # The image an earlier run built, now untagged, would pile up run after run.
    current=$("${podman[@]}" image inspect --format '{{.Id}}' "ghcr.io/hearth-dev/hearth-$image:0.1.0")
    if [[ -n $previous && $previous != "$current" ]]; then "${podman[@]}" rmi "$previous" >/dev/null 2>&1 || true; fi
    size=$("${podman[@]}" image inspect --format '{{.Size}}' "ghcr.io/hearth-dev/hearth-$image:0.1.0")
    layers=$("${podman[@]}" image inspect --format '{{len .RootFS.Layers}}' "ghcr.io/hearth-dev/hearth-$image:0.1.0")
    echo "    hearth-$image: $((size / 1000000)) MB, $layers layer(s)"
done

step "the agent image checks and profiles this host (--privileged --pid=host)"
"${run[@]}" --rm --privileged --pid=host "$agent_image" check | sed "s/^/    /"
python3 -c 'while True: pass' &
busy=$!
pids+=("$busy")
mkdir -p "$work/profile"
"${run[@]}" --rm --privileged --pid=host -v "$work/profile:/out" "$agent_image" \
    profile --seconds 2 -o /out/host.pb.gz --summary-json /out/summary.json >"$work/profile/log" 2>&1 ||
    { cat "$work/profile/log"; fail "hearth-agent profile in its image"; }
kill "$busy"
"$python" - "$work/profile/summary.json" "$busy" <<'PYTHON' || fail "the agent image did not profile the host"
import json, sys
summary = json.load(open(sys.argv[1]))
busy = summary["samplesByPID"].get(sys.argv[2], 0)
print(f"    {summary['samples']} samples of {summary['processes']} host processes, {busy} of the busy host process;"
      f" {summary['userSymbolizationRate']:.1%} of user frames named")
sys.exit(0 if busy >= 50 and summary["kernelFramesNamed"] > 0 else 1)
PYTHON

step "the agent image in the capabilities security mode (the capability set the operator grants, nothing else)"
capabilities=(--pid=host --user 0 --read-only --security-opt no-new-privileges --cap-drop ALL
    --cap-add BPF,PERFMON,SYS_PTRACE,DAC_READ_SEARCH,CHECKPOINT_RESTORE,SYSLOG)
# The operator's agent pod says seccomp Unconfined: podman's default profile (containers-common 0.50) refuses
# bpf() and perf_event_open() without CAP_SYS_ADMIN, and `check` must say so rather than pass.
if "${run[@]}" --rm "${capabilities[@]}" "$agent_image" check >"$work/profile/seccomp.log" 2>&1; then
    cat "$work/profile/seccomp.log"
    fail "hearth-agent check passed under podman's default seccomp profile, which refuses bpf()"
fi
grep -q "seccomp" "$work/profile/seccomp.log" || { cat "$work/profile/seccomp.log"; fail "check did not name seccomp"; }
echo "    under the runtime's default seccomp profile, check fails and names it: $(grep -m1 -o 'bpf() allowed' \
    "$work/profile/seccomp.log")"
"${run[@]}" --rm "${capabilities[@]}" --security-opt seccomp=unconfined -v "$work/profile:/out" "$agent_image" \
    profile --seconds 1 -o /out/capabilities.folded >"$work/profile/capabilities.log" 2>&1 ||
    { cat "$work/profile/capabilities.log"; fail "capabilities mode"; }
echo "    profiled with BPF, PERFMON, SYS_PTRACE, DAC_READ_SEARCH, CHECKPOINT_RESTORE, SYSLOG only"

# ---------------------------------------------------------------------------------------------------------------
# A fresh kube-test-server; sets url and KUBECONFIG.
start_cluster() { # NAME
    local dir=$work/$1
    mkdir -p "$dir"
    "$server_binary" --port 0 >"$dir/server.log" 2>&1 &
    pids+=($!)
    wait_until "kube-test-server" grep -q listening "$dir/server.log"
    url=$(awk '/listening/ {print $NF}' "$dir/server.log")
    printf 'apiVersion: v1\nkind: Config\nclusters: [{name: test, cluster: {server: "%s"}}]\ncontexts: [{name: test, context: {cluster: test}}]\ncurrent-context: test\nusers: []\n' \
        "$url" >"$dir/kubeconfig"
    chmod 644 "$dir/kubeconfig"
    export KUBECONFIG=$dir/kubeconfig
    cluster_dir=$dir
}

# Runs the block after the marker `<!-- test-packaging.sh: NAME -->` in FILE as written, one command at a time
# (a command may continue over lines ending in \); with --operator, starts the operator (playing the kubelet,
# which kube-test-server lacks) once the first command installed it.
run_block() { # FILE NAME [--operator]
    local commands=()
    mapfile -d '' -t commands < <(awk -v marker="<!-- test-packaging.sh: $2 -->" '
        $0 == marker { found = 1; next }
        found && /^```/ { if (inside) exit; inside = 1; next }
        inside { command = command $0; if (command ~ /\\$/) { command = command "\n"; next } }
        inside { printf "%s%c", command, 0; command = "" }' "$1")
    ((${#commands[@]})) || fail "no block marked test-packaging.sh: $2 in $1"
    local index
    for index in "${!commands[@]}"; do
        echo "    \$ ${commands[$index]%%$'\n'*}"
        bash -c "${commands[$index]}" >>"$cluster_dir/commands.log" 2>&1 ||
            { cat "$cluster_dir/commands.log"; fail "$1 ($2): ${commands[$index]}"; }
        [[ $index == 0 && ${3:-} == --operator ]] && start_operator
    done
    return 0
}

# Runs the operator image as the live Deployment hearth-system/hearth-operator specifies it (args, env, user,
# read-only root, no capabilities), against kube-test-server on the host network; probes on free ports.
start_operator() {
    local deployment=$cluster_dir/deployment.json
    kubectl get deployment hearth-operator -n hearth-system -o json >"$deployment"
    local image args=()
    image=$(jq -r '.spec.template.spec.containers[0].image' "$deployment")
    mapfile -t args < <(jq -r '.spec.template.spec.containers[0].args[]' "$deployment")
    local user
    user=$(jq -r '.spec.template.spec.securityContext | "\(.runAsUser):\(.runAsGroup)"' "$deployment")
    [[ $(jq -r '.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem' "$deployment") == true ]] ||
        fail "the operator's root file system is not read-only"
    operator_container=hearth-operator-test-$$-$RANDOM
    containers+=("$operator_container")
    "${run[@]}" -d --name "$operator_container" --network=host --user "$user" --read-only --cap-drop ALL \
        --security-opt no-new-privileges -e POD_NAMESPACE=hearth-system -e POD_NAME="$operator_container" \
        -v "$cluster_dir/kubeconfig:/etc/hearth/kubeconfig:ro" "$image" "${args[@]}" \
        --kubeconfig /etc/hearth/kubeconfig --metrics-address 127.0.0.1:0 --health-address 127.0.0.1:0 >/dev/null
    wait_until "the operator's endpoints" bash -c "${podman[*]} logs $operator_container 2>&1 | grep -q 'http.endpoint=health.*listening'"
    health=$("${podman[@]}" logs "$operator_container" 2>&1 | sed -n 's/.*http.address=\([^ ]*\) http.endpoint=health.*/\1/p')
    metrics=$("${podman[@]}" logs "$operator_container" 2>&1 | sed -n 's/.*http.address=\([^ ]*\) http.endpoint=metrics.*/\1/p')
    wait_until "the operator to be ready (/readyz)" curl -sf "http://$health/readyz"
}

stop_operator() {
    "${podman[@]}" stop -t 30 "$operator_container" >/dev/null
    "${podman[@]}" logs "$operator_container" >"$cluster_dir/operator.log" 2>&1
    "${podman[@]}" rm "$operator_container" >/dev/null
}

target_observed() { # NAME: the target has a status for its generation
    [[ $(kubectl get pt "$1" -n shop -o jsonpath='{.status.observedGeneration}') == \
        $(kubectl get pt "$1" -n shop -o jsonpath='{.metadata.generation}') ]]
}

health_of() { # NAME EXPECTED: Argo CD's health of the live target
    kubectl get pt "$1" -n shop -o yaml >"$cluster_dir/pt-$1.yaml"
    "$python" gitops/argocd/run_health_tests.py --object "$cluster_dir/pt-$1.yaml" --expect "$2" --lua lua5.4 |
        sed 's/^/    /'
}

step "helm template | kubectl apply --server-side for every option set; the operator image runs each"
# Not run: default (the README's Helm install below runs it) and monitoring (its image is pinned by a made-up
# digest). The grafana set runs against grafana-test-server (the datasource API double) on this host, with the
# token of manifests/samples/40-grafana-credentials.yaml.
for name in "${option_sets[@]}"; do
    start_cluster "apply-$name"
    rendered=$work/rendered/$name.yaml
    if [[ $name == grafana ]]; then
        "$grafana_binary" --port 0 --token glsa_replace-with-your-service-account-token >"$cluster_dir/grafana.log" 2>&1 &
        pids+=($!)
        wait_until "grafana-test-server" grep -q listening "$cluster_dir/grafana.log"
        grafana_url=http://$(awk '/listening/ {print $NF}' "$cluster_dir/grafana.log")
        rendered=$cluster_dir/rendered.yaml
        helm template hearth charts/hearth --namespace hearth-system -f charts/hearth/ci/grafana-values.yaml \
            --set grafana.url="$grafana_url" >"$rendered"
        # This option set leaves the CRD to the user.
        kubectl apply --server-side -f crds/ >/dev/null
    fi
    # kube-test-server serves neither monitoring.coreos.com nor networking.k8s.io.
    "$python" - "$rendered" >"$cluster_dir/objects.yaml" <<'PYTHON'
import sys, yaml
objects = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o and o["kind"] not in ("ServiceMonitor", "NetworkPolicy")]
yaml.safe_dump_all(objects, sys.stdout)
PYTHON
    # hearth-system, and shop for the watch-namespace Role.
    kubectl apply -f manifests/samples/00-namespaces.yaml >/dev/null
    kubectl apply --server-side -f "$cluster_dir/objects.yaml" >"$cluster_dir/apply.log" 2>&1 ||
        { cat "$cluster_dir/apply.log"; fail "kubectl apply --server-side: $name"; }
    echo "    $name: $(wc -l <"$cluster_dir/apply.log") objects applied"
    case $name in default | monitoring) continue ;; esac

    kubectl wait --for=condition=Established crd/profilingtargets.profiling.hearth.dev >/dev/null
    start_operator
    kubectl apply -f manifests/samples/ >/dev/null
    wait_until "the checkout target's status ($name)" target_observed checkout
    wait_until "the agent DaemonSet ($name)" kubectl get daemonset hearth-agent -n hearth-system
    pod=$(kubectl get daemonset hearth-agent -n hearth-system -o jsonpath='{.spec.template.spec}')
    case $name in
    capabilities)
        [[ $(jq -c '[.containers[0].securityContext.capabilities.add, .tolerations, .nodeSelector, .priorityClassName,
            .containers[0].resources.limits.cpu]' <<<"$pod") == \
            '[["BPF","PERFMON","SYS_PTRACE","DAC_READ_SEARCH","CHECKPOINT_RESTORE","SYSLOG"],[{"operator":"Exists"}],{"kubernetes.io/os":"linux"},"system-node-critical","500m"]' ]] ||
            fail "the capabilities values did not reach the agent DaemonSet: $pod"
        echo "    capabilities: the DaemonSet adds exactly the six capabilities, tolerates all, has the limits" ;;
    pyroscope)
        kubectl apply -f - >/dev/null <<'YAML'
apiVersion: profiling.hearth.dev/v1alpha1
kind: ProfilingTarget
metadata: {name: default-backend, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
YAML
        wait_until "the default-backend target's status" target_observed default-backend
        [[ $(kubectl get pt default-backend -n shop -o jsonpath='{.status.pyroscopeURL}') == http://pyroscope.observability.svc:4040 ]] ||
            fail "a target without spec.pyroscope did not get pyroscope.service"
        echo "    pyroscope: a target without spec.pyroscope pushes to observability/pyroscope:4040" ;;
    grafana)
        kubectl wait --for=condition=DatasourceSynced pt/checkout -n shop --timeout=60s >/dev/null ||
            fail "the checkout target's datasource did not sync: $(kubectl get pt checkout -n shop -o yaml)"
        datasource=$(curl -sf -H "Authorization: Bearer glsa_replace-with-your-service-account-token" \
            "$grafana_url/api/datasources/uid/pyroscope-shop")
        [[ $(jq -r '[.type, .url, .jsonData.httpHeaderName1, .secureJsonFields.basicAuthPassword] | @tsv' <<<"$datasource") == \
            $'grafana-pyroscope-datasource\thttp://pyroscope.observability.svc:4040\tX-Scope-OrgID\ttrue' ]] ||
            fail "the datasource in Grafana is not the one asked for: $datasource"
        echo "    grafana: the operator image provisioned datasource pyroscope-shop; kubectl wait --for=condition=DatasourceSynced" ;;
    watch-namespace)
        kubectl create namespace elsewhere >/dev/null
        kubectl apply -f - >/dev/null <<'YAML'
apiVersion: profiling.hearth.dev/v1alpha1
kind: ProfilingTarget
metadata: {name: ignored, namespace: elsewhere}
spec:
  selector: {matchLabels: {app: api}}
  pyroscope: {url: "http://127.0.0.1:1"}
YAML
        sleep 3
        [[ -z $(kubectl get pt ignored -n elsewhere -o jsonpath='{.status}') ]] ||
            fail "the operator watching shop reconciled a target in another namespace"
        echo "    watch-namespace: shop's targets reconciled, another namespace's left alone" ;;
    esac
    stop_operator
    curl -sf "$url/_test/requests" >"$cluster_dir/requests.json"
    # (No deletions here: the Helm install below runs the whole lifecycle and lists unused verbs.)
    "$python" scripts/packaging/check-rbac.py --no-unused "$rendered" "$cluster_dir/requests.json" |
        sed 's/^/    /'
    [[ ${PIPESTATUS[0]} -eq 0 ]] || fail "the operator made requests the chart's RBAC ($name) forbids"
done

step "Install on a cluster with Helm (the README's commands), upgrade from a chart whose CRD lacks a field"
start_cluster helm
# Version N-1: the same chart, its CRD without spec.suspend.
cp -r charts/hearth "$work/hearth-previous"
"$python" - "$work/hearth-previous/files/profiling.hearth.dev_profilingtargets.yaml" <<'PYTHON'
import sys, yaml
path = sys.argv[1]
crd = yaml.safe_load(open(path))
del crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["suspend"]
yaml.safe_dump(crd, open(path, "w"))
PYTHON
helm install hearth "$work/hearth-previous" --namespace hearth-system --create-namespace >/dev/null
crd_has_suspend() {
    kubectl get crd profilingtargets.profiling.hearth.dev -o json |
        jq -e '.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties | has("suspend")' >/dev/null
}
crd_has_suspend && fail "the N-1 chart's CRD already has spec.suspend"
run_block README.md helm --operator
crd_has_suspend || fail "helm upgrade did not upgrade the CRD"
echo "    helm upgrade upgraded the CRD (spec.suspend is there)"
wait_until "the checkout target's status" target_observed checkout
wait_until "the agent DaemonSet" kubectl get daemonset hearth-agent -n hearth-system
[[ $(kubectl get daemonset hearth-agent -n hearth-system -o jsonpath='{.spec.template.spec.containers[0].image}') == "$agent_image" ]] ||
    fail "the agent DaemonSet does not run $agent_image"
kubectl get pt -n shop | sed 's/^/    /'
health_of checkout Degraded
grep -q '^controller_runtime_reconcile_total' <<<"$(curl -sf "http://$metrics/metrics")" || fail "no operator metrics"

step "the agent image runs the DaemonSet the operator rendered; a target reaches Ready"
# A stand-in Pyroscope: only GET /ready matters to the operator's probe.
cat >"$cluster_dir/pyroscope.py" <<'PYTHON'
import http.server, sys
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ready" else 404); self.end_headers(); self.wfile.write(b"ready\n")
    do_POST = do_GET
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", 0), Ready)
print(server.server_address[1], flush=True)
server.serve_forever()
PYTHON
python3 "$cluster_dir/pyroscope.py" >"$cluster_dir/pyroscope.port" &
pids+=($!)
wait_until "the stand-in Pyroscope" test -s "$cluster_dir/pyroscope.port"
kubectl apply -f - >/dev/null <<EOF
apiVersion: profiling.hearth.dev/v1alpha1
kind: ProfilingTarget
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  pyroscope: {url: "http://127.0.0.1:$(cat "$cluster_dir/pyroscope.port")"}
EOF
wait_until "the api target in the agent configuration" bash -c \
    "kubectl get configmap hearth-agent-config -n hearth-system -o jsonpath='{.data.targets\.json}' | grep -q '\"api\"'"
# Play kubelet: the pod the DaemonSet specifies, with its ConfigMap, Secret and host cgroup volumes.
daemonset=$cluster_dir/daemonset.json
kubectl get daemonset hearth-agent -n hearth-system -o json >"$daemonset"
mkdir -p "$cluster_dir/agent/config" "$cluster_dir/agent/credentials"
kubectl get configmap hearth-agent-config -n hearth-system -o jsonpath='{.data.targets\.json}' \
    >"$cluster_dir/agent/config/targets.json"
kubectl get secret hearth-agent-credentials -n hearth-system -o json |
    jq -r '.data // {} | to_entries[] | "\(.key) \(.value)"' | while read -r key value; do
        base64 -d <<<"$value" >"$cluster_dir/agent/credentials/$key"
    done
[[ $(jq -r '.spec.template.spec.hostPID' "$daemonset") == true ]] || fail "the agent pod is not in the host PID namespace"
[[ $(jq -r '.spec.template.spec.containers[0].securityContext.privileged' "$daemonset") == true ]] ||
    fail "the default agent is not privileged"
mapfile -t agent_args < <(jq -r '.spec.template.spec.containers[0].args[]' "$daemonset")
agent_container=hearth-agent-test-$$-$RANDOM
containers+=("$agent_container")
"${run[@]}" -d --name "$agent_container" --privileged --pid=host --network=host \
    -e NODE_NAME=node-1 -e POD_NAMESPACE=hearth-system -e KUBECONFIG=/etc/hearth/kubeconfig \
    -v "$cluster_dir/kubeconfig:/etc/hearth/kubeconfig:ro" \
    -v "$cluster_dir/agent/config:/etc/hearth/config:ro" -v "$cluster_dir/agent/credentials:/etc/hearth/credentials:ro" \
    -v /sys/fs/cgroup:/host/sys/fs/cgroup:ro --tmpfs /tmp \
    "$(jq -r '.spec.template.spec.containers[0].image' "$daemonset")" "${agent_args[@]}" --listen 127.0.0.1:0 >/dev/null
wait_until "the agent's node Lease" kubectl get lease hearth-agent-node-1 -n hearth-system
# Play the DaemonSet controller: one node, its agent up to date and available.
generation=$(jq -r '.metadata.generation' "$daemonset")
kubectl patch daemonset hearth-agent -n hearth-system --subresource=status --type=merge -p \
    "{\"status\":{\"observedGeneration\":$generation,\"desiredNumberScheduled\":1,\"currentNumberScheduled\":1,\"updatedNumberScheduled\":1,\"numberReady\":1,\"numberAvailable\":1,\"numberMisscheduled\":0}}" >/dev/null
wait_seconds=90
wait_until "the api target to be Ready" kubectl wait pt/api -n shop --for=condition=Ready --timeout=1s
wait_seconds=60
kubectl get pt -n shop | sed 's/^/    /'
health_of api Healthy
# One renewal (every 10 s) after the Lease's creation, so the run covers every request the agent makes.
created_renew=$(kubectl get lease hearth-agent-node-1 -n hearth-system -o jsonpath='{.spec.renewTime}')
wait_until "the agent to renew its Lease" bash -c "[[ \$(kubectl get lease hearth-agent-node-1 -n hearth-system \
    -o jsonpath='{.spec.renewTime}') != '$created_renew' ]]"
"${podman[@]}" logs "$agent_container" >"$cluster_dir/agent.log" 2>&1
"${podman[@]}" rm -f -t 5 "$agent_container" >/dev/null

step "the agent's requests against the RBAC the operator rendered for it: all allowed, every grant used"
# The agent ran with a kubeconfig (kube-test-server does not authorize), so the check is the authorizer's
# decision replayed on the request log, as for the operator below.
for kind in clusterrole clusterrolebinding role rolebinding; do
    kubectl get "$kind" -A -o json | jq -c '.items[] | select(.metadata.name | startswith("hearth-agent"))'
done | sed 's/^/---\n/' >"$cluster_dir/agent-rbac.yaml"
curl -sf "$url/_test/requests" >"$cluster_dir/agent-requests.json"
"$python" scripts/packaging/check-rbac.py --user-agent hearth-agent/ --service-account hearth-system/hearth-agent \
    --fail-unused "$cluster_dir/agent-rbac.yaml" "$cluster_dir/agent-requests.json" | sed 's/^/    /'
[[ ${PIPESTATUS[0]} -eq 0 ]] || fail "the agent's requests and the RBAC the operator renders for it differ"

step "deleting every target removes the agent; the operator's requests against the chart's RBAC"
kubectl delete pt --all -n shop --timeout=60s >/dev/null
wait_until "the agent DaemonSet to go" bash -c "! kubectl get daemonset hearth-agent -n hearth-system"
wait_until "the agent ClusterRole to go" bash -c "! kubectl get clusterrole hearth-agent-hearth-system"
stop_operator
grep -q "released lease" "$cluster_dir/operator.log" || fail "the operator did not release its Lease on SIGTERM"
curl -sf "$url/_test/requests" >"$cluster_dir/requests.json"
helm get manifest hearth -n hearth-system >"$cluster_dir/installed.yaml"
"$python" scripts/packaging/check-rbac.py "$cluster_dir/installed.yaml" "$cluster_dir/requests.json" |
    sed 's/^/    /'
[[ ${PIPESTATUS[0]} -eq 0 ]] || fail "the operator made requests the chart's RBAC forbids"
helm uninstall hearth -n hearth-system >/dev/null
kubectl get crd profilingtargets.profiling.hearth.dev >/dev/null || fail "helm uninstall removed the CRD"
echo "    helm uninstall kept the CRD (helm.sh/resource-policy: keep)"

step "Install on a cluster with kubectl apply -k manifests/ (the README's commands)"
start_cluster kustomize
run_block README.md kustomize --operator
wait_until "the checkout target's status" target_observed checkout
wait_until "the agent DaemonSet" kubectl get daemonset hearth-agent -n hearth-system
kubectl get pt -n shop | sed 's/^/    /'
[[ $(kubectl get namespace hearth-system -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}') == privileged ]] ||
    fail "the samples dropped the namespace's Pod Security label"
stop_operator

step "docs/gitops.md's command installs the Argo CD health check into argocd-cm"
kubectl create namespace argocd >/dev/null
kubectl create configmap argocd-cm -n argocd >/dev/null
run_block docs/gitops.md argocd-cm
kubectl get configmap argocd-cm -n argocd -o json |
    jq -j '.data["resource.customizations.health.profiling.hearth.dev_ProfilingTarget"]' >"$cluster_dir/health.lua"
cmp -s "$cluster_dir/health.lua" gitops/argocd/resource_customizations/profiling.hearth.dev/ProfilingTarget/health.lua ||
    fail "argocd-cm does not hold health.lua as it is"
echo "    argocd-cm holds health.lua byte for byte"

echo "==> all packaging checks passed in $((SECONDS - started)) s"
