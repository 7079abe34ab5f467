#!/usr/bin/env python3
"""Operator benchmark: 1,000 ProfilingTargets in 100 namespaces reconciled from a cold start, then steady state.

Method
  1. Start the release `kube-test-server` and a stub Pyroscope (answers GET /ready with 200, as Pyroscope does
     once ready). Apply crds/ with kubectl; create 101 namespaces and N targets (N/100 per namespace, each with
     its own selector, sample rate 99, `spec.pyroscope.url` pointing at the stub) through the API.
  2. Start the release `hearth-operator run` (leader election on, 4 workers). Cold start ends when every target
     has the finalizer and `status.observedGeneration == metadata.generation`, and the agent ConfigMap lists all N
     targets. Both are followed with watches (no polling load on the server), timestamped as events arrive.
  3. Steady state: after 5 s of quiet, count the operator's requests (by user agent, from the server's request
     log) and reconciles (its /metrics) over --steady-seconds. The agent has not rolled out yet (nothing plays the
     DaemonSet controller so far), so every target is requeued every 30 s: ~2 reconciles per target a minute.
  4. Play the DaemonSet controller and the agents: report the agent rolled out on 3 nodes, and each node's agent
     Lease with the configuration revision of the ConfigMap; time until every target is Ready.
  5. Peak RSS is the operator's VmHWM from /proc; CPU time is its utime + stime from /proc/PID/stat.
  6. Idle: once every target is Ready, nothing changes for --idle-seconds; the operator's CPU, reconciles and
     requests in that window are counted. With --backends N the targets share N stub Pyroscopes (target i uses
     backend i % N), so time-based work done per backend instead of per target shows here.
  7. With --pods N, N pods (N / targets per target, labelled to match it, spread over 3 nodes) exist in the
     cluster before the operator starts: they are listed, cached and matched during the cold start.
  8. With --grafana, every target also asks for a Grafana datasource (spec.grafana without a uid: all share the
     stub backend, so one datasource) and the operator runs with --grafana-url pointing at grafana-test-server
     (the API double of the tests); its Grafana calls are read from hearth_grafana_requests_total.
Results are printed as Markdown (for BENCHMARKS.md) and as JSON with --json.

The binaries are built first as they ship (scripts/build-release.sh hearth-operator: static Swift runtime, no PIE) unless
--no-build is given. Steady-state writes are split into the leader-election Lease renewals (one every retry
period, inherent in leader election) and every other write (targets, agent objects, Events), which must be zero.
"""
import argparse
import http.client
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPERATOR_AGENT = "hearth-operator/"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class StubPyroscope(http.server.BaseHTTPRequestHandler):
    """GET /ready → 200 "ready", as a ready Pyroscope answers; anything else 404."""

    def do_GET(self):
        ok = self.path == "/ready"
        body = b"ready\n" if ok else b"404 page not found\n"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class API:
    def __init__(self, url):
        self.url = url

    def call(self, method, path, body=None, content_type="application/json"):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("User-Agent", "benchmark/1.0")
        if data is not None:
            request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def requests(self):
        return self.call("GET", "/_test/requests")


class Follower(threading.Thread):
    """Follows a collection with a watch; calls `on_event(object)` for each ADDED/MODIFIED and records when
    `done()` first holds."""

    def __init__(self, api, path, on_event, done):
        super().__init__(daemon=True)
        self.api, self.path, self.on_event, self.done = api, path, on_event, done
        self.done_at = None
        self.lock = threading.Lock()

    def run(self):
        listed = self.api.call("GET", self.path)
        with self.lock:
            for item in listed.get("items", []):
                self.on_event(item)
            self.check()
        rv = listed["metadata"]["resourceVersion"]
        host = self.api.url.split("://", 1)[1]
        connection = http.client.HTTPConnection(host, timeout=600)
        connection.request(
            "GET", f"{self.path}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true",
            headers={"User-Agent": "benchmark/1.0"},
        )
        response = connection.getresponse()
        while True:
            line = response.readline()
            if not line:
                return
            event = json.loads(line)
            if event["type"] in ("ADDED", "MODIFIED"):
                with self.lock:
                    self.on_event(event["object"])
                    self.check()

    def check(self):
        if self.done_at is None and self.done():
            self.done_at = time.monotonic()


