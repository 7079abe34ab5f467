#!/usr/bin/env python3
"""Native unwinding benchmark: `hearth-agent profile --unwind eh-frame` against `--unwind frame-pointers` and the
unwinding oracle `perf record --call-graph dwarf`, on the same running processes, in one run. Measures how many
stacks reach their root, the BPF time per sample (with bpftrace's ustack/kstack program as the peer), the agent's
memory (RSS + BPF maps), and how long a new binary's samples wait for their unwind tables.

Needs root, a release build of the agent (swift build -c release --product hearth-agent), gcc, python3, and the
Debian packages linux-perf, bpftool, libc6-dbg (names libc's static start code, __libc_start_call_main, for both
perf and hearth) and bpftrace (the BPF peer; `apt-get install -y bpftrace`; without it that column is n/a).

Method
  Workloads (each started once and measured by every tool in turn; the C fixture is built by this script):
    chain   Tests/HearthSamplerTests/Fixtures/unwind_workload.c built `gcc -O2 -g -fomit-frame-pointer` (as the
            native unwinding tests build it), mode `chain`: main -> level1 -> level2 -> level3 -> hot_leaf.
    python  Debian's /usr/bin/python3 (no frame pointers) running a two-function loop (outer() -> inner()), after
            loading libswiftCore.so of the Swift toolchain with ctypes, which maps libstdc++ and libm with it:
            this is the process that maps libc, libstdc++ and libswiftCore (the memory budget's case).
    swift   Tests/HearthSamplerTests/Fixtures/unwind_swift_workload.swift built `swiftc -O` (links libswiftCore,
            libstdc++ and libc), run with --swift-args. Optional: skipped with a note while the fixture is absent.
    qsort   the C fixture's `qsort` mode: main -> sorter -> qsort (libc, no frame pointers) -> compare_keys.
    recurse the C fixture's `recurse 30` mode (not in the default list; deeper than the 20-frame budget).
  Each workload runs alone, single-threaded, on a 2-CPU machine; the tools run on the other CPU.

  1. Rooted-stack share. On the same process, one after the other, S seconds each at F Hz:
     a. `perf record -F F --call-graph dwarf -p PID` (8 KiB of stack per sample, perf's default; the oracle),
        read with `perf script -F comm,pid,ip,sym,dso --no-inline`. A sample's frames are leaf first; frames
        with an address at or above 0xffff800000000000 are kernel frames; the outermost user frame is the last
        user frame of the sample.
     b. `hearth-agent profile --pid PID --unwind frame-pointers -o X.folded --summary-json X.json`.
     c. the same with `--unwind eh-frame`.
     d. bpftrace (for part 2 only).
     The folded file is root first: `comm;outermost;...;leaf count`. The comm label is always the first field and
     is dropped. hearth does not mark kernel frames in folded output, but a sample's kernel frames always sit on
     the leaf side of its user frames, so the outermost user frame is the first frame after the comm; a sample
     without user frames starts with a kernel function, which is never a root name. The unwinder's marker
     frames ([truncated], [unwind error: ...]) are the outermost frame of the stacks they end, and are counted.
     A sample is rooted when its outermost user frame is named _start, __libc_start_call_main,
     __libc_start_main* (e.g. __libc_start_main_impl), clone, clone3 or start_thread. The share is rooted
     samples over all the process's samples (those without user frames count as not rooted, for every tool).
     Sequential rather than simultaneous: two samplers on one process at the same rate inflate each other's
     BPF time and perf's 8 KiB stack copies; the workloads are stationary loops, so successive windows of
     S seconds see the same code. Stack depth: median number of user frames of perf's rooted samples.
  2. BPF time per sample. kernel.bpf_stats_enabled=1 during the run (restored at exit). While each hearth
     profile (1b, 1c) and `bpftrace -e 'profile:hz:F /pid == PID/ { @[ustack, kstack] = count(); }'` (1d, S
     seconds, stopped with SIGINT) run, `bpftool -j prog show` is read every second; the last reading gives
     run_time_ns / run_cnt of the perf_event programs the tool's process holds open (ids from the `prog_id:`
     lines of /proc/PID/fdinfo: hearth's `hearth_sample`, bpftrace's probe; this bpftool reports no pids, and
     tests may load another `hearth_sample` meanwhile). Both attach a perf event to every CPU and drop other
     processes' samples with a pid check inside the program, so "ns per run" is comparable between them; it
     is diluted by the cheap filtered runs of the other CPU. "ns per kept sample" is ns per run divided by the share
     of runs that kept a sample (hearth: the summary's samples / programRuns; bpftrace: the sum of the counts it
     prints at exit / run_cnt read just before SIGINT): the cost of one kept sample, the filtered runs' time
     included (an upper bound). Budget: eh-frame <= 3x frame pointers in ns per kept sample, for the workloads
     whose stacks (perf's median of user frames) are <= 20 frames.
  3. Memory. Peak RSS of each hearth-agent profile process (wait4() rusage of that child) plus the
     bytes_memlock of every map the program uses (`bpftool prog show` map_ids -> `bpftool map show`), read
     once while it runs. Budget: RSS + maps <= 64 MiB for a process that maps libc, libstdc++ and
     libswiftCore (checked in /proc/PID/maps; the `python` workload, and `swift` when present), with eh-frame.
  4. First sample to full stacks. `hearth-agent profile --unwind eh-frame` of the whole machine (no --pid)
     starts; once it has settled (at least 5 s, and two seconds in a row in which it used under 0.05 s of CPU:
     its start-up table loads are done, its own 150 MB binary's among them since it samples itself), N fresh
     processes (--fresh, default 6) run one after another, --fresh-seconds (3) each, and the agent is stopped
     with SIGINT 2 s after the last (it still writes its outputs). The fresh processes are copies of the C
     fixture (`chain`) linked with a unique `-Wl,--build-id=0x<random>` (-DBENCH_ID=i alone would not change
     the build id), so the agent has never seen the module. Three kinds, in turn:
       new-libc  runs with LD_LIBRARY_PATH at a private copy of /lib/x86_64-linux-gnu/libc.so.6 whose build id
                 note is overwritten with random bytes: two new modules, one of them libc itself (the
                 libc-sized case the budget is about);
       dynamic   the system libc, already loaded for other processes: one small new module;
       static    linked -static: a non-PIE executable holding the part of libc it uses.
     The summary's `unwind.tableLoads` entries of those pids give millisecondsFromFirstSample (with modules
     and rows); the median per kind is reported. Budget <= 500 ms for new-libc. When the agent does not write
     `unwind.tableLoads`: n/a. A cross-check that needs no field: a fresh process's samples that are not
     rooted in the folded output (its comm is its unique file name) were taken before its tables reached the
     kernel (those ended by an unwinder marker, [unwind error: ...] or [truncated], are counted apart: they
     had tables); a CPU-bound process is sampled about every 1/F s, so those samples / F estimate the same
     latency, to 1/F.
Results are printed as Markdown tables (for BENCHMARKS.md) and as JSON with --json. Every child is killed at
exit (each runs in its own session and its process group is killed).
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C_FIXTURE = os.path.join(ROOT, "Tests/HearthSamplerTests/Fixtures/unwind_workload.c")
SWIFT_FIXTURE = os.path.join(ROOT, "Tests/HearthSamplerTests/Fixtures/unwind_swift_workload.swift")
ROOT_NAMES = {"_start", "__libc_start_call_main", "clone", "clone3", "start_thread"}
KERNEL_START = 0xFFFF800000000000
DEFAULT_WORKLOADS = "chain,python,swift,qsort"
PYTHON_LOOP = """\
import ctypes, sys
if len(sys.argv) > 1:
    ctypes.CDLL(sys.argv[1])  # maps libswiftCore, libstdc++ and libm into this process

