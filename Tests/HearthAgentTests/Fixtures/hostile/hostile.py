#!/usr/bin/env python3
"""Hostile-input fixtures for hearth-agent: processes and files a container could use against the profiler.

Usage:
    python3 hostile.py build --out DIR [--only NAME,NAME...]
    python3 hostile.py check --out DIR [--only NAME,NAME...]

`build` compiles hostile.c (gcc -O1 -g) into DIR/bin/hostile, builds the files of each attack under DIR/NAME/
and writes DIR/manifest.json. It needs gcc (with libc.a for the static build), strip, objcopy and Python 3 only,
takes a few seconds, and rebuilds only the directories it owns (DIR/bin, DIR/src, DIR/NAME). With --only, the
manifest lists just the attacks built. `check` starts every attack of an existing manifest, waits for its ready
line, checks the attack is really in place (/proc/PID/maps, the perf map, /proc/PID/root, the links), checks the
process burns CPU, then kills it and removes its perf map. Both must run as root (chroot, and /proc/PID/root of a
chrooted process).

The attacking process. Every attack starts one process (argv, absolute paths) that sets the attack up, prints one
line to stdout, `ready PID` (`ready PID PERFMAP` for perf-map), then burns CPU until killed (SIGKILL is fine), in
the noinline function `hostile_spin` of the hostile binary, or in the JIT page for perf-map. The files stay in
place while it runs; the test kills it and, for perf-map, deletes /tmp/perf-PID.map.

The attacks:

  well-behaved      DIR/bin/hostile spin, a normal unstripped build. The control: its frames must name
                    `hostile_spin` (and main, libc's start code).
  fifo-debuglink    A stripped copy of the hostile binary whose .gnu_debuglink names `hostile.debug`, and next to
                    it `hostile.debug` is a FIFO nobody writes to. Proves the agent never opens a debug candidate
                    that isn't a regular file (open(2) on a FIFO blocks forever, read on it too), and keeps
                    sampling: the stripped binary's frames stay unnamed, nothing hangs.
  device-debuglink  The same layout, but `hostile.debug` is a symlink to /dev/zero and `.debug/hostile.debug` one
                    to /dev/urandom (endless reads: an unbounded read or an mmap of a device). Same expectations.
  escape-symlink    A chroot (DIR/escape-symlink/root) running a static, stripped hostile at /bin/hostile with
                    .gnu_debuglink `hostile.debug`. /bin/hostile.debug inside the root and
                    /usr/lib/debug/.build-id/XX/YYYY.debug inside the root are ABSOLUTE symlinks to a path that
                    exists only on the host, DIR/escape-symlink/host-secret.debug: the same static binary,
                    unstripped, with `hostile_spin` renamed `HOST_SECRET_hostile_spin` (same code, same address,
                    same build id, and the debuglink CRC is that file's CRC, so no check but the path resolution
                    can reject it). An agent that opens /proc/PID/root/bin/hostile.debug with a plain open follows
                    the absolute link on the host and reads a host file the container chose. Proves container
                    paths are resolved inside the container's root (openat2 RESOLVE_IN_ROOT or equivalent):
                    `HOST_SECRET_hostile_spin` must never appear.
  sparse-ehframe    A small shared object whose .eh_frame section header claims 500 MiB, the file extended
                    (sparse, a few KiB on disk) to cover it; mapped once by `hostile map`. Proves section sizes are
                    bounded before reading or allocating; the attacker's own `hostile_spin` must still be named.
  repeated-fde      A shared object whose .eh_frame_hdr (a new table appended to the file, the section header
                    moved to it) lists ONE FDE 200,000 times; that FDE has ~2,000 CFI rows (1,000 push/pop pairs).
                    A naive compiler of unwind tables does 400 million rows of work. Proves FDEs are deduplicated
                    or the work is bounded. Mapped once by `hostile map`.
  perf-map          `hostile jit 62914560`: an anonymous RWX page running `jmp .` on a second thread, and a 60 MiB
                    /tmp/perf-PID.map of ~4.8 million `ADDR 1 a` lines at addresses outside the page (from
                    0x10000000, 16 bytes apart) plus, as its LAST line, `PAGE 1000 hostile_jit_code` naming the
                    real page. Proves perf-map reading is bounded in time and memory (whether the last line is
                    still honoured is the agent's policy; `hostile jit BYTES first|middle` moves it).
  many-mappings     `hostile map SMALL.so 60000`: 60,000 executable file mappings of one small ELF (offset 0
                    each, so they never merge). Proves per-mapping work and memory are bounded; `hostile_spin`
                    must still be named.
  fake-buildid      A small shared object whose GNU build-id note is overwritten with this host's libc build id,
                    and whose .symtab/.dynsym hold FAKE_LIBC_function_0..N, 1 KiB each, covering every link-time
                    address of libc's code. Mapped (keeping its path) by `hostile map`. Proves build-id keyed
                    caches can't be poisoned by a process: no frame may be named FAKE_LIBC_*, in this process
                    (which maps the real libc too) or any other.
  hung-mount        `hungfs MNT hostile spin` (hungfs.c): a FUSE file system, spoken directly over /dev/fuse, serves a
                    copy of the hostile binary as MNT/hostile; the process execs it from there, and once it runs the
                    file system stops answering, as a dead network volume does: every later lookup, open or read of
                    MNT/hostile (through /proc/PID/root or /proc/PID/map_files) waits in the kernel, unkillably. The
                    ready line is `ready PID MNT`. Proves a file that stops answering holds a worker, never the
                    sampling loop: the agent ends on time and keeps naming the others. When the process is killed,
                    the server detaches the mount, which fails every request still waiting (nothing stays blocked).

The manifest, DIR/manifest.json:

    {"attacks": [{"name": "many-mappings",
                  "argv": ["/abs/DIR/bin/hostile", "map", "/abs/DIR/many-mappings/libsmall.so", "60000"],
                  "description": "...",
                  "expect": {"ready": "ready <pid>", "module": "/abs/DIR/many-mappings/libsmall.so",
                             "executable_mappings": 60000, "required_symbols": ["hostile_spin"],
                             "forbidden_symbols": [], "forbidden_symbol_prefixes": [], ...}}, ...]}

A test reads it, picks an attack by name, starts argv (as root), reads stdout up to the ready line (the pid is the
process to profile, the same as the child's pid: chroot execs), profiles it (and for fake-buildid, other processes
too), and checks `expect`. Keys present in every entry:
    ready                      "ready <pid>" or "ready <pid> <perf map path>"
    module                     the file the attack is about (the mapped file, the stripped binary)
    required_symbols           names that must appear among the process's symbolized frames
    forbidden_symbols          names that must never appear (in any process's frames)
    forbidden_symbol_prefixes  prefixes no frame name may start with
    unavailable_symbols        names that can't legitimately be found (their only source is the hostile file)
Attack-specific keys are described in each entry's description and below in build_* functions.
"""