def proc_memory(pid):
    """VmHWM, VmRSS, RssAnon and RssFile of a live process, MiB."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}


def proc_stats(pid):
    """(peak RSS MiB, CPU seconds) of a live process."""
    hwm = proc_memory(pid)["VmHWM"] * 1024
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm / 1024, (int(fields[11]) + int(fields[12])) / ticks


def listening_address(log_path, endpoint):
    """HOST:PORT of an operator endpoint, from its "listening" log line."""
    with open(log_path) as log:
        for line in log:
            if line.rstrip().endswith("listening") and f"http.endpoint={endpoint}" in line:
                return next(t.split("=", 1)[1] for t in line.split() if t.startswith("http.address="))
    sys.exit(f"the operator did not report its {endpoint} address")


def reconcile_total(metrics_url):
    """controller_runtime_reconcile_total over every result."""
    with urllib.request.urlopen(metrics_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("controller_runtime_reconcile_total{"))


def grafana_requests(metrics_url):
    """hearth_grafana_requests_total by `METHOD code`."""
    with urllib.request.urlopen(metrics_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("hearth_grafana_requests_total{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
            key = f'{labels["method"].strip(chr(34))} {labels["code"].strip(chr(34))}'
            counts[key] = counts.get(key, 0) + int(float(line.rsplit(" ", 1)[1]))
    return dict(sorted(counts.items()))


def subtract(after, before):
    return {key: value - before.get(key, 0) for key, value in after.items() if value - before.get(key, 0)}


def operator_requests(api, since=0):
    log = api.requests()
    return [r for r in log[since:] if r["userAgent"].startswith(OPERATOR_AGENT)], len(log)


def by_verb(records):
    counts = {}
    for record in records:
        counts[record["verb"]] = counts.get(record["verb"], 0) + 1
    return dict(sorted(counts.items()))


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    sys.exit(f"timed out after {timeout} s waiting for {what}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--steady-seconds", type=int, default=60)
    parser.add_argument("--build", default=os.path.join(ROOT, ".build", "release"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-build", action="store_true", help="use the binaries already in --build")
    parser.add_argument("--grafana", action="store_true", help="every target asks for a Grafana datasource")
    parser.add_argument("--backends", type=int, default=1, help="stub Pyroscopes the targets share")
    parser.add_argument("--pods", type=int, default=0, help="pods in the cluster, matched by the targets")
    parser.add_argument("--idle-seconds", type=int, default=60, help="idle window once every target is Ready")
    args = parser.parse_args()
    swift = os.environ.get("SWIFT", "swift")
    if not args.no_build:
        print("building release binaries", file=sys.stderr)
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "build-release.sh"), "hearth-operator"], check=True,
                       stdout=subprocess.DEVNULL)
        for product in ["kube-test-server", "grafana-test-server"] if args.grafana else ["kube-test-server"]:
            subprocess.run([swift, "build", "-c", "release", "--product", product], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)

    scratch = tempfile.mkdtemp(prefix="hearth-operator-bench-")
    server = subprocess.Popen(
        [os.path.join(args.build, "kube-test-server"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    operator = None
    grafana = None
    try:
        url = server.stdout.readline().strip().rsplit(" ", 1)[-1]
        api = API(url)
        kubeconfig = os.path.join(scratch, "kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: b\n  cluster: {server: \"%s\"}\n"
                "contexts:\n- name: b\n  context: {cluster: b}\ncurrent-context: b\nusers: []\n" % url
            )
        kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(scratch, "cache")]
        subprocess.run(kubectl + ["apply", "-f", os.path.join(ROOT, "crds")], check=True, capture_output=True)
        subprocess.run(
            kubectl + ["wait", "--for=condition=Established", "crd/profilingtargets.profiling.hearth.dev"],
            check=True, capture_output=True,
        )

        pyroscope_urls = []
        for _ in range(args.backends):
            pyroscope = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubPyroscope)
            threading.Thread(target=pyroscope.serve_forever, daemon=True).start()
            pyroscope_urls.append(f"http://127.0.0.1:{pyroscope.server_address[1]}")

        for name in ["hearth-system"] + [f"team-{i}" for i in range(args.namespaces)]:
            api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        grafana_flags = []
        if args.grafana:
            token = "glsa_benchmark"
            grafana = subprocess.Popen(
                [os.path.join(args.build, "grafana-test-server"), "--port", "0", "--token", token],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )
            grafana_url = "http://" + grafana.stdout.readline().strip().rsplit(" ", 1)[-1]
            api.call("POST", "/api/v1/namespaces/hearth-system/secrets", {
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "grafana", "namespace": "hearth-system"},
                "stringData": {"token": token},
            })
            grafana_flags = ["--grafana-url", grafana_url, "--grafana-credentials", "hearth-system/grafana"]
        print(f"creating {args.targets} targets in {args.namespaces} namespaces", file=sys.stderr)
        for i in range(args.targets):
            namespace = f"team-{i % args.namespaces}"
            api.call(
                "POST", f"/apis/profiling.hearth.dev/v1alpha1/namespaces/{namespace}/profilingtargets",
                {
                    "apiVersion": "profiling.hearth.dev/v1alpha1", "kind": "ProfilingTarget",
                    "metadata": {"name": f"app-{i}", "namespace": namespace},
                    "spec": {
                        "selector": {"matchLabels": {"app": f"app-{i}"}}, "sampleRate": 99,
                        "labels": {"team": f"team-{i % args.namespaces}"},
                        "pyroscope": {"url": pyroscope_urls[i % args.backends]},
                        **({"grafana": {}} if args.grafana else {}),
                    },
                },
            )

        if args.pods:
            print(f"creating {args.pods} pods", file=sys.stderr)
        for p in range(args.pods):
            i = p % args.targets
            namespace = f"team-{i % args.namespaces}"
            api.call("POST", f"/api/v1/namespaces/{namespace}/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"app-{i}-{p // args.targets}", "namespace": namespace,
                             "labels": {"app": f"app-{i}", "pod-template-hash": "5d8f7c9b6"}},
                "spec": {"nodeName": f"node-{p % 3}", "containers": [{
                    "name": "app", "image": f"registry.example.com/team/app-{i}:1.0",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    "env": [{"name": "MODE", "value": "production"}],
                }]},
            })

        # Followers: statuses of targets, and the agent configuration.
        reconciled, ready, configured = set(), set(), [0]

        def on_target(target):
            key = target["metadata"]["namespace"] + "/" + target["metadata"]["name"]
            status = target.get("status") or {}
            if target["metadata"].get("finalizers") and status.get("observedGeneration") == target["metadata"].get("generation"):
                reconciled.add(key)
            conditions = {c["type"]: c for c in status.get("conditions", [])}
            if conditions.get("Ready", {}).get("status") == "True":
                ready.add(key)
            else:
                ready.discard(key)

        def on_config(config_map):
            if config_map["metadata"]["name"] == "hearth-agent-config":
                targets = json.loads(config_map.get("data", {}).get("targets.json", "{}")).get("targets", [])
                configured[0] = len(targets)

        target_follower = Follower(
            api, "/apis/profiling.hearth.dev/v1alpha1/profilingtargets", on_target,
            lambda: len(reconciled) == args.targets,
        )
        config_follower = Follower(
            api, "/api/v1/namespaces/hearth-system/configmaps", on_config, lambda: configured[0] == args.targets
        )
        target_follower.start()
        config_follower.start()
        time.sleep(0.5)  # both watches open before the operator starts
        _, log_start = operator_requests(api)

        print("starting hearth-operator", file=sys.stderr)
        started = time.monotonic()
        operator = subprocess.Popen(
            [
                os.path.join(args.build, "hearth-operator"), "run", "--kubeconfig", kubeconfig,
                "--namespace", "hearth-system", "--identity", "bench", "--metrics-address", "127.0.0.1:0",
                "--health-address", "127.0.0.1:0", "--log-level", "info",
            ] + grafana_flags,
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(scratch, "operator.log"), "w"),
        )
        wait_for(
            lambda: target_follower.done_at is not None and config_follower.done_at is not None,
            300, "the cold start",
        )
        cold_seconds = max(target_follower.done_at, config_follower.done_at) - started
        metrics_url = "http://" + listening_address(os.path.join(scratch, "operator.log"), "metrics")
        cold_records, log_after_cold = operator_requests(api, log_start)
        cold_rss, cold_cpu = proc_stats(operator.pid)
        cold_grafana = grafana_requests(metrics_url)
        _, server_cpu = proc_stats(server.pid)
        print(f"cold start: {cold_seconds:.2f} s", file=sys.stderr)

        time.sleep(5)
        print(f"steady state for {args.steady_seconds} s", file=sys.stderr)
        _, log_steady = operator_requests(api)
        _, cpu_before = proc_stats(operator.pid)
        reconciles_before = reconcile_total(metrics_url)
        grafana_before = grafana_requests(metrics_url)
        time.sleep(args.steady_seconds)
        steady_reconciles = reconcile_total(metrics_url) - reconciles_before
        steady_grafana = subtract(grafana_requests(metrics_url), grafana_before)
        steady_records, _ = operator_requests(api, log_steady)
        _, cpu_after = proc_stats(operator.pid)
        # The DaemonSet controller's part: the agent runs on 3 nodes.
        _, log_before_rollout = operator_requests(api)
        generation = api.call("GET", "/apis/apps/v1/namespaces/hearth-system/daemonsets/hearth-agent")["metadata"]["generation"]
        rollout_started = time.monotonic()
        api.call(
            "PATCH", "/apis/apps/v1/namespaces/hearth-system/daemonsets/hearth-agent/status",
            {"status": {
                "observedGeneration": generation, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                "updatedNumberScheduled": 3, "numberAvailable": 3, "numberReady": 3, "numberMisscheduled": 0,
            }},
            content_type="application/merge-patch+json",
        )
        # The agents' part: each node's Lease reports the configuration revision it loaded.
        config_map = api.call("GET", "/api/v1/namespaces/hearth-system/configmaps/hearth-agent-config")
        revision = json.loads(config_map["data"]["targets.json"])["revision"]
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        for node in range(3):
            api.call("POST", "/apis/coordination.k8s.io/v1/namespaces/hearth-system/leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": f"hearth-agent-node-{node}", "namespace": "hearth-system",
                             "labels": {"app.kubernetes.io/name": "hearth-agent",
                                        "app.kubernetes.io/component": "node-lease"},
                             "annotations": {"profiling.hearth.dev/config-revision": revision}},
                "spec": {"holderIdentity": f"node-{node}", "leaseDurationSeconds": 3600, "renewTime": now},
            })
        wait_for(lambda: len(ready) == args.targets, 300, "every target Ready")
        ready_seconds = time.monotonic() - rollout_started
        peak_rss, _ = proc_stats(operator.pid)
        ready_records, _ = operator_requests(api, log_before_rollout)

        # Idle: every target Ready, nothing changes.
        time.sleep(5)
        print(f"idle for {args.idle_seconds} s", file=sys.stderr)
        _, log_idle = operator_requests(api)
        _, idle_cpu_before = proc_stats(operator.pid)
        idle_reconciles_before = reconcile_total(metrics_url)
        time.sleep(args.idle_seconds)
        idle_reconciles = reconcile_total(metrics_url) - idle_reconciles_before
        _, idle_cpu_after = proc_stats(operator.pid)
        idle_records, _ = operator_requests(api, log_idle)
        idle_cpu_per_minute = (idle_cpu_after - idle_cpu_before) * 60 / args.idle_seconds
        peak_rss, _ = proc_stats(operator.pid)

        steady_writes = [r for r in steady_records if r["method"] in WRITE_METHODS]
        lease_writes = [r for r in steady_writes if "/leases/" in r["path"]]
        other_writes = [r for r in steady_writes if "/leases/" not in r["path"]]
        with open(os.path.join(scratch, "operator.log")) as log:
            operator_log = log.read()

        result = {
            "targets": args.targets, "namespaces": args.namespaces, "backends": args.backends, "pods": args.pods,
            "idleSeconds": args.idle_seconds, "idleCPUSecondsPerMinute": round(idle_cpu_per_minute, 3),
            "idleReconciles": int(idle_reconciles), "idleRequestsByVerb": by_verb(idle_records),
            "coldStartSeconds": round(cold_seconds, 3),
            "coldStartRequests": len(cold_records), "coldStartRequestsByVerb": by_verb(cold_records),
            "coldStartCPUSeconds": round(cold_cpu, 2), "serverCPUSecondsAtColdStart": round(server_cpu, 2), "coldStartPeakRSSMiB": round(cold_rss, 1),
            "readyAfterRolloutSeconds": round(ready_seconds, 3),
            "readyRequests": len(ready_records), "readyRequestsByVerb": by_verb(ready_records),
            "steadySeconds": args.steady_seconds, "steadyRequests": len(steady_records),
            "steadyRequestsByVerb": by_verb(steady_records), "steadyWrites": len(other_writes),
            "steadyWritesPerMinute": round(len(other_writes) * 60 / args.steady_seconds, 1),
            "steadyLeaseRenewalsPerMinute": round(len(lease_writes) * 60 / args.steady_seconds, 1),
            "steadyCPUSeconds": round(cpu_after - cpu_before, 2), "steadyReconciles": int(steady_reconciles),
            "peakRSSMiB": round(peak_rss, 1), "memoryAtEndMiB": proc_memory(operator.pid),
            "grafana": args.grafana, "coldStartGrafanaRequests": cold_grafana,
            "steadyGrafanaRequests": steady_grafana,
            "operatorWarnings": [l for l in operator_log.splitlines() if " warning " in l or " error " in l][:5],
        }
        if args.json:
            print(json.dumps(result, indent=2))
        print(
            "\n| measure | value | budget |\n|---|---|---|\n"
            f"| cold start, {args.targets} targets in {args.namespaces} namespaces | {result['coldStartSeconds']} s | ≤ 5 s |\n"
            f"| API requests during the cold start | {len(cold_records)} {result['coldStartRequestsByVerb']} | |\n"
            f"| operator CPU during the cold start | {result['coldStartCPUSeconds']} s | |\n"
            f"| kube-test-server CPU until then (incl. seeding) | {result['serverCPUSecondsAtColdStart']} s | |\n"
            f"| every target Ready after the rollout is reported | {result['readyAfterRolloutSeconds']} s, "
            f"{len(ready_records)} requests {result['readyRequestsByVerb']} | |\n"
            f"| steady state ({args.steady_seconds} s, agent not yet rolled out: every target requeued each 30 s): reconciles | {result['steadyReconciles']} | |\n"
            f"| steady state: requests | {len(steady_records)} {result['steadyRequestsByVerb']} | |\n"
            f"| steady state: writes per minute (targets, agent objects, Events) | {result['steadyWritesPerMinute']} | 0 |\n"
            f"| steady state: Lease renewals per minute (leader election) | {result['steadyLeaseRenewalsPerMinute']} | |\n"
            f"| steady state: operator CPU | {result['steadyCPUSeconds']} s | |\n"
            f"| idle ({args.idle_seconds} s, every target Ready, {args.backends} backends): operator CPU per minute | {result['idleCPUSecondsPerMinute']} s | ≤ 0.5 s |\n"
            f"| idle: reconciles, requests | {result['idleReconciles']}, {result['idleRequestsByVerb']} | |\n"
            f"| operator peak RSS (VmHWM) | {result['peakRSSMiB']} MiB | ≤ 40 MiB ({args.pods} pods: ≤ 48 MiB) |\n"
            f"| operator memory at the end | {result['memoryAtEndMiB']} | |\n"
            + (f"| Grafana API calls during the cold start (every target asks for the one shared datasource) | {cold_grafana} | |\n"
               f"| Grafana API calls in the steady state | {steady_grafana} | |\n" if args.grafana else "")
        )
        if other_writes:
            print("steady-state writes:", json.dumps(other_writes[:10], indent=1), file=sys.stderr)
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)
        if grafana is not None:
            grafana.terminate()
            grafana.wait(timeout=30)


if __name__ == "__main__":
    main()