def inner(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

def outer():
    return inner(20000)

while True:
    outer()
"""

children = []  # every Popen this script started, killed (by process group) at exit


def spawn(argv, **options):
    process = subprocess.Popen(argv, start_new_session=True, **options)
    children.append(process)
    return process


def kill_children():
    for process in children:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def cpu_seconds(pid):
    """utime + stime of a live process so far, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def is_root_name(name):
    return name in ROOT_NAMES or name.startswith("__libc_start_main")


def median(values):
    return statistics.median(values) if values else None


def weighted_median(pairs):
    """Median of values given as (value, count) pairs."""
    total = sum(count for _, count in pairs)
    if total == 0:
        return None
    seen = 0
    for value, count in sorted(pairs):
        seen += count
        if seen * 2 >= total:
            return value
    return None


# ---- workloads ---------------------------------------------------------------------------------------------------

def swift_core_library():
    swiftc = shutil.which("swiftc")
    if swiftc is None:
        return None
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(swiftc))), "lib/swift/linux/libswiftCore.so")
    return path if os.path.exists(path) else None


def build_c(scratch, name, extra=()):
    binary = os.path.join(scratch, name)
    subprocess.check_call(["gcc", "-O2", "-g", "-fomit-frame-pointer", *extra, "-o", binary, C_FIXTURE])
    return binary


