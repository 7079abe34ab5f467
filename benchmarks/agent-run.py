#!/usr/bin/env python3
"""Node agent benchmark: `hearth-agent run` with N attributed workloads against `perf record -F 99 -g -a`, the
Pyroscope requests it makes against Alloy's one request per profile per interval, and its memory while Pyroscope
is unreachable. One run, one machine; quote the ratios.

Method
  1. The cluster side without a cluster: the release kube-test-server holds N pods on this node, each with a
     container id; for each, a cgroup in the kubelet's systemd layout on this host's cgroup2 mount holds one
     CPU-bound process (Tests/HearthAgentTests/Fixtures/chain.c, `spin`). The agent configuration (one target,
     99 Hz, selecting the N pods) is written as the operator renders it. pyroscope-test-server (the debug
     build: the optimizer of Swift 6.3.1 crashes on it) receives and validates the profiles.
  2. Steady state: `hearth-agent run` (release) for S seconds, uploading every 15 s. CPU time (user + system) and
     peak RSS come from wait4()'s rusage of the agent alone; requests per minute from the receiver's summary.
  3. Peer: `perf record -F 99 -g -a` for S seconds on the same workloads, measured the same way.
  4. Outage: the agent (spool limited to 256 KiB so that it overflows) runs 60 s with Pyroscope up, then 60 s
     with the receiver stopped (connection refused), then 45 s with it back. RSS is read from /proc/PID/status every second; the steady value is the median of
     the first phase; the agent's /metrics gives the spool drops and push failures; recovery is the first
     accepted request after the restart.
Results are printed as Markdown (for BENCHMARKS.md) and as JSON with --json.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = "bench-node"


def release(name, mode="release"):
    path = os.path.join(ROOT, ".build", mode, name)
    if not os.access(path, os.X_OK):
        flag = " -c release" if mode == "release" else ""
        sys.exit(f"{path} is missing: swift build{flag} --product {name}")
    return path


def unified_cgroup_root():
    for candidate in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if os.path.exists(os.path.join(candidate, "cgroup.controllers")):
            return candidate
    sys.exit("no cgroup2 mount")


def kubectl(kubeconfig, *arguments, stdin=None):
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *arguments], input=stdin, check=True,
                          capture_output=True, text=True).stdout


def start_receiver(port, summary):
    # The debug build: Swift 6.3.1 crashes optimizing the receiver (a compiler bug); it keeps up either way.
    receiver = subprocess.Popen([release("pyroscope-test-server", "debug"), "--port", str(port), "--summary-json", summary],
                                stdout=subprocess.PIPE, text=True)
    line = receiver.stdout.readline()
    if "listening" not in line:
        sys.exit(f"pyroscope-test-server did not start: {line}")
    return receiver


def stop_receiver(receiver, summary):
    receiver.send_signal(signal.SIGTERM)
    receiver.wait(timeout=20)
    with open(summary) as file:
        return json.load(file)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    """utime + stime of a live process so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--frequency", type=int, default=99)
    parser.add_argument("--skip-outage", action="store_true")
    parser.add_argument("--perf-agent", help="also record the agent itself with perf -g into this file (diagnosis)")
    parser.add_argument("--unwind", default="eh-frame", choices=["eh-frame", "frame-pointers"],
                        help="the agent's --unwind (eh-frame, its default, or frame-pointers)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the agent and perf -a need it")
    scratch = tempfile.mkdtemp(prefix="hearth-run-bench-")
    cgroup_root = unified_cgroup_root()
    kubeconfig = os.path.join(scratch, "kubeconfig")
    # Watch bookmarks about once a minute, as a real API server sends them (the test server's default is 1 s).
    api = subprocess.Popen([release("kube-test-server"), "--port", "18480", "--bookmark-interval", "60"],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    busy, cgroups = [], []
    try:
        time.sleep(1)
        with open(kubeconfig, "w") as file:
            file.write("apiVersion: v1\nkind: Config\nclusters:\n- name: b\n  cluster: {server: 'http://127.0.0.1:18480'}\n"
                       "users:\n- name: b\n  user: {token: bench}\ncontexts:\n- name: b\n  context: {cluster: b, user: b}\n"
                       "current-context: b\n")
        kubectl(kubeconfig, "create", "namespace", "bench")
        kubectl(kubeconfig, "create", "namespace", "hearth-system")
        workload = os.path.join(scratch, "chain")
        subprocess.check_call(["cc", "-O0", "-g", "-fno-omit-frame-pointer", "-o", workload,
                               os.path.join(ROOT, "Tests/HearthAgentTests/Fixtures/chain.c")])
        for index in range(args.workloads):
            container = uuid.uuid4().hex + uuid.uuid4().hex
            pod_uid = str(uuid.uuid4())
            path = (f"{cgroup_root}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
                    f"{pod_uid.replace('-', '_')}.slice/cri-containerd-{container}.scope")
            os.makedirs(path)
            cgroups.append(path)
            process = subprocess.Popen([workload, "spin"])
            busy.append(process)
            with open(os.path.join(path, "cgroup.procs"), "w") as file:
                file.write(str(process.pid))
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"work-{index}", "namespace": "bench", "labels": {"app": "bench"}},
                   "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": "chain"}]}}
            kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(pod))
            status = {"status": {"phase": "Running", "containerStatuses": [
                {"name": "main", "ready": True, "containerID": f"containerd://{container}"}]}}
            kubectl(kubeconfig, "patch", "pod", f"work-{index}", "-n", "bench", "--subresource=status",
                    "--type=merge", "-p", json.dumps(status))

        receiver_port = 18490
        summary_path = os.path.join(scratch, "summary.json")
        config_dir = os.path.join(scratch, "config")
        credentials = os.path.join(scratch, "credentials")
        os.makedirs(config_dir)
        os.makedirs(credentials)
        configuration = {"version": 1, "revision": "bench", "targets": [{
            "namespace": "bench", "name": "bench", "selector": {"matchLabels": {"app": "bench"}},
            "profiles": ["cpu"], "sampleRate": args.frequency, "labels": {},
            "pyroscope": {"url": f"http://127.0.0.1:{receiver_port}"}}]}
        with open(os.path.join(config_dir, "targets.json"), "w") as file:
            json.dump(configuration, file)
        environment = dict(os.environ, KUBECONFIG=kubeconfig, NODE_NAME=NODE)
        agent_argv = [release("hearth-agent"), "run", "--config", os.path.join(config_dir, "targets.json"),
                      "--credentials", credentials, "--namespace", "hearth-system", "--listen", "127.0.0.1:18441",
                      "--log-level", "warning", "--unwind", args.unwind]

        # 2. Steady state.
        receiver = start_receiver(receiver_port, summary_path)
        agent = subprocess.Popen(agent_argv, env=environment, stderr=subprocess.PIPE)
        if args.perf_agent:
            subprocess.Popen(["perf", "record", "-q", "-F", "4999", "--call-graph", "dwarf", "-p", str(agent.pid), "-o", args.perf_agent,
                              "--", "sleep", str(args.seconds - 5)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(10)
        cpu_at_start = cpu_seconds(agent.pid)
        metrics_at_start = metrics(18441)
        time.sleep(args.seconds - 10)
        steady_cpu = cpu_seconds(agent.pid) - cpu_at_start
        agent_metrics = metrics(18441)
        agent.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(agent.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"hearth-agent failed: {agent.stderr.read().decode(errors='replace')[-2000:]}")
        agent_cpu, agent_rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
        received = stop_receiver(receiver, summary_path)

        # 3. Peer.
        perf = subprocess.Popen(["perf", "record", "-q", "-F", str(args.frequency), "-g", "-a", "-o",
                                 os.path.join(scratch, "perf.data"), "--", "sleep", str(args.seconds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, perf_usage = os.wait4(perf.pid, 0)
        perf_cpu, perf_rss = perf_usage.ru_utime + perf_usage.ru_stime, perf_usage.ru_maxrss / 1024

        minutes = args.seconds / 60
        intervals = args.seconds / 15
        requests = received["requestsTotal"]
        result = {
            "workloads": args.workloads, "seconds": args.seconds, "frequency": args.frequency,
            "cpus": os.cpu_count(),
            "agent": {"cpu_seconds": round(agent_cpu, 3), "peak_rss_mib": round(agent_rss, 1),
                      "first_10s_cpu_seconds": round(cpu_at_start, 3),
                      "steady_cpu_seconds_per_minute": round(steady_cpu * 60 / (args.seconds - 10), 3)},
            "perf": {"cpu_seconds": round(perf_cpu, 3), "peak_rss_mib": round(perf_rss, 1)},
            "requests_per_minute": round(requests / minutes, 1),
            "series": received["series"],
            # Alloy's pyroscope.ebpf: one profile per (target, process) per interval, one request each.
            "alloy_requests_per_minute": round(args.workloads * intervals / minutes, 1),
            "samples_pushed": agent_metrics.get("hearth_agent_samples_total", 0),
            "user_frames_named": agent_metrics.get('hearth_agent_frames_total{kind="user",symbolized="true"}', 0),
            # The sampler thread's CPU by phase (the rest is delivery, the pod watch, the Lease and /metrics).
            "sampler_cpu_seconds": {phase: round(agent_metrics.get(
                f'hearth_agent_sampler_cpu_seconds_total{{phase="{phase}"}}', 0), 3)
                for phase in ("attribute", "drain", "upload")},
            "sampler_cpu_seconds_after_10s": {phase: round(agent_metrics.get(
                f'hearth_agent_sampler_cpu_seconds_total{{phase="{phase}"}}', 0) - metrics_at_start.get(
                f'hearth_agent_sampler_cpu_seconds_total{{phase="{phase}"}}', 0), 3)
                for phase in ("attribute", "drain", "upload")},
        }

        # 4. Outage.
        if not args.skip_outage:
            receiver = start_receiver(receiver_port, summary_path)
            # A small spool (256 KiB, about one interval of these profiles), so the outage overflows it and the
            # drop-oldest path is measured too.
            agent = subprocess.Popen(agent_argv + ["--spool-bytes", str(256 << 10)], env=environment,
                                     stderr=subprocess.DEVNULL)
            steady, down, after = [], [], []
            for _ in range(60):
                time.sleep(1)
                steady.append(rss_mib(agent.pid))
            stop_receiver(receiver, summary_path)
            for _ in range(60):
                time.sleep(1)
                down.append(rss_mib(agent.pid))
            during = metrics(18441)
            receiver = start_receiver(receiver_port, summary_path)
            resumed_after = None
            started = time.monotonic()
            for _ in range(45):
                time.sleep(1)
                after.append(rss_mib(agent.pid))
                values = metrics(18441)
                if resumed_after is None and values.get('hearth_agent_push_requests_total{code="200"}', 0) > \
                        during.get('hearth_agent_push_requests_total{code="200"}', 0):
                    resumed_after = round(time.monotonic() - started, 1)
            final = metrics(18441)
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
            stop_receiver(receiver, summary_path)
            baseline = statistics.median(steady[20:])
            result["outage"] = {
                "steady_rss_mib": round(baseline, 1),
                "max_rss_down_mib": round(max(down), 1),
                "max_rss_growth_percent": round(100 * (max(down) - baseline) / baseline, 1),
                "push_failures": sum(v for k, v in during.items() if k.startswith("hearth_agent_push_failures_total")),
                "spool_dropped_profiles": final.get("hearth_agent_spool_dropped_profiles_total", 0),
                "resumed_after_seconds": resumed_after,
            }
    finally:
        for process in busy:
            process.kill()
            process.wait()
        for path in cgroups:
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except OSError:
                    time.sleep(0.1)
        api.kill()
        shutil.rmtree(scratch, ignore_errors=True)

    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"| tool, {args.workloads} workloads at {args.frequency} Hz | CPU time over {args.seconds} s | peak RSS |")
    print("|---|---|---|")
    print(f"| hearth-agent run | {result['agent']['cpu_seconds']:.2f} s | {result['agent']['peak_rss_mib']:.1f} MiB |")
    print(f"| perf record -F {args.frequency} -g -a | {result['perf']['cpu_seconds']:.2f} s | "
          f"{result['perf']['peak_rss_mib']:.1f} MiB |")
    print(f"\nPyroscope requests per minute: {result['requests_per_minute']} ({result['series']} series) vs "
          f"{result['alloy_requests_per_minute']} for one request per profile per interval")
    if "outage" in result:
        outage = result["outage"]
        print(f"Outage: steady RSS {outage['steady_rss_mib']} MiB, at most {outage['max_rss_down_mib']} MiB while "
              f"Pyroscope was down ({outage['max_rss_growth_percent']:+}%), {outage['push_failures']:.0f} failed "
              f"pushes, {outage['spool_dropped_profiles']:.0f} profiles dropped, delivery resumed after "
              f"{outage['resumed_after_seconds']} s")


if __name__ == "__main__":
    main()