import argparse
import json
import os
import select
import shutil
import stat
import struct
import subprocess
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "hostile.c")
HUNGFS_SOURCE = os.path.join(HERE, "hungfs.c")
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
SPIN = "hostile_spin"
CFLAGS = ["-O1", "-g", "-pthread", "-Wl,--build-id"]

NAMES = [
    "well-behaved",
    "fifo-debuglink",
    "device-debuglink",
    "escape-symlink",
    "sparse-ehframe",
    "repeated-fde",
    "perf-map",
    "many-mappings",
    "fake-buildid",
    "hung-mount",
]

SPARSE_EH_FRAME_SIZE = 500 * 1024 * 1024
REPEATED_FDE_COUNT = 200_000
REPEATED_FDE_PAIRS = 1_000
PERF_MAP_BYTES = 60 * 1024 * 1024
MANY_MAPPINGS = 60_000
FAKE_SYMBOL_STEP = 0x400


# ---------------------------------------------------------------------------------------------------------------
# Small ELF64 little-endian reader/patcher.

SHT_SYMTAB, SHT_NOTE, SHT_DYNSYM = 2, 7, 11
SHDR = struct.Struct("<IIQQQQIIQQ")  # name type flags addr offset size link info addralign entsize
SYM = struct.Struct("<IBBHQQ")  # name info other shndx value size
PHDR = struct.Struct("<IIQQQQQQ")  # type flags offset vaddr paddr filesz memsz align
SHDR_KEYS = ("name_offset", "type", "flags", "addr", "offset", "size", "link", "info", "align", "entsize")
PHDR_KEYS = ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align")


class ELF:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            header = f.read(64)
            if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
                raise ValueError(f"{path}: not an ELF64 little-endian file")
            (self.phoff, self.shoff) = struct.unpack_from("<QQ", header, 32)
            (self.phentsize, self.phnum, self.shentsize, self.shnum, self.shstrndx) = struct.unpack_from(
                "<HHHHH", header, 54
            )
            f.seek(self.shoff)
            table = f.read(self.shnum * SHDR.size)
            f.seek(self.phoff)
            ptable = f.read(self.phnum * PHDR.size)
        self.sections = []
        for index in range(self.shnum):
            fields = SHDR.unpack_from(table, index * SHDR.size)
            section = dict(zip(SHDR_KEYS, fields))
            section["index"] = index
            section["header_offset"] = self.shoff + index * SHDR.size
            self.sections.append(section)
        names = self.read(self.sections[self.shstrndx]["offset"], self.sections[self.shstrndx]["size"])
        for section in self.sections:
            section["name"] = cstring(names, section["name_offset"])
        self.segments = [
            dict(zip(PHDR_KEYS, PHDR.unpack_from(ptable, i * PHDR.size))) for i in range(self.phnum)
        ]

    def read(self, offset, count):
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(count)
        if len(data) != count:
            raise ValueError(f"{self.path}: short read at {offset:#x}")
        return data

    def section(self, name):
        for section in self.sections:
            if section["name"] == name:
                return section
        raise KeyError(f"{self.path}: no section {name}")

    def has_section(self, name):
        return any(s["name"] == name for s in self.sections)

    def data(self, name):
        section = self.section(name)
        return self.read(section["offset"], section["size"])

    def symbols(self, table=".symtab"):
        """(name, value, size, type, shndx) of every named symbol of the table."""
        section = self.section(table)
        data = self.read(section["offset"], section["size"])
        strings_section = self.sections[section["link"]]
        strings = self.read(strings_section["offset"], strings_section["size"])
        result = []
        for offset in range(0, len(data), SYM.size):
            name, info, _other, shndx, value, size = SYM.unpack_from(data, offset)
            if name:
                result.append((cstring(strings, name), value, size, info & 0xF, shndx))
        return result

    def symbol(self, name, table=".symtab"):
        matches = [s for s in self.symbols(table) if s[0] == name]
        if len(matches) != 1:
            raise KeyError(f"{self.path}: {len(matches)} symbols named {name}")
        return matches[0]

    def build_id(self):
        """(file offset of the note's descriptor, descriptor bytes) of NT_GNU_BUILD_ID."""
        for section in self.sections:
            if section["type"] != SHT_NOTE:
                continue
            data = self.read(section["offset"], section["size"])
            position = 0
            while position + 12 <= len(data):
                namesz, descsz, kind = struct.unpack_from("<III", data, position)
                name_start = position + 12
                desc_start = name_start + align(namesz, 4)
                if kind == 3 and data[name_start : name_start + namesz] == b"GNU\0":
                    return section["offset"] + desc_start, data[desc_start : desc_start + descsz]
                position = desc_start + align(descsz, 4)
        raise KeyError(f"{self.path}: no GNU build id note")

    def patch_section_header(self, name, **fields):
        section = self.section(name)
        section.update(fields)
        packed = SHDR.pack(*(section[k] for k in SHDR_KEYS))
        with open(self.path, "r+b") as f:
            f.seek(section["header_offset"])
            f.write(packed)