def workload_argv(name, scratch, args, notes):
    """The argv of workload `name`, or None (with a note) when it cannot run here."""
    chain = os.path.join(scratch, "unwind-omit-fp")
    if name in ("chain", "qsort", "recurse") and not os.path.exists(chain):
        build_c(scratch, "unwind-omit-fp")
    if name == "chain":
        return [chain, "chain"]
    if name == "qsort":
        return [chain, "qsort"]
    if name == "recurse":
        return [chain, "recurse", "30"]
    if name == "python":
        script = os.path.join(scratch, "two_functions.py")
        with open(script, "w") as file:
            file.write(PYTHON_LOOP)
        core = swift_core_library()
        if core is None:
            notes.append("python: libswiftCore.so not found next to swiftc; python3 runs without it")
        return ["/usr/bin/python3", script] + ([core] if core else [])
    if name == "swift":
        if not os.path.exists(SWIFT_FIXTURE):
            notes.append(f"swift: skipped, {os.path.relpath(SWIFT_FIXTURE, ROOT)} does not exist yet")
            return None
        if shutil.which("swiftc") is None:
            notes.append("swift: skipped, swiftc not found")
            return None
        binary = os.path.join(scratch, "unwind-swift")
        subprocess.check_call(["swiftc", "-O", "-o", binary, SWIFT_FIXTURE])
        return [binary, *args.swift_args.split()]
    sys.exit(f"unknown workload {name}")


def mapped_libraries(pid):
    try:
        with open(f"/proc/{pid}/maps") as file:
            text = file.read()
    except OSError:
        return {}
    return {"libc": "/libc.so.6" in text, "libstdc++": "/libstdc++.so.6" in text,
            "libswiftCore": "/libswiftCore.so" in text}


def libc_path(pid):
    """The libc a process mapped (None for a static executable)."""
    try:
        with open(f"/proc/{pid}/maps") as file:
            for line in file:
                if line.rstrip().endswith("/libc.so.6"):
                    return line.split()[-1]
    except OSError:
        pass
    return None


def start_workload(argv, wait_for=("libc.so.6",)):
    process = spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{process.pid}/maps") as file:
                maps = file.read()
        except OSError:
            maps = ""
        if all(name in maps for name in wait_for):
            break
        if process.poll() is not None:
            sys.exit(f"{argv} exited with {process.returncode}")
        time.sleep(0.02)
    time.sleep(1)  # past start-up, into the loop
    return process


def stop(process, signal_number=signal.SIGKILL):
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal_number)
        except ProcessLookupError:
            pass
    process.wait()


# ---- BPF statistics ----------------------------------------------------------------------------------------------

def bpftool(*arguments):
    return json.loads(subprocess.check_output(["bpftool", "-j", *arguments], stderr=subprocess.DEVNULL) or b"[]")


class ProgramWatch:
    """Reads `bpftool prog show` every second while a tool runs; keeps the last reading of the chosen program."""

    def __init__(self, choose):
        self.choose = choose
        self.last = None
        self.maps = None
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            self.read()
            self.done.wait(1.0)

    def read(self):
        with self.lock:
            try:
                programs = [p for p in bpftool("prog", "show") if self.choose(p)]
            except (subprocess.CalledProcessError, json.JSONDecodeError):
                programs = []
            if not programs:
                return
            self.last = {"run_cnt": sum(p.get("run_cnt", 0) for p in programs),
                         "run_time_ns": sum(p.get("run_time_ns", 0) for p in programs),
                         "programs": [p.get("name") for p in programs]}
            if self.maps is None:
                ids = {i for p in programs for i in p.get("map_ids", [])}
                try:
                    self.maps = {f'{m.get("name", "")}#{m["id"]}': m.get("bytes_memlock", 0)
                                 for m in bpftool("map", "show") if m["id"] in ids}
                except (subprocess.CalledProcessError, json.JSONDecodeError):
                    pass

    def finish(self):
        self.done.set()
        self.thread.join()
        return self.last, self.maps


def program_ids(pid):
    """Ids of the BPF programs process `pid` holds open, from the `prog_id:` lines of /proc/PID/fdinfo (this
    bpftool reports no pids, and other processes, e.g. tests, may load a program of the same name)."""
    ids = set()
    try:
        descriptors = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return ids
    for descriptor in descriptors:
        try:
            with open(f"/proc/{pid}/fdinfo/{descriptor}") as file:
                match = re.search(r"^prog_id:\s*(\d+)", file.read(), re.MULTILINE)
        except OSError:
            continue
        if match:
            ids.add(int(match.group(1)))
    return ids


