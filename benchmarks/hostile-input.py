#!/usr/bin/env python3
"""Hostile-input benchmark: `hearth-agent profile` (release) for S seconds with every attack of the hostile-input
fixtures running at once, against the same recording without them, and perf the same way. One run, one machine;
quote the ratios.

Method
  1. Tests/HearthAgentTests/Fixtures/hostile/hostile.py builds the attacks (a FIFO and devices as debug files, an
     absolute link out of a chroot, a sparse ELF claiming a 500 MiB .eh_frame, an .eh_frame_hdr listing one FDE
     200,000 times, a 60 MiB perf map, 60,000 executable mappings, a library carrying libc's build id, a binary on a
     FUSE mount that stops answering). Attackers burn a fifth of a CPU each (HOSTILE_DUTY_PERCENT=20); the
     well-behaved workload (the same binary, named `wellbehaved`) spins in full.
  2. Without the attacks: the well-behaved workload alone, `hearth-agent profile --seconds S` of the whole machine;
     CPU time (user + system) and peak RSS from wait4()'s rusage of the agent alone, wall time until its main thread
     exits (a thread blocked on the hung mount keeps the process until the mount goes, which is ended then).
  3. With every attack running: the same, plus the share of the well-behaved workload's samples named through main.
  4. Peer: `perf record -F 99 -g -a` for S seconds, both ways, measured the same way. perf collects build ids of the
     files it sampled when it stops: on the hung mount it waits; after S + 60 s the mount is ended, and that is said.
Results are printed as Markdown (for BENCHMARKS.md) and as JSON with --json.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "HearthAgentTests", "Fixtures", "hostile")


def main_thread_exited(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def end_hung_mount(attack):
    """Kills the hung-mount process and aborts its FUSE connection (found in mountinfo, never by stat)."""
    if attack is None:
        return
    try:
        os.kill(attack["pid"], signal.SIGKILL)
    except ProcessLookupError:
        pass
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == attack["mountpoint"]:
                minor = fields[2].split(":")[1]
                connections = "/sys/fs/fuse/connections"
                if not os.path.exists(f"{connections}/{minor}"):
                    subprocess.run(["mount", "-t", "fusectl", "fusectl", connections], capture_output=True)
                try:
                    with open(f"{connections}/{minor}/abort", "w") as abort:
                        abort.write("1")
                except OSError:
                    pass


def measure(argv, seconds, hung, log):
    """Runs argv; returns wall seconds (to its main thread's exit), CPU seconds, peak RSS MiB, whether the hung mount
    had to be ended for it to finish at all."""
    start = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    ended = {"at": None, "forced": False}

    def watch():
        deadline = start + seconds + 60
        while process.returncode is None:
            if main_thread_exited(process.pid):
                ended["at"] = time.monotonic()
                end_hung_mount(hung)
                return
            if time.monotonic() > deadline:
                ended["forced"] = True
                end_hung_mount(hung)
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = status
    wall = (ended["at"] or time.monotonic()) - start
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024,
        "forced": ended["forced"],
        "status": os.waitstatus_to_exitcode(status),
    }


def start_attacks(directory, names):
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)["attacks"]
    running = []
    well_behaved = os.path.join(directory, "bin", "wellbehaved")
    if not os.path.exists(well_behaved):
        shutil.copyfile(os.path.join(directory, "bin", "hostile"), well_behaved)
        os.chmod(well_behaved, 0o755)
    for attack in manifest:
        if attack["name"] not in names:
            continue
        argv = [well_behaved, "spin"] if attack["name"] == "well-behaved" else attack["argv"]
        env = dict(os.environ)
        if attack["name"] != "well-behaved":
            env["HOSTILE_DUTY_PERCENT"] = "20"
        out = os.path.join(directory, attack["name"] + ".out")
        with open(out, "w") as stdout:
            process = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        words = []
        while time.monotonic() < deadline:
            with open(out) as f:
                words = f.read().split()
            if words[:1] == ["ready"]:
                break
            time.sleep(0.02)
        if words[:1] != ["ready"]:
            raise SystemExit(f"{attack['name']} never got ready")
        running.append({"name": attack["name"], "pid": process.pid, "process": process, "ready": words[2:],
                        "mountpoint": words[2] if attack["name"] == "hung-mount" else None})
    return running


def stop_attacks(running):
    for attack in running:
        if attack["name"] == "hung-mount":
            end_hung_mount(attack)
        attack["process"].kill()
        attack["process"].wait()
        if attack["name"] == "perf-map" and attack["ready"]:
            try:
                os.unlink(attack["ready"][0])
            except OSError:
                pass


def named_share(folded):
    total = named = 0
    with open(folded) as f:
        for line in f:
            if line.startswith("wellbehaved;"):
                count = int(line.rsplit(" ", 1)[1])
                total += count
                named += count if ";main;hostile_spin" in line else 0
    return named / total if total else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--agent", default=os.path.join(ROOT, ".build", "release", "hearth-agent"))
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (eBPF, chroot, FUSE)")
    directory = tempfile.mkdtemp(prefix="hearth-hostile-bench-")
    subprocess.run([sys.executable, os.path.join(FIXTURES, "hostile.py"), "build", "--out", directory], check=True,
                   capture_output=True)
    with open(os.path.join(directory, "manifest.json")) as f:
        every = [a["name"] for a in json.load(f)["attacks"]]
    results = {}
    for label, names in (("without attacks", ["well-behaved"]), ("with every attack", every)):
        running = start_attacks(directory, names)
        hung = next((a for a in running if a["name"] == "hung-mount"), None)
        try:
            folded = os.path.join(directory, f"{len(names)}.folded")
            summary = os.path.join(directory, f"{len(names)}.json")
            agent = measure([arguments.agent, "profile", "--seconds", str(arguments.seconds), "-o", folded,
                             "--summary-json", summary], arguments.seconds, hung,
                            os.path.join(directory, f"agent-{len(names)}.log"))
            agent["named"] = named_share(folded)
            with open(summary) as f:
                agent["hostileInput"] = json.load(f)["hostileInput"]
            if hung is not None:  # the previous run ended the mount: set the attack up again for perf
                stop_attacks([hung])
                running = [a for a in running if a is not hung] + start_attacks(directory, ["hung-mount"])
                hung = running[-1]
            perf = measure(["perf", "record", "-F", "99", "-g", "-a", "-o", os.path.join(directory, "perf.data"),
                            "--", "sleep", str(arguments.seconds)], arguments.seconds, hung,
                           os.path.join(directory, f"perf-{len(names)}.log"))
        finally:
            stop_attacks(running)
        results[label] = {"agent": agent, "perf": perf}
    shutil.rmtree(directory, ignore_errors=True)
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    print(f"| {arguments.seconds} s, whole machine | agent CPU s | agent peak RSS MiB | agent wall s | well-behaved "
          "named | perf CPU s | perf peak RSS MiB | perf wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, r in results.items():
        a, p = r["agent"], r["perf"]
        perf_wall = f"{p['wall']:.1f}" + (" (blocked on the hung mount until it was ended)" if p["forced"] else "")
        print(f"| {label} | {a['cpu']:.2f} | {a['rss']:.1f} | {a['wall']:.1f} | {a['named']:.1%} | {p['cpu']:.2f} | "
              f"{p['rss']:.1f} | {perf_wall} |")
    with_attacks = results["with every attack"]["agent"]
    without = results["without attacks"]["agent"]
    print()
    print(f"Agent with every attack / without: CPU x{with_attacks['cpu'] / without['cpu']:.2f}, peak RSS "
          f"x{with_attacks['rss'] / without['rss']:.2f} (+{with_attacks['rss'] - without['rss']:.1f} MiB); "
          f"hostileInput {json.dumps(with_attacks['hostileInput'])}")


if __name__ == "__main__":
    main()