def cstring(data, offset):
    end = data.index(b"\0", offset)
    return data[offset:end].decode("utf-8", "replace")


def align(value, alignment):
    return (value + alignment - 1) // alignment * alignment


def uleb128(data, position):
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, position


def sleb128(data, position):
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, position


def decode_pointer(data, position, encoding, pcrel_base, datarel_base):
    """Decodes a DW_EH_PE pointer at data[position]; pcrel_base is the address of data[0]."""
    start = position
    form = encoding & 0x0F
    if form == 0x00 or form == 0x04:
        value, position = struct.unpack_from("<Q", data, position)[0], position + 8
    elif form == 0x0C:
        value, position = struct.unpack_from("<q", data, position)[0], position + 8
    elif form == 0x03:
        value, position = struct.unpack_from("<I", data, position)[0], position + 4
    elif form == 0x0B:
        value, position = struct.unpack_from("<i", data, position)[0], position + 4
    elif form == 0x02:
        value, position = struct.unpack_from("<H", data, position)[0], position + 2
    elif form == 0x0A:
        value, position = struct.unpack_from("<h", data, position)[0], position + 2
    elif form == 0x01:
        value, position = uleb128(data, position)
    elif form == 0x09:
        value, position = sleb128(data, position)
    else:
        raise ValueError(f"pointer format {encoding:#x}")
    application = encoding & 0x70
    if application == 0x10:
        value += pcrel_base + start
    elif application == 0x30:
        value += datarel_base
    elif application != 0x00:
        raise ValueError(f"pointer application {encoding:#x}")
    return value & 0xFFFFFFFFFFFFFFFF, position


def parse_eh_frame_hdr(data, address):
    """(eh_frame_ptr, [(initial location, FDE address)]) of an .eh_frame_hdr at `address`."""
    version, frame_encoding, count_encoding, table_encoding = data[0], data[1], data[2], data[3]
    if version != 1:
        raise ValueError(f"eh_frame_hdr version {version}")
    frame_pointer, position = decode_pointer(data, 4, frame_encoding, address, address)
    count, position = decode_pointer(data, position, count_encoding, address, address)
    entries = []
    for _ in range(count):
        location, position = decode_pointer(data, position, table_encoding, address, address)
        fde, position = decode_pointer(data, position, table_encoding, address, address)
        entries.append((location, fde))
    return frame_pointer, entries


def parse_fde(eh_frame, eh_frame_address, offset):
    """(pc_begin, pc_range, rows) of the FDE at eh_frame[offset]; rows counts the CFA table rows."""
    length, cie_pointer = struct.unpack_from("<II", eh_frame, offset)
    if length == 0xFFFFFFFF or cie_pointer == 0:
        raise ValueError("not a 32-bit FDE")
    end = offset + 4 + length
    cie = offset + 4 - cie_pointer
    cie_length, cie_id = struct.unpack_from("<II", eh_frame, cie)
    if cie_id != 0:
        raise ValueError("CIE pointer doesn't point at a CIE")
    version = eh_frame[cie + 8]
    augmentation_end = eh_frame.index(b"\0", cie + 9)
    augmentation = eh_frame[cie + 9 : augmentation_end].decode()
    position = augmentation_end + 1
    _, position = uleb128(eh_frame, position)  # code alignment
    _, position = sleb128(eh_frame, position)  # data alignment
    position = position + 1 if version == 1 else uleb128(eh_frame, position)[1]
    fde_encoding = 0x00
    if augmentation.startswith("z"):
        _, position = uleb128(eh_frame, position)
        for letter in augmentation[1:]:
            if letter == "R":
                fde_encoding = eh_frame[position]
                position += 1
            elif letter == "P":
                personality_encoding = eh_frame[position]
                _, position = decode_pointer(eh_frame, position + 1, personality_encoding, eh_frame_address, 0)
            elif letter == "L":
                position += 1
    pc_begin, position = decode_pointer(eh_frame, offset + 8, fde_encoding, eh_frame_address, 0)
    pc_range, position = decode_pointer(eh_frame, position, fde_encoding & 0x0F, eh_frame_address, 0)
    if augmentation.startswith("z"):
        size, position = uleb128(eh_frame, position)
        position += size
    rows = 1
    while position < end:
        op = eh_frame[position]
        position += 1
        high, low = op & 0xC0, op & 0x3F
        if high == 0x40:
            rows += 1
        elif high == 0x80:
            _, position = uleb128(eh_frame, position)
        elif high == 0xC0:
            pass
        elif op == 0x00:
            pass
        elif op in (0x02, 0x03, 0x04):
            position += {0x02: 1, 0x03: 2, 0x04: 4}[op]
            rows += 1
        elif op in (0x0E, 0x0D, 0x08, 0x07, 0x06):  # def_cfa_offset, def_cfa_register, same/undefined/restore
            _, position = uleb128(eh_frame, position)
        elif op in (0x0C, 0x05, 0x09):  # def_cfa, offset_extended, register
            _, position = uleb128(eh_frame, position)
            _, position = uleb128(eh_frame, position)
        elif op in (0x0A, 0x0B):  # remember/restore state
            pass
        else:
            raise ValueError(f"CFA opcode {op:#x} not understood by this checker")
    return pc_begin, pc_range, rows


# ---------------------------------------------------------------------------------------------------------------
# Building.