def owned_by(pid):
    """A chooser for ProgramWatch: the perf_event programs `pid` holds."""
    cache = {"ids": set(), "at": 0.0}

    def choose(program):
        if time.monotonic() - cache["at"] > 0.5:
            cache["ids"], cache["at"] = program_ids(pid), time.monotonic()
        return program.get("type") == "perf_event" and program["id"] in cache["ids"]
    return choose


# ---- tools -------------------------------------------------------------------------------------------------------

def run_perf(pid, args, scratch):
    data = os.path.join(scratch, "perf.data")
    perf = spawn(["perf", "record", "-q", "-F", str(args.frequency), "--call-graph", f"dwarf,{args.perf_stack}",
                  "-p", str(pid), "-o", data, "--", "sleep", str(args.seconds)],
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, _ = os.wait4(perf.pid, 0)
    perf.returncode = os.waitstatus_to_exitcode(status)
    if perf.returncode != 0:
        sys.exit(f"perf record failed: {perf.stderr.read().decode(errors='replace')[-2000:]}")
    text = subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,ip,sym,dso", "--no-inline"],
                          capture_output=True, text=True, errors="replace").stdout
    os.unlink(data)
    frame = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")
    samples, current = [], None
    for line in text.splitlines():
        if not line.strip():
            if current is not None:
                samples.append(current)
            current = None
            continue
        match = frame.match(line)
        if match and current is not None:
            current.append((int(match.group(1), 16), match.group(2), match.group(3)))
        elif not match:
            if current is not None:
                samples.append(current)
            current = []
    if current is not None:
        samples.append(current)
    rooted, unknown, depths, outermost = 0, 0, [], {}
    for frames in samples:
        user = [f for f in frames if f[0] < KERNEL_START]
        name = user[-1][1] if user else "(no user frames)"
        name = re.sub(r"\+0x[0-9a-f]+$", "", name)
        outermost[name] = outermost.get(name, 0) + 1
        if user and is_root_name(name):
            rooted += 1
            depths.append((len(user), 1))
        elif name == "[unknown]":
            unknown += 1
    total = len(samples)
    return {"samples": total, "rooted": rooted, "rooted_share": rooted / total if total else None,
            "outermost_unknown_share": unknown / total if total else None,
            "user_depth_median": weighted_median(depths),
            "top_outermost": sorted(outermost.items(), key=lambda item: -item[1])[:5]}


def parse_folded(path, comm=None):
    """Rooted share of a folded file's samples (only those of process name `comm` when given)."""
    rooted, markers, total, depths, outermost = 0, {}, 0, [], {}
    with open(path) as file:
        for line in file:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            count = int(count)
            fields = stack.split(";")
            if comm is not None and fields[0] != comm:
                continue
            frames = fields[1:]  # the first field is the comm label
            total += count
            name = frames[0] if frames else "(no frames)"
            outermost[name] = outermost.get(name, 0) + count
            if is_root_name(name):
                rooted += count
                depths.append((len(frames), count))
            elif name.startswith("[truncated]") or name.startswith("[unwind error"):
                markers[name] = markers.get(name, 0) + count
    return {"samples": total, "rooted": rooted, "rooted_share": rooted / total if total else None,
            "markers": markers, "frames_median": weighted_median(depths),
            "top_outermost": sorted(outermost.items(), key=lambda item: -item[1])[:5]}


