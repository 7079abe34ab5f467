#!/usr/bin/env python3
"""Agent overhead benchmark: hearth-agent vs `perf record -F 99 -g -a` on the same workload, in one run.

Method
  1. Start the workload: one CPU-bound process per core (Tests/HearthAgentTests/Fixtures/chain.c, `spin`), so
     both cores are busy for the whole run.
  2. With kernel.bpf_stats_enabled=1, run `hearth-agent profile --seconds S --frequency F -o X.pb.gz` (release
     build). Just before it ends, read its BPF program's run_cnt and run_time_ns with bpftool.
  3. Run `perf record -F F -g -a -o perf.data -- sleep S` on the same workload.
  3b. When bpftrace is installed, run `bpftrace -e 'profile:hz:F { @[kstack, ustack, pid] = count(); }'` for S
     seconds too, reading its program's BPF statistics the same way: the same kernel walkers, for comparison.
  4. For each, CPU time (user + system) and peak RSS come from wait4()'s rusage of that child alone.
Results are printed as a Markdown table (paste into BENCHMARKS.md) and as JSON with --json.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_measured(argv, during=None, during_at=None):
    """Runs argv to completion; returns (wall seconds, cpu seconds, peak RSS MiB, result of `during`)."""
    start = time.monotonic()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    observed = None
    if during is not None:
        time.sleep(during_at)
        observed = during()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) not in (0, 124):  # 124: timeout ended it, as asked
        sys.exit(f"{argv[0]} failed: {child.stderr.read().decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, observed


def bpf_program_stats(name="hearth_sample"):
    """(runs, ns) of the perf_event program called `name` (bpftrace's: any perf_event program but ours)."""
    programs = json.loads(subprocess.check_output(["bpftool", "-j", "prog", "show"]))
    for program in programs:
        if program.get("type") != "perf_event":
            continue
        if program.get("name", "").startswith(name) or (name == "*" and not program.get("name", "").startswith("hearth_sample")):
            return program.get("run_cnt", 0), program.get("run_time_ns", 0)
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--frequency", type=int, default=99)
    parser.add_argument("--agent", default=os.path.join(ROOT, ".build/release/hearth-agent"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the agent and perf -a need it")
    for tool in ("perf", "bpftool", "cc"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install linux-perf bpftool gcc")

    scratch = tempfile.mkdtemp(prefix="hearth-bench-")
    workload = os.path.join(scratch, "chain")
    subprocess.check_call(["cc", "-O0", "-g", "-fno-omit-frame-pointer", "-o", workload,
                           os.path.join(ROOT, "Tests/HearthAgentTests/Fixtures/chain.c")])
    busy = [subprocess.Popen([workload, "spin"]) for _ in range(os.cpu_count() or 2)]
    previous_stats = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    try:
        open("/proc/sys/kernel/bpf_stats_enabled", "w").write("1")
        agent = run_measured(
            [args.agent, "profile", "--seconds", str(args.seconds), "--frequency", str(args.frequency),
             "-o", os.path.join(scratch, "agent.pb.gz")],
            during=bpf_program_stats, during_at=max(1, args.seconds - 2))
        perf = run_measured(
            ["perf", "record", "-q", "-F", str(args.frequency), "-g", "-a", "-o", os.path.join(scratch, "perf.data"),
             "--", "sleep", str(args.seconds)])
        bpftrace = None
        if shutil.which("bpftrace"):
            bpftrace = run_measured(
                ["timeout", "-s", "INT", str(args.seconds), "bpftrace", "-q", "-e",
                 f"profile:hz:{args.frequency} {{ @[kstack, ustack, pid] = count(); }}"],
                during=lambda: bpf_program_stats("*"), during_at=max(1, args.seconds - 2))
    finally:
        open("/proc/sys/kernel/bpf_stats_enabled", "w").write(previous_stats)
        for process in busy:
            process.kill()
            process.wait()
        shutil.rmtree(scratch, ignore_errors=True)

    runs, run_time = agent[3] or (0, 0)
    result = {
        "seconds": args.seconds,
        "frequency": args.frequency,
        "cpus": os.cpu_count(),
        "agent": {"cpu_seconds": round(agent[1], 3), "peak_rss_mib": round(agent[2], 1)},
        "perf": {"cpu_seconds": round(perf[1], 3), "peak_rss_mib": round(perf[2], 1)},
        "bpf": {"runs": runs, "run_time_ns": run_time,
                "ns_per_sample": round(run_time / runs, 1) if runs else None},
    }
    if bpftrace:
        bt_runs, bt_time = bpftrace[3] or (0, 0)
        result["bpftrace"] = {"cpu_seconds": round(bpftrace[1], 3), "peak_rss_mib": round(bpftrace[2], 1),
                              "ns_per_sample": round(bt_time / bt_runs, 1) if bt_runs else None}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"| tool | CPU time over {args.seconds} s | peak RSS |")
    print("|---|---|---|")
    print(f"| hearth-agent profile -F {args.frequency} | {result['agent']['cpu_seconds']:.2f} s | "
          f"{result['agent']['peak_rss_mib']:.1f} MiB |")
    print(f"| perf record -F {args.frequency} -g -a | {result['perf']['cpu_seconds']:.2f} s | "
          f"{result['perf']['peak_rss_mib']:.1f} MiB |")
    if bpftrace:
        print(f"| bpftrace, stacks aggregated in the kernel | {result['bpftrace']['cpu_seconds']:.2f} s | "
              f"{result['bpftrace']['peak_rss_mib']:.1f} MiB |")
    if runs:
        print(f"\nBPF program: {runs} runs, {run_time / runs:.0f} ns per sample (kernel.bpf_stats_enabled)")
    if bpftrace and result["bpftrace"]["ns_per_sample"]:
        print(f"bpftrace's BPF program: {result['bpftrace']['ns_per_sample']:.0f} ns per sample")


if __name__ == "__main__":
    main()