class Builder:
    def __init__(self, out):
        self.out = os.path.realpath(out)
        self.timings = []
        self._hostile = None

    def path(self, *parts):
        return os.path.join(self.out, *parts)

    def fresh_dir(self, *parts):
        directory = self.path(*parts)
        if os.path.lexists(directory):
            shutil.rmtree(directory)
        os.makedirs(directory)
        return directory

    def step(self, label, function, *args):
        start = time.perf_counter()
        result = function(*args)
        self.timings.append((label, time.perf_counter() - start))
        return result

    def run(self, label, command, cwd=None):
        def go():
            completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
            if completed.returncode != 0:
                raise SystemExit(f"{label} failed: {' '.join(command)}\n{completed.stdout}{completed.stderr}")

        self.step(label, go)

    def hostile(self):
        """DIR/bin/hostile, the normal unstripped build (the well-behaved workload and the map/jit runner)."""
        if self._hostile is None:
            self.fresh_dir("bin")
            self._hostile = self.path("bin", "hostile")
            self.run("gcc hostile (dynamic)", ["gcc", *CFLAGS, "-o", self._hostile, SOURCE])
        return self._hostile

    def write_source(self, name, text):
        directory = self.path("src")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def small_library(self, directory, name):
        """A small ordinary shared object with a few functions."""
        source = self.write_source(
            "small.c",
            "volatile int small_sink;\n"
            + "".join(
                f"__attribute__((noinline)) int small_function_{i}(int x) {{ small_sink += x; return x * {i + 3}; }}\n"
                for i in range(8)
            ),
        )
        path = os.path.join(directory, name)
        self.run(f"gcc {name}", ["gcc", "-O1", "-g", "-shared", "-fPIC", "-Wl,--build-id", "-o", path, source])
        return path

    def stripped_with_debuglink(self, unstripped, directory, debug_contents):
        """directory/hostile: `unstripped` stripped, with .gnu_debuglink naming `hostile.debug`, whose CRC is the
        CRC of `debug_contents` (copied to directory/hostile.debug while the link is added; the caller replaces it)."""
        binary = os.path.join(directory, "hostile")
        debug = os.path.join(directory, "hostile.debug")
        self.run("strip --strip-all", ["strip", "--strip-all", "-o", binary, unstripped])
        shutil.copyfile(debug_contents, debug)
        self.run("objcopy --add-gnu-debuglink", ["objcopy", f"--add-gnu-debuglink={debug}", binary])
        check_debuglink(binary, "hostile.debug", debug)
        return binary, debug

    # -- attacks ---------------------------------------------------------------------------------------------

    def build_hung_mount(self):
        hostile = self.hostile()
        unmount_stale(self.path("hung-mount", "mnt"))
        directory = self.fresh_dir("hung-mount")
        mountpoint = os.path.join(directory, "mnt")
        os.makedirs(mountpoint)
        hungfs = self.path("bin", "hungfs")
        self.run("gcc hungfs", ["gcc", "-O1", "-g", "-Wall", "-o", hungfs, HUNGFS_SOURCE])
        return entry(
            "hung-mount",
            [hungfs, mountpoint, hostile, "spin"],
            "A process running a binary from a FUSE mount that stops answering once it runs: every lookup, open "
            "or read of the binary waits in the kernel until the process ends. The agent must end on time and keep "
            "naming the others; the binary's own frames stay unnamed.",
            ready="ready <pid> <mountpoint>",
            module=os.path.join(mountpoint, "hostile"),
            mountpoint=mountpoint,
        )

    def build_well_behaved(self):
        hostile = self.hostile()
        ELF(hostile).symbol(SPIN)
        return entry(
            "well-behaved",
            [hostile, "spin"],
            "The control: a normal unstripped build spinning in hostile_spin. Its frames must be named.",
            module=hostile,
            required_symbols=[SPIN],
        )

    def debuglink_fixture(self, name):
        hostile = self.hostile()
        directory = self.fresh_dir(name)
        real_debug = os.path.join(directory, "real.debug")
        self.run("objcopy --only-keep-debug", ["objcopy", "--only-keep-debug", hostile, real_debug])
        binary, debug = self.stripped_with_debuglink(hostile, directory, real_debug)
        os.unlink(real_debug)
        os.unlink(debug)
        return hostile, directory, binary, debug

    def build_fifo_debuglink(self):
        _, directory, binary, debug = self.debuglink_fixture("fifo-debuglink")
        os.mkfifo(debug)
        return entry(
            "fifo-debuglink",
            [binary, "spin"],
            "A stripped binary whose .gnu_debuglink names hostile.debug, a FIFO next to it that no one writes "
            "to. Opening or reading it blocks forever: the agent must only open regular files (O_NONBLOCK + "
            "fstat S_ISREG) and keep sampling. hostile_spin can't be named (its only source is the FIFO).",
            module=binary,
            unavailable_symbols=[SPIN],
            debuglink="hostile.debug",
            hazards={debug: "fifo"},
        )

    def build_device_debuglink(self):
        _, directory, binary, debug = self.debuglink_fixture("device-debuglink")
        os.symlink("/dev/zero", debug)
        os.makedirs(os.path.join(directory, ".debug"))
        nested = os.path.join(directory, ".debug", "hostile.debug")
        os.symlink("/dev/urandom", nested)
        return entry(
            "device-debuglink",
            [binary, "spin"],
            "A stripped binary whose .gnu_debuglink candidates are devices: hostile.debug -> /dev/zero and "
            ".debug/hostile.debug -> /dev/urandom (endless data). The agent must reject non-regular files "
            "(after following links) and keep sampling; hostile_spin can't be named.",
            module=binary,
            unavailable_symbols=[SPIN],
            debuglink="hostile.debug",
            hazards={debug: "symlink to /dev/zero", nested: "symlink to /dev/urandom"},
        )

    def build_escape_symlink(self):
        directory = self.fresh_dir("escape-symlink")
        build = os.path.join(directory, "build")
        root = os.path.join(directory, "root")
        os.makedirs(build)
        os.makedirs(os.path.join(root, "bin"))
        os.makedirs(os.path.join(root, "tmp"))
        static = os.path.join(build, "hostile-static")
        self.run("gcc -static hostile", ["gcc", "-static", *CFLAGS, "-o", static, SOURCE])
        secret = os.path.join(directory, "host-secret.debug")
        secret_name = "HOST_SECRET_" + SPIN
        self.run("objcopy --redefine-sym", ["objcopy", f"--redefine-sym={SPIN}={secret_name}", static, secret])
        # The debuglink CRC is the secret file's, so only path resolution can reject it.
        binary, debug = self.stripped_with_debuglink(static, os.path.join(root, "bin"), secret)
        os.unlink(debug)
        os.symlink(secret, debug)  # absolute: resolves on the host when opened through /proc/PID/root
        build_id = ELF(binary).build_id()[1].hex()
        build_id_dir = os.path.join(root, "usr", "lib", "debug", ".build-id", build_id[:2])
        os.makedirs(build_id_dir)
        build_id_link = os.path.join(build_id_dir, build_id[2:] + ".debug")
        os.symlink(secret, build_id_link)
        self.step("verify escape-symlink", verify_escape, static, binary, secret, secret_name)
        shutil.rmtree(build)
        return entry(
            "escape-symlink",
            [shutil.which("chroot") or "/usr/sbin/chroot", root, "/bin/hostile", "spin"],
            "A chrooted static stripped binary whose debug file candidates inside the root (/bin/hostile.debug "
            "via .gnu_debuglink, /usr/lib/debug/.build-id/XX/YYYY.debug via the build id) are absolute symlinks "
            "to a host-only file naming hostile_spin HOST_SECRET_hostile_spin (same address, build id and "
            "debuglink CRC). Container paths must be resolved inside the container's root: "
            "HOST_SECRET_hostile_spin must never appear.",
            module="/bin/hostile",
            host_module=binary,
            process_root=root,
            host_secret=secret,
            escape_links={"/bin/hostile.debug": secret, build_id_link[len(root) :]: secret},
            build_id=build_id,
            debuglink="hostile.debug",
            forbidden_symbols=[secret_name],
            unavailable_symbols=[SPIN],
        )

    def build_sparse_ehframe(self):
        hostile = self.hostile()
        directory = self.fresh_dir("sparse-ehframe")
        library = self.small_library(directory, "libsparse.so")

        def patch():
            elf = ELF(library)
            eh_frame = dict(elf.section(".eh_frame"))  # the linker's header, before the patch
            elf.patch_section_header(".eh_frame", size=SPARSE_EH_FRAME_SIZE)
            end = eh_frame["offset"] + SPARSE_EH_FRAME_SIZE
            if os.path.getsize(library) < end:
                os.truncate(library, end)
            patched = ELF(library).section(".eh_frame")
            info = os.stat(library)
            if patched["size"] != SPARSE_EH_FRAME_SIZE or info.st_size < end:
                raise SystemExit("sparse-ehframe: patch didn't take")
            if info.st_blocks * 512 >= 64 * 1024:
                allocated = info.st_blocks * 512
                raise SystemExit(f"sparse-ehframe: {allocated} bytes allocated, the file system isn't sparse")
            return eh_frame, info

        eh_frame, info = self.step("patch .eh_frame size", patch)
        return entry(
            "sparse-ehframe",
            [hostile, "map", library, "1"],
            f"A shared object whose .eh_frame section header claims {SPARSE_EH_FRAME_SIZE} bytes (500 MiB), the "
            f"file extended sparsely to {info.st_size} bytes ({info.st_blocks * 512} allocated) to cover it, "
            "mapped once. Section sizes must be bounded before reading/allocating; the attacker's own "
            "hostile_spin must still be named.",
            module=library,
            executable_mappings=1,
            required_symbols=[SPIN],
            section=".eh_frame",
            declared_section_size=SPARSE_EH_FRAME_SIZE,
            real_section_size=eh_frame["size"],
            file_size=info.st_size,
        )

    def build_repeated_fde(self):
        hostile = self.hostile()
        directory = self.fresh_dir("repeated-fde")
        lines = [
            "\t.text",
            "\t.globl hostile_big_cfi",
            "\t.type hostile_big_cfi, @function",
            "hostile_big_cfi:",
            "\t.cfi_startproc",
        ]
        for _ in range(REPEATED_FDE_PAIRS):
            lines += ["\tpush %rax", "\t.cfi_adjust_cfa_offset 8", "\tpop %rax", "\t.cfi_adjust_cfa_offset -8"]
        lines += [
            "\tret",
            "\t.cfi_endproc",
            "\t.size hostile_big_cfi, .-hostile_big_cfi",
            '\t.section .note.GNU-stack,"",@progbits',
            "",
        ]
        source = self.write_source("big_cfi.S", "\n".join(lines))
        library = os.path.join(directory, "librepeated.so")
        self.run("gcc librepeated.so", ["gcc", "-shared", "-fPIC", "-Wl,--build-id", "-o", library, source])

        def patch():
            elf = ELF(library)
            eh_frame = elf.section(".eh_frame")
            header = elf.section(".eh_frame_hdr")
            function = elf.symbol("hostile_big_cfi")[1]
            _, entries = parse_eh_frame_hdr(elf.data(".eh_frame_hdr"), header["addr"])
            fdes = [fde for location, fde in entries if location == function]
            if len(fdes) != 1:
                raise SystemExit(f"repeated-fde: {len(fdes)} FDEs for hostile_big_cfi in the linker's table")
            fde = fdes[0]
            base = header["addr"]
            table = bytearray(struct.pack("<BBBB", 1, 0x1B, 0x03, 0x3B))  # pcrel|sdata4, udata4, datarel|sdata4
            table += struct.pack("<i", eh_frame["addr"] - (base + 4))  # pcrel: relative to the field itself
            table += struct.pack("<I", REPEATED_FDE_COUNT)
            table += struct.pack("<ii", function - base, fde - base) * REPEATED_FDE_COUNT
            with open(library, "r+b") as f:
                f.seek(0, os.SEEK_END)
                offset = align(f.tell(), 8)
                f.seek(offset)
                f.write(table)
            elf.patch_section_header(".eh_frame_hdr", offset=offset, size=len(table))
            return function, fde

        function, fde = self.step("append .eh_frame_hdr table", patch)
        rows = self.step("verify repeated-fde", verify_repeated_fde, library, function, fde)
        return entry(
            "repeated-fde",
            [hostile, "map", library, "1"],
            f"A shared object whose .eh_frame_hdr lists one FDE (hostile_big_cfi, {rows} CFI rows) "
            f"{REPEATED_FDE_COUNT} times (the table appended to the file, the section header moved to it; "
            "eh_frame_ptr still equals .eh_frame's address). Unwind-table compilation must deduplicate FDEs or "
            "bound its work; the attacker's own hostile_spin must still be named.",
            module=library,
            executable_mappings=1,
            required_symbols=[SPIN],
            fde_function="hostile_big_cfi",
            fde_address=fde,
            fde_rows=rows,
            table_entries=REPEATED_FDE_COUNT,
            file_size=os.path.getsize(library),
        )

    def build_perf_map(self):
        hostile = self.hostile()
        return entry(
            "perf-map",
            [hostile, "jit", str(PERF_MAP_BYTES)],
            f"An RWX anonymous page running `jmp .` on a second thread, described by a {PERF_MAP_BYTES}-byte "
            "(60 MiB) /tmp/perf-PID.map of ~4.8 million one-byte `ADDR 1 a` entries at addresses outside the "
            "page (from 0x10000000, 16 bytes apart), the LAST line naming the page `hostile_jit_code`. "
            "Perf-map parsing must be bounded in time and memory. The test deletes the map.",
            ready="ready <pid> <perf map path>",
            module=None,
            perf_map="/tmp/perf-{pid}.map",
            perf_map_bytes=PERF_MAP_BYTES,
            jit_symbol="hostile_jit_code",
            jit_symbol_line="last",
            junk_symbol="a",
        )

    def build_many_mappings(self):
        hostile = self.hostile()
        directory = self.fresh_dir("many-mappings")
        library = self.small_library(directory, "libsmall.so")
        return entry(
            "many-mappings",
            [hostile, "map", library, str(MANY_MAPPINGS)],
            f"{MANY_MAPPINGS} executable mappings of one small ELF (offset 0 each, so they never merge; "
            "vm.max_map_count is 65530). Per-mapping work and memory must be bounded; the attacker's own "
            "hostile_spin must still be named.",
            module=library,
            executable_mappings=MANY_MAPPINGS,
            required_symbols=[SPIN],
        )

    def build_fake_buildid(self):
        hostile = self.hostile()
        directory = self.fresh_dir("fake-buildid")
        libc = ELF(LIBC)
        _, libc_build_id = libc.build_id()
        code_end = max(s["vaddr"] + s["memsz"] for s in libc.segments if s["type"] == 1 and s["flags"] & 1)
        span = align(code_end + 0x10000, FAKE_SYMBOL_STEP)
        count = span // FAKE_SYMBOL_STEP
        lines = [
            "\t.text",
            "\t.globl fake_libc_base",
            "\t.type fake_libc_base, @function",
            "fake_libc_base:",
            "\tret",
            "\t.size fake_libc_base, 1",
        ]
        # Sized function symbols, in .text, covering [fake_libc_base, fake_libc_base + span): every link-time
        # address of libc's code falls in one of them.
        for i in range(count):
            name = f"FAKE_LIBC_function_{i}"
            lines += [
                f"\t.globl {name}",
                f"\t.type {name}, @function",
                f"\t.set {name}, fake_libc_base + {i * FAKE_SYMBOL_STEP:#x}",
                f"\t.size {name}, {FAKE_SYMBOL_STEP:#x}",
            ]
        lines += ['\t.section .note.GNU-stack,"",@progbits', ""]
        source = self.write_source("fake_libc.S", "\n".join(lines))
        library = os.path.join(directory, "libfake.so")
        self.run("gcc libfake.so", ["gcc", "-shared", "-fPIC", "-Wl,--build-id", "-o", library, source])

        def patch():
            offset, original = ELF(library).build_id()
            if len(original) != len(libc_build_id):
                raise SystemExit(f"fake-buildid: build id lengths differ ({len(original)} vs {len(libc_build_id)})")
            with open(library, "r+b") as f:
                f.seek(offset)
                f.write(libc_build_id)
            patched = ELF(library)
            if patched.build_id()[1] != libc_build_id:
                raise SystemExit("fake-buildid: patch didn't take")
            fakes = [s for s in patched.symbols() if s[0].startswith("FAKE_LIBC_")]
            low = min(s[1] for s in fakes)
            high = max(s[1] + s[2] for s in fakes)
            code_start = min(s["vaddr"] for s in libc.segments if s["type"] == 1 and s["flags"] & 1)
            if len(fakes) != count or low > code_start or high < code_end:
                raise SystemExit(f"fake-buildid: FAKE_LIBC_ symbols cover [{low:#x}, {high:#x}), not libc's code")
            return len(fakes), low, high

        symbols, low, high = self.step("patch build id", patch)
        return entry(
            "fake-buildid",
            [hostile, "map", library, "1"],
            f"A shared object carrying this host's libc build id ({libc_build_id.hex()}) and {symbols} "
            f"FAKE_LIBC_function_N symbols covering [{low:#x}, {high:#x}), all of libc's code addresses. Mapped "
            "once (the process maps the real libc too). No frame of any process may be named FAKE_LIBC_*: "
            "files must not be trusted by build id alone.",
            module=library,
            executable_mappings=1,
            required_symbols=[SPIN],
            forbidden_symbol_prefixes=["FAKE_LIBC_"],
            impersonated_module=os.path.realpath(LIBC),
            build_id=libc_build_id.hex(),
        )