def run_hearth(pid, mode, args, scratch, seconds=None, during=None):
    """One `hearth-agent profile` run: folded output, summary, BPF statistics, maps and peak RSS."""
    tag = f"{mode}-{pid or 'all'}"
    folded = os.path.join(scratch, f"{tag}.folded")
    summary_path = os.path.join(scratch, f"{tag}.json")
    argv = [args.agent, "profile", "--seconds", str(seconds or args.seconds), "--frequency", str(args.frequency),
            "--unwind", mode, "-o", folded, "--summary-json", summary_path]
    if pid is not None:
        argv += ["--pid", str(pid)]
    stderr = open(os.path.join(scratch, f"{tag}.stderr"), "w+")
    agent = spawn(argv, stdout=subprocess.DEVNULL, stderr=stderr)
    watch = ProgramWatch(owned_by(agent.pid))
    observed = during(agent) if during else None
    _, status, usage = os.wait4(agent.pid, 0)
    agent.returncode = os.waitstatus_to_exitcode(status)
    stats, maps = watch.finish()
    if agent.returncode != 0:
        stderr.seek(0)
        sys.exit(f"hearth-agent profile --unwind {mode} failed ({agent.returncode}): {stderr.read()[-2000:]}")
    with open(summary_path) as file:
        summary = json.load(file)
    result = {"peak_rss_mib": usage.ru_maxrss / 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime,
              "maps_bytes": maps or {}, "maps_mib": sum((maps or {}).values()) / (1 << 20),
              "samples": summary.get("samples"), "program_runs": summary.get("programRuns"),
              "lost_stacks": summary.get("lostStacks"), "unwind": summary.get("unwind"), "observed": observed}
    if isinstance(result["unwind"], dict):
        # The agent's own rooted share (over samples with a user stack), a cross-check of the folded parse.
        result["agent_rooted_share"] = result["unwind"].get("rootedShare")
        if pid is not None:
            result["unwind"] = {k: v for k, v in result["unwind"].items() if k != "modules"} | {
                "modules": (result["unwind"].get("modules") or [])[:10]}
    result["rss_plus_maps_mib"] = result["peak_rss_mib"] + result["maps_mib"]
    samples, runs = summary.get("samples"), summary.get("programRuns")
    result["bpf"] = bpf_costs(stats, min(1.0, samples / runs) if samples and runs else None)
    if pid is not None:
        result["stacks"] = parse_folded(folded)
    else:
        result["folded"] = {comm: parse_folded(folded, comm) for comm in (observed or {}).get("comms", [])}
    return result


def bpf_costs(stats, kept_fraction):
    """ns per run from the last reading; ns per kept sample = ns per run / (kept samples / runs)."""
    if not stats or not stats["run_cnt"]:
        return {"ns_per_run": None, "ns_per_recorded_sample": None, "run_cnt": 0}
    per_run = stats["run_time_ns"] / stats["run_cnt"]
    return {"run_cnt": stats["run_cnt"], "run_time_ns": stats["run_time_ns"], "ns_per_run": per_run,
            "kept_fraction": kept_fraction,
            "ns_per_recorded_sample": per_run / kept_fraction if kept_fraction else None}


def run_bpftrace(pid, args, scratch):
    if shutil.which("bpftrace") is None:
        return None
    output = open(os.path.join(scratch, "bpftrace.out"), "w+")
    program = f"profile:hz:{args.frequency} /pid == {pid}/ {{ @[ustack, kstack] = count(); }}"
    tracer = spawn(["bpftrace", "-e", program], stdout=output, stderr=subprocess.STDOUT)
    watch = ProgramWatch(owned_by(tracer.pid))
    time.sleep(args.seconds)
    watch.read()  # a reading just before the stop, so its runs match the samples bpftrace prints
    tracer.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(tracer.pid, 0)
    tracer.returncode = os.waitstatus_to_exitcode(status)
    stats, _ = watch.finish()
    output.seek(0)
    kept = sum(int(value) for value in re.findall(r"\]: (\d+)$", output.read(), re.MULTILINE))
    fraction = min(1.0, kept / stats["run_cnt"]) if stats and stats["run_cnt"] and kept else None
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "kept_samples": kept, "bpf": bpf_costs(stats, fraction)}


# ---- part 4 ------------------------------------------------------------------------------------------------------

BUILD_ID_NOTE = b"\x04\x00\x00\x00\x14\x00\x00\x00\x03\x00\x00\x00GNU\x00"  # namesz 4, descsz 20, NT_GNU_BUILD_ID


def private_libc(scratch, index):
    """A copy of this machine's libc.so.6 whose 20-byte GNU build id is replaced by random bytes, in a directory of
    its own (for LD_LIBRARY_PATH): a libc-sized module the agent has never seen."""
    directory = os.path.join(scratch, f"libc-{index}")
    os.makedirs(directory)
    with open(os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"), "rb") as file:
        data = bytearray(file.read())
    at = data.find(BUILD_ID_NOTE)
    if at < 0:
        sys.exit("no 20-byte GNU build id note in libc.so.6")
    at += len(BUILD_ID_NOTE)
    data[at:at + 20] = os.urandom(20)
    path = os.path.join(directory, "libc.so.6")
    with open(path, "wb") as file:
        file.write(data)
    os.chmod(path, 0o755)
    return directory


FRESH_KINDS = ("new-libc", "dynamic", "static")


def first_sample_latency(args, scratch):
    fresh = []
    for index in range(args.fresh):
        kind = FRESH_KINDS[index % len(FRESH_KINDS)]
        build_id = uuid.uuid4().hex
        extra = [f"-DBENCH_ID={index}", f"-Wl,--build-id=0x{build_id}"] + (["-static"] if kind == "static" else [])
        environment = dict(os.environ, LD_LIBRARY_PATH=private_libc(scratch, index)) if kind == "new-libc" else None
        fresh.append((kind, build_c(scratch, f"fresh-{index}-{kind}", extra), environment))

    def run_fresh(agent):
        # Settled: at least 5 s in, and two seconds in a row in which the agent used under 0.05 s of CPU (its
        # start-up table loads, its own binary's among them since it samples itself, are done); at most 60 s.
        started, previous, quiet = time.monotonic(), cpu_seconds(agent.pid), 0
        while time.monotonic() - started < 60:
            time.sleep(1)
            now = cpu_seconds(agent.pid)
            quiet = quiet + 1 if now - previous < 0.05 else 0
            previous = now
            if time.monotonic() - started >= 5 and quiet >= 2:
                break
        settled_after = time.monotonic() - started
        pids, comms, libcs = [], [], []
        for kind, binary, environment in fresh:
            process = spawn([binary, "chain"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
            pids.append((kind, process.pid, os.path.basename(binary)[:15]))
            comms.append(os.path.basename(binary)[:15])
            time.sleep(0.3)
            libcs.append(libc_path(process.pid))
            time.sleep(max(0.0, args.fresh_seconds - 0.3))
            stop(process)
        time.sleep(2)
        agent.send_signal(signal.SIGINT)  # stops the recording early; the profile and summary are still written
        return {"pids": pids, "comms": comms, "libcs": libcs, "settled_after_seconds": settled_after}

    result = run_hearth(None, "eh-frame", args, scratch, seconds=3600, during=run_fresh)
    unwind = result.get("unwind")
    loads = unwind.get("tableLoads") if isinstance(unwind, dict) else None
    per_kind = {}
    for (kind, pid, comm), libc in zip(result["observed"]["pids"], result["observed"]["libcs"]):
        entry = per_kind.setdefault(kind, {"pids": [], "ms": [], "modules": [], "rows": [], "samples": [],
                                           "unrooted_samples": [], "marker_samples": [], "libc": []})
        entry["pids"].append(pid)
        entry["libc"].append(libc)
        stacks = result["folded"].get(comm) or {}
        markers = sum((stacks.get("markers") or {}).values())
        entry["samples"].append(stacks.get("samples", 0))
        entry["marker_samples"].append(markers)
        # Neither rooted nor ended by the unwinder's marker: walked by frame pointers, before its tables.
        entry["unrooted_samples"].append(stacks.get("samples", 0) - stacks.get("rooted", 0) - markers)
        # The process's first load (a later one with "reload": true follows a change of its mappings).
        for load in loads or []:
            if load.get("pid") == pid and not load.get("reload", False):
                entry["ms"].append(load.get("millisecondsFromFirstSample"))
                entry["modules"].append(load.get("modules"))
                entry["rows"].append(load.get("rows"))
                entry.setdefault("loads", []).append(load)
                break
    for entry in per_kind.values():
        values = [v for v in entry["ms"] if v is not None]
        entry["median_ms"] = median(values) if loads is not None and values else None
        # Cross-check without the field: a CPU-bound process is sampled about every 1/F s, so its frame-pointer
        # samples (taken before its tables were in the kernel) span about that many / F seconds.
        entry["median_unrooted_ms_estimate"] = median([1000 * n / args.frequency for n in entry["unrooted_samples"]])
    return {"field_present": loads is not None, "settled_after_seconds": result["observed"]["settled_after_seconds"],
            "fresh_seconds": args.fresh_seconds, "per_kind": per_kind,
            "peak_rss_mib": result["peak_rss_mib"], "maps_mib": result["maps_mib"], "folded": result["folded"]}


# ---- output ------------------------------------------------------------------------------------------------------

def pct(value):
    return "n/a" if value is None else f"{100 * value:.1f}%"


def num(value, digits=0, unit=""):
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def print_markdown(result, args):
    workloads = result["workloads"]
    print(f"### Rooted stacks ({args.seconds} s per tool at {args.frequency} Hz, one tool after the other)\n")
    print("| workload | user frames (perf, median) | perf --call-graph dwarf | hearth eh-frame | "
          "hearth frame pointers | eh-frame markers |")
    print("|---|---|---|---|---|---|")
    for name, w in workloads.items():
        markers = ", ".join(f"{k} {v}" for k, v in w["eh-frame"]["stacks"]["markers"].items()) or "none"
        print(f"| {name} | {num(w['perf']['user_depth_median'])} | {pct(w['perf']['rooted_share'])} "
              f"({w['perf']['samples']}) | {pct(w['eh-frame']['stacks']['rooted_share'])} "
              f"({w['eh-frame']['stacks']['samples']}) | {pct(w['frame-pointers']['stacks']['rooted_share'])} "
              f"({w['frame-pointers']['stacks']['samples']}) | {markers} |")
    print("\n(samples of the process in parentheses)\n")

    print("### BPF time per sample (kernel.bpf_stats_enabled)\n")
    print("| workload | user frames | frame pointers ns/run | eh-frame ns/run | bpftrace ns/run | frame pointers "
          "ns/kept sample | eh-frame ns/kept sample | bpftrace ns/kept sample | eh-frame / frame pointers |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, w in workloads.items():
        fp, eh, bt = w["frame-pointers"]["bpf"], w["eh-frame"]["bpf"], (w["bpftrace"] or {}).get("bpf", {})
        print(f"| {name} | {num(w['perf']['user_depth_median'])} | {num(fp['ns_per_run'])} | {num(eh['ns_per_run'])} | {num(bt.get('ns_per_run'))} | "
              f"{num(fp['ns_per_recorded_sample'])} | {num(eh['ns_per_recorded_sample'])} | "
              f"{num(bt.get('ns_per_recorded_sample'))} | {num(w['eh_over_fp'], 2, 'x')} |")
    print(f"\nBudget eh-frame <= 3x frame pointers (stacks <= 20 frames): {result['budgets']['bpf_time']}\n")

    print("### Memory of hearth-agent profile --pid (peak RSS + BPF maps)\n")
    print("| workload | libc, libstdc++, libswiftCore mapped | frame pointers RSS + maps | eh-frame RSS + maps |")
    print("|---|---|---|---|")
    for name, w in workloads.items():
        libs = ", ".join(k for k, v in w["libraries"].items() if v) or "none"
        fp, eh = w["frame-pointers"], w["eh-frame"]
        print(f"| {name} | {libs} | {fp['peak_rss_mib']:.1f} + {fp['maps_mib']:.1f} = "
              f"{fp['rss_plus_maps_mib']:.1f} MiB | {eh['peak_rss_mib']:.1f} + {eh['maps_mib']:.1f} = "
              f"{eh['rss_plus_maps_mib']:.1f} MiB |")
    print(f"\nBudget RSS + maps <= 64 MiB with libc, libstdc++ and libswiftCore (eh-frame): "
          f"{result['budgets']['memory']}\n")

    latency = result.get("latency")
    if latency:
        print("### First sample of a new binary to its unwind tables (hearth-agent profile --unwind eh-frame, "
              "whole machine)\n")
        print("| new binary | processes | median ms from first sample | modules | rows | samples (frame-pointer, "
              "unwinder error) | frame-pointer samples / F, median |")
        print("|---|---|---|---|---|---|---|")
        for kind, entry in latency["per_kind"].items():
            rows = [r for r in entry["rows"] if r is not None]
            modules = [m for m in entry["modules"] if m is not None]
            print(f"| {kind} | {len(entry['pids'])} | {num(entry['median_ms'], 1)} | "
                  f"{num(median(modules))} | {num(median(rows))} | {sum(entry['samples'])} "
                  f"({sum(entry['unrooted_samples'])}, {sum(entry['marker_samples'])}) | "
                  f"{num(entry['median_unrooted_ms_estimate'], 0, ' ms')} |")
        private = latency["per_kind"].get("new-libc", {}).get("libc", [])
        if any(path is None or path.startswith("/lib") or path.startswith("/usr/lib") for path in private):
            print(f"\n(warning: a new-libc process mapped {private}, not its private copy)")
        if not latency["field_present"]:
            print("\n(n/a: this build of hearth-agent writes no `unwind.tableLoads` in --summary-json)")
        print(f"\nBudget <= 500 ms for a libc-sized module (new-libc): {result['budgets']['latency']}. "
              f"The whole-machine agent: peak RSS {latency['peak_rss_mib']:.1f} MiB, maps {latency['maps_mib']:.1f} MiB.")
    for note in result["notes"]:
        print(f"\nNote: {note}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="per measurement (per tool and workload)")
    parser.add_argument("--frequency", type=int, default=99)
    parser.add_argument("--agent", default=os.path.join(ROOT, ".build/release/hearth-agent"))
    parser.add_argument("--workloads", default=DEFAULT_WORKLOADS, help=f"comma-separated, default {DEFAULT_WORKLOADS}"
                        " (also: recurse)")
    parser.add_argument("--swift-args", default="", help="arguments of the Swift fixture")
    parser.add_argument("--perf-stack", type=int, default=8192, help="bytes of stack perf copies per sample")
    parser.add_argument("--fresh", type=int, default=6, help="new processes for the first-sample latency")
    parser.add_argument("--fresh-seconds", type=float, default=3.0, help="how long each new process runs")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the agent, perf and bpftool need it")
    if not os.access(args.agent, os.X_OK):
        sys.exit(f"{args.agent} is missing: swift build -c release --product hearth-agent")
    for tool, package in (("perf", "linux-perf"), ("bpftool", "bpftool"), ("gcc", "gcc")):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install {package}")
    notes = []
    if shutil.which("bpftrace") is None:
        notes.append("bpftrace is not installed (apt-get install -y bpftrace): its column is n/a")
    if not os.path.isdir("/usr/lib/debug/.build-id"):
        notes.append("libc6-dbg is not installed: __libc_start_call_main may be unnamed, roots undercounted")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scratch = tempfile.mkdtemp(prefix="hearth-unwind-bench-")
    stats_path = "/proc/sys/kernel/bpf_stats_enabled"
    with open(stats_path) as file:
        previous_stats = file.read().strip()
    result = {"seconds": args.seconds, "frequency": args.frequency, "cpus": os.cpu_count(),
              "kernel": os.uname().release, "workloads": {}, "notes": notes}
    try:
        with open(stats_path, "w") as file:
            file.write("1")
        for name in [n.strip() for n in args.workloads.split(",") if n.strip()]:
            argv = workload_argv(name, scratch, args, notes)
            if argv is None:
                continue
            wait_for = ("libc.so.6", "libswiftCore") if name == "python" and len(argv) > 2 else ("libc.so.6",)
            process = start_workload(argv, wait_for)
            try:
                entry = {"argv": [os.path.basename(argv[0])] + argv[1:], "libraries": mapped_libraries(process.pid)}
                entry["perf"] = run_perf(process.pid, args, scratch)
                entry["frame-pointers"] = run_hearth(process.pid, "frame-pointers", args, scratch)
                entry["eh-frame"] = run_hearth(process.pid, "eh-frame", args, scratch)
                entry["bpftrace"] = run_bpftrace(process.pid, args, scratch)
                if process.poll() is not None:
                    sys.exit(f"workload {name} exited during the measurement")
            finally:
                stop(process)
            fp = entry["frame-pointers"]["bpf"]["ns_per_recorded_sample"]
            eh = entry["eh-frame"]["bpf"]["ns_per_recorded_sample"]
            entry["eh_over_fp"] = eh / fp if fp and eh else None
            result["workloads"][name] = entry
        if not args.skip_latency:
            result["latency"] = first_sample_latency(args, scratch)
    finally:
        kill_children()
        with open(stats_path, "w") as file:
            file.write(previous_stats)
        shutil.rmtree(scratch, ignore_errors=True)

    # Budgets.
    shallow = [w for w in result["workloads"].values()
               if w["perf"]["user_depth_median"] is not None and w["perf"]["user_depth_median"] <= 20]
    ratios = [w["eh_over_fp"] for w in shallow if w["eh_over_fp"] is not None]
    bpf_budget = "n/a" if not ratios else (
        f"{'met' if max(ratios) <= 3 else 'NOT met'} (at most {max(ratios):.2f}x over {len(ratios)} workloads)")
    loaded = [(n, w["eh-frame"]["rss_plus_maps_mib"]) for n, w in result["workloads"].items() if all(w["libraries"].values())]
    memory_budget = "n/a (no workload mapped all three)" if not loaded else (
        f"{'met' if max(v for _, v in loaded) <= 64 else 'NOT met'} ("
        + ", ".join(f"{n} {v:.1f} MiB" for n, v in loaded) + ")")
    latency_budget = "n/a"
    static = (result.get("latency") or {}).get("per_kind", {}).get("new-libc")
    if static and static.get("median_ms") is not None:
        latency_budget = f"{'met' if static['median_ms'] <= 500 else 'NOT met'} ({static['median_ms']:.1f} ms)"
    result["budgets"] = {"bpf_time": bpf_budget, "memory": memory_budget, "latency": latency_budget}

    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_markdown(result, args)


if __name__ == "__main__":
    main()