def unmount_stale(path):
    """Detaches a mount left at `path` by a run that was killed (never stat'ed: a hung mount would block that)."""
    with open("/proc/self/mounts") as f:
        if any(line.split()[1] == path for line in f):
            subprocess.run(["umount", "-l", path], capture_output=True)


def entry(name, argv, description, ready="ready <pid>", **expect):
    base = {
        "ready": ready,
        "module": None,
        "required_symbols": [],
        "forbidden_symbols": [],
        "forbidden_symbol_prefixes": [],
        "unavailable_symbols": [],
    }
    base.update({k: v for k, v in expect.items() if v is not None or k == "module"})
    return {"name": name, "argv": argv, "description": description, "expect": base}


def check_debuglink(binary, name, debug):
    data = ELF(binary).data(".gnu_debuglink")
    stored_name = data[: data.index(b"\0")].decode()
    crc = struct.unpack_from("<I", data, len(data) - 4)[0]
    with open(debug, "rb") as f:
        expected = zlib.crc32(f.read())
    if stored_name != name or crc != expected:
        raise SystemExit(f"{binary}: .gnu_debuglink is {stored_name!r} crc {crc:#x}, wanted {name!r} {expected:#x}")


def verify_escape(static, stripped, secret, secret_name):
    unstripped_elf, stripped_elf, secret_elf = ELF(static), ELF(stripped), ELF(secret)
    _, address, size, _, _ = unstripped_elf.symbol(SPIN)
    secret_symbol = secret_elf.symbol(secret_name)
    if secret_symbol[1] != address or any(s[0] == SPIN for s in secret_elf.symbols()):
        raise SystemExit(f"escape-symlink: {secret_name} is at {secret_symbol[1]:#x}, hostile_spin at {address:#x}")
    if stripped_elf.has_section(".symtab"):
        raise SystemExit("escape-symlink: /bin/hostile still has a .symtab")
    ids = {e.path: e.build_id()[1] for e in (unstripped_elf, stripped_elf, secret_elf)}
    if len(set(ids.values())) != 1:
        raise SystemExit(f"escape-symlink: build ids differ: {ids}")

    def code_at(elf):
        text = elf.section(".text")
        return elf.read(text["offset"] + address - text["addr"], size)

    if code_at(stripped_elf) != code_at(secret_elf) or size == 0:
        raise SystemExit("escape-symlink: the code at hostile_spin differs between the binary and the secret")
    # Cross-check with binutils: readelf -s must show the renamed symbol at hostile_spin's address.
    listing = subprocess.run(["readelf", "-sW", secret], check=True, capture_output=True, text=True).stdout
    values = [int(line.split()[1], 16) for line in listing.splitlines() if line.split()[-1:] == [secret_name]]
    if values != [address]:
        raise SystemExit(f"escape-symlink: readelf -s shows {secret_name} at {values}, wanted {address:#x}")


def verify_repeated_fde(library, function, fde):
    elf = ELF(library)
    header = elf.section(".eh_frame_hdr")
    eh_frame = elf.section(".eh_frame")
    frame_pointer, entries = parse_eh_frame_hdr(elf.data(".eh_frame_hdr"), header["addr"])
    if frame_pointer != eh_frame["addr"]:
        raise SystemExit(f"repeated-fde: eh_frame_ptr {frame_pointer:#x} != .eh_frame {eh_frame['addr']:#x}")
    if len(entries) != REPEATED_FDE_COUNT or set(entries) != {(function, fde)}:
        raise SystemExit(f"repeated-fde: the table has {len(entries)} entries, {len(set(entries))} distinct")
    eh_frame_data = elf.data(".eh_frame")
    pc_begin, pc_range, rows = parse_fde(eh_frame_data, eh_frame["addr"], fde - eh_frame["addr"])
    if pc_begin != function or rows < 2 * REPEATED_FDE_PAIRS:
        raise SystemExit(f"repeated-fde: FDE starts at {pc_begin:#x} with {rows} rows")
    return rows


def build(out, names):
    builder = Builder(out)
    os.makedirs(builder.out, exist_ok=True)
    builders = {
        "well-behaved": builder.build_well_behaved,
        "fifo-debuglink": builder.build_fifo_debuglink,
        "device-debuglink": builder.build_device_debuglink,
        "escape-symlink": builder.build_escape_symlink,
        "sparse-ehframe": builder.build_sparse_ehframe,
        "repeated-fde": builder.build_repeated_fde,
        "perf-map": builder.build_perf_map,
        "many-mappings": builder.build_many_mappings,
        "fake-buildid": builder.build_fake_buildid,
        "hung-mount": builder.build_hung_mount,
    }
    src = builder.path("src")
    if os.path.lexists(src):
        shutil.rmtree(src)
    start = time.perf_counter()
    attacks = []
    for name in names:
        attack_start = time.perf_counter()
        attacks.append(builders[name]())
        print(f"built {name} in {time.perf_counter() - attack_start:.2f}s", file=sys.stderr)
    manifest = builder.path("manifest.json")
    with open(manifest + ".tmp", "w") as f:
        json.dump({"attacks": attacks}, f, indent=2)
        f.write("\n")
    os.replace(manifest + ".tmp", manifest)
    for label, seconds in builder.timings:
        print(f"  {seconds:7.3f}s  {label}", file=sys.stderr)
    print(f"wrote {manifest} ({len(attacks)} attacks) in {time.perf_counter() - start:.2f}s", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------------
# Checking: start each attack for real, look at it, kill it.


def read_ready(process, timeout):
    """The ready line's fields, reading stdout byte by byte until a newline (or the timeout)."""
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([process.stdout], [], [], remaining)[0]:
            raise TimeoutError(f"no ready line after {timeout}s (got {line!r})")
        byte = os.read(process.stdout.fileno(), 1)
        if not byte:
            raise RuntimeError(f"exited ({process.wait()}) before its ready line: {line!r} {process.stderr.read()!r}")
        line += byte
    fields = line.decode().split()
    if fields[0] != "ready" or int(fields[1]) != process.pid:
        raise RuntimeError(f"unexpected ready line {line!r}")
    return fields


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def executable_mappings(pid, path):
    count = total = 0
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            total += 1
            fields = line.split(None, 5)
            if len(fields) == 6 and "x" in fields[1] and fields[5].rstrip("\n") == path:
                count += 1
    return count, total


def check_attack(attack):
    expect = attack["expect"]
    name = attack["name"]
    notes = []
    start = time.perf_counter()
    process = subprocess.Popen(attack["argv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    perf_map = None
    probes = []
    try:
        fields = read_ready(process, 60)
        ready_seconds = time.perf_counter() - start
        pid = process.pid
        notes.append(f"ready in {ready_seconds:.2f}s")
        if "executable_mappings" in expect:
            count, total = executable_mappings(pid, expect["module"])
            if count != expect["executable_mappings"]:
                wanted = expect["executable_mappings"]
                raise AssertionError(f"{count} executable mappings of {expect['module']}, wanted {wanted}")
            notes.append(f"{count} executable mappings of the module ({total} in all)")
        if name == "perf-map":
            perf_map = fields[2]
            if perf_map != expect["perf_map"].format(pid=pid):
                raise AssertionError(f"perf map at {perf_map}")
            size = os.path.getsize(perf_map)
            if not expect["perf_map_bytes"] - 64 <= size <= expect["perf_map_bytes"]:
                raise AssertionError(f"perf map is {size} bytes")
            with open(perf_map, "rb") as f:
                f.seek(size - 64)
                last = f.read().splitlines()[-1].decode().split()
            page = int(last[0], 16)
            if last[1:] != ["1000", expect["jit_symbol"]]:
                raise AssertionError(f"last perf map line {last}")
            with open(f"/proc/{pid}/maps") as f:
                rwx = [l for l in f if l.split()[1].startswith("rwx") and int(l.split("-")[0], 16) == page]
            if not rwx:
                raise AssertionError(f"no rwx mapping at {page:#x}")
            notes.append(f"perf map {size} bytes, rwx page {rwx[0].split()[0]}")
        if "mountpoint" in expect:
            # Not os.path.ismount: stat'ing the mount would wait forever too.
            with open("/proc/self/mounts") as f:
                mounted = any(line.split()[1] == expect["mountpoint"] for line in f)
            if fields[2] != expect["mountpoint"] or not mounted:
                raise AssertionError(f"mount {fields[2]} not in place")
            # The binary answers nothing now: a child that opens it is still blocked after a second.
            probe = subprocess.Popen(["cat", expect["module"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            probes.append(probe)
            time.sleep(1)
            if probe.poll() is not None:
                raise AssertionError(f"opening {expect['module']} returned ({probe.returncode}): the mount answers")
            notes.append("the mount stopped answering (an open of the binary is still blocked after 1 s)")
        if "process_root" in expect:
            root = os.readlink(f"/proc/{pid}/root")
            if root != expect["process_root"]:
                raise AssertionError(f"/proc/{pid}/root is {root}")
            for inside, target in expect["escape_links"].items():
                link = expect["process_root"] + inside
                value = os.readlink(link)
                if value != target or not os.path.isabs(value) or not os.path.isfile(value):
                    raise AssertionError(f"{link} -> {value}")
                if os.path.lexists(expect["process_root"] + value):
                    raise AssertionError(f"{value} exists inside the root too")
            notes.append(f"root {root}, {len(expect['escape_links'])} absolute links to the host secret")
        if "hazards" in expect:
            for path, kind in expect["hazards"].items():
                mode = os.lstat(path).st_mode
                if kind == "fifo" and not stat.S_ISFIFO(mode):
                    raise AssertionError(f"{path} isn't a FIFO")
                if kind.startswith("symlink to ") and os.readlink(path) != kind[len("symlink to ") :]:
                    raise AssertionError(f"{path} -> {os.readlink(path)}")
            notes.append(f"hazards in place: {', '.join(expect['hazards'].values())}")
        if expect.get("module") and "process_root" not in expect and "executable_mappings" not in expect:
            exe = os.readlink(f"/proc/{pid}/exe")
            if exe != expect["module"]:
                raise AssertionError(f"/proc/{pid}/exe is {exe}")
        before = cpu_ticks(pid)
        time.sleep(0.3)
        burned = cpu_ticks(pid) - before
        if burned < 10:
            raise AssertionError(f"only {burned} ticks of CPU in 0.3s")
        notes.append(f"burning CPU ({burned} ticks in 0.3s)")
    finally:
        process.kill()
        process.wait()
        for probe in probes:  # released when the mount goes, with the process
            probe.wait(10)
        process.stdout.close()
        process.stderr.close()
        for path in (perf_map, f"/tmp/perf-{process.pid}.map"):
            if path and os.path.exists(path):
                os.unlink(path)
    return notes


def check(out, names):
    with open(os.path.join(out, "manifest.json")) as f:
        attacks = [a for a in json.load(f)["attacks"] if a["name"] in names]
    failed = False
    for attack in attacks:
        try:
            notes = check_attack(attack)
            print(f"ok   {attack['name']}: {'; '.join(notes)}")
        except Exception as error:  # report every attack, then fail
            failed = True
            print(f"FAIL {attack['name']}: {error}")
    if failed:
        raise SystemExit(1)


def main():
    parser = argparse.ArgumentParser(description="Build (or check) the hostile-input fixtures of hearth-agent.")
    parser.add_argument("command", choices=["build", "check"])
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--only", help="comma-separated attack names: " + ",".join(NAMES))
    arguments = parser.parse_args()
    names = NAMES
    if arguments.only:
        wanted = [n.strip() for n in arguments.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in NAMES]
        if unknown:
            parser.error(f"unknown attacks: {', '.join(unknown)}")
        names = [n for n in NAMES if n in wanted]
    if arguments.command == "build":
        build(arguments.out, names)
    else:
        check(os.path.realpath(arguments.out), names)


if __name__ == "__main__":
    main()
