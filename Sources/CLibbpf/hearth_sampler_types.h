// Types shared by the BPF program (Sources/HearthBPF/bpf/sampler.bpf.c) and Swift.
// Swift must read map keys and values through these C structs: a Swift struct with the same fields
// may be laid out differently.
#ifndef HEARTH_SAMPLER_TYPES_H
#define HEARTH_SAMPLER_TYPES_H

#include <linux/types.h>

#define HEARTH_MAX_STACK_DEPTH 127
#define HEARTH_STACK_MAP_ENTRIES 16384
#define HEARTH_COUNTS_MAP_ENTRIES 16384
#define HEARTH_TARGET_CGROUPS_ENTRIES 4096
#define HEARTH_MAX_TARGETS 1024  // profiling targets with a share of the counts map (slots in target_keys_N)
#define HEARTH_COMM_LEN 16

// The probability a target cgroup's sample is kept is probability / HEARTH_PROBABILITY_ONE.
#define HEARTH_PROBABILITY_ONE 0xffffffffu

// Where a sample key's user_stack_id points.
#define HEARTH_USER_STACK_FRAME_POINTERS 0  // into stacks_N (bpf_get_stackid, frame pointers)
#define HEARTH_USER_STACK_UNWOUND 1         // into unwound_N (the .eh_frame unwinder)

// The stack ids of a sample whose target had used up its share of new keys (hearth_config.keys_per_target): it is
// counted under its cgroup only, with pid, tid and comm zero. Below every -errno a stack id can carry.
#define HEARTH_STACK_OVER_SHARE (-0x10000)

/// A targeted cgroup's entry in `target_cgroups`.
struct hearth_target_cgroup {
    __u32 probability;  // out of HEARTH_PROBABILITY_ONE: the chance a sample is kept
    __u32 target;       // the profiling target's slot (< HEARTH_MAX_TARGETS); its cgroups share one share
};

/// One aggregation bucket: a process, its cgroup, and the pair of stacks it was sampled in.
struct hearth_sample_key {
    __u32 pid;  // thread group id (the process)
    __u32 tid;  // kernel task id, kept so per-thread views stay possible
    __u64 cgroup_id;
    __s32 user_stack_id;    // < 0: no user stack (kernel thread) or an error counted below
    __s32 kernel_stack_id;  // < 0: the sample was taken in user mode, or an error counted below
    char comm[HEARTH_COMM_LEN];
    __u32 user_stack_source;  // HEARTH_USER_STACK_*: which map user_stack_id refers to
    __u32 padding;
};

/// Sampler settings, written by user space into slot 0 of the `config` array map.
struct hearth_config {
    __u32 active_set;     // which of the two count/stack map pairs the program writes to (0 or 1)
    __u32 filter_pid;     // 0: every process; otherwise only this thread group id
    __u32 filter_cgroups; // 0: every cgroup; 1: only cgroups present in `target_cgroups`
    __u32 unwind_native;  // 1: hearth_sample_unwind is the program loaded (for diagnosis; the program knows itself)
    // A cgroup not in `target_cgroups` is looked for among its ancestors at these levels of the cgroup2 tree (the
    // levels targeted containers' cgroups sit at), so cgroups nested in a container, however many, count as the
    // container. 0 and 0: no ancestor lookup.
    __u32 ancestor_level_min;
    __u32 ancestor_level_max;
    // New keys each target may add to the active counts map per interval (filter_cgroups only); past it, its samples
    // are counted at the grain of their cgroup, so one target cannot fill the counts and stack maps. 0: no limit.
    __u32 keys_per_target;
};

// The most ancestor levels one sample looks at (`ancestor_level_max - ancestor_level_min + 1` is capped to it).
#define HEARTH_MAX_ANCESTOR_LEVELS 8

// MARK: .eh_frame unwinding (see Sources/HearthSampler/Docs.docc/NativeUnwinding.md)

#define HEARTH_UNWIND_MAX_FRAMES 128                           // frames one sample's walk may record
#define HEARTH_UNWIND_STACK_SLOTS (HEARTH_UNWIND_MAX_FRAMES + 1) // plus one truncation or error marker
#define HEARTH_UNWIND_MAX_MAPPINGS 128                         // executable mappings per process (power of 2)
#define HEARTH_UNWIND_MAPPING_SEARCH_STEPS 8                   // log2(HEARTH_UNWIND_MAX_MAPPINGS) + 1
#define HEARTH_UNWIND_ROW_SEARCH_STEPS 25                      // a module may hold up to 2^24 rows
#define HEARTH_UNWIND_MAX_MODULE_ROWS (1u << 24)

// Pseudo-frames ending an unwound stack; in the top page of the address space, where no code can be.
#define HEARTH_FRAME_TRUNCATED 0xffffffffffffff01ULL     // the walk hit HEARTH_UNWIND_MAX_FRAMES
#define HEARTH_FRAME_ERROR_BASE 0xffffffffffffff10ULL    // | enum hearth_unwind_error: the walk failed

/// Why an unwind stopped early; added to HEARTH_FRAME_ERROR_BASE in the error marker frame.
enum hearth_unwind_error {
    HEARTH_UNWIND_ERROR_READ_RETURN_ADDRESS = 1,  // bpf_probe_read_user of the return address failed
    HEARTH_UNWIND_ERROR_READ_RBP = 2,             // the saved RBP could not be read
    HEARTH_UNWIND_ERROR_BAD_FRAME_POINTER = 3,    // no table, and RBP is not a plausible frame above RSP
    HEARTH_UNWIND_ERROR_STACK_NOT_GROWING = 4,    // the caller's stack pointer is not above the callee's
    HEARTH_UNWIND_ERROR_SIGNAL_FRAME = 5,         // the ucontext of a signal frame could not be read
    HEARTH_UNWIND_ERROR_BAD_PC = 6,               // the next PC is not a user-space address
    HEARTH_UNWIND_ERROR_NO_REGISTERS = 7,         // the user registers of a kernel-mode sample were unavailable
};

/// Rows of one module (ELF file) in unwind_rows: [first_row, first_row + row_count), sorted by address.
struct hearth_unwind_module {
    __u32 first_row;
    __u32 row_count;
    __u64 base;  // link-time address the rows' 32-bit addresses are relative to (UnwindTable.baseAddress)
};

/// One executable mapping of a process. PC - bias is the module's link-time address.
struct hearth_unwind_mapping {
    __u64 start;
    __u64 end;
    __u64 bias;
    __u32 module_id;  // key in unwind_modules; 0: no table (JIT, anonymous, a file without CFI)
    __u32 padding;
};

/// A process's executable mappings, sorted by start, non-overlapping.
struct hearth_unwind_process {
    __u32 count;
    __u32 padding;
    struct hearth_unwind_mapping mappings[HEARTH_UNWIND_MAX_MAPPINGS];
};

/// An unwound user stack, leaf first. The key in unwound_N is the low 32 bits of `hash`.
struct hearth_unwound_stack {
    __u64 hash;
    __u32 length;
    __u32 padding;
    __u64 frames[HEARTH_UNWIND_STACK_SLOTS];
};

/// Counters the program increments on every path, so no sample is lost silently.
enum hearth_counter {
    HEARTH_COUNTER_SAMPLES = 0,          // the program ran
    HEARTH_COUNTER_RECORDED,             // a sample was added to the counts map
    HEARTH_COUNTER_FILTERED_PID,         // dropped on purpose by the pid filter
    HEARTH_COUNTER_FILTERED_CGROUP,      // dropped on purpose: cgroup not targeted
    HEARTH_COUNTER_SUBSAMPLED,           // dropped on purpose: per-cgroup sampling probability
    HEARTH_COUNTER_USER_STACK_ERROR,     // bpf_get_stackid(user) failed (not "no stack")
    HEARTH_COUNTER_KERNEL_STACK_ERROR,   // bpf_get_stackid(kernel) failed (not "no stack")
    HEARTH_COUNTER_STACK_COLLISION,      // stack map bucket held another stack (-EEXIST)
    HEARTH_COUNTER_STACK_MAP_FULL,       // stack map had no room (-ENOMEM)
    HEARTH_COUNTER_COUNTS_MAP_FULL,      // counts map had no room for a new key
    HEARTH_COUNTER_CONFIG_MISSING,       // the config map could not be read
    HEARTH_COUNTER_IDLE,                 // the sampled CPU ran the idle task (pid 0)
    HEARTH_COUNTER_UNWOUND,              // a user stack was walked with unwind tables
    HEARTH_COUNTER_UNWIND_TRUNCATED,     // ... and ended in the truncation marker
    HEARTH_COUNTER_UNWIND_FAILED,        // ... and ended in an error marker
    HEARTH_COUNTER_UNWIND_FP_STEPS,      // frame-pointer steps taken where no table row existed
    HEARTH_COUNTER_UNWOUND_STACK_LOST,   // an unwound stack could not be stored (map full or hash collision)
    HEARTH_COUNTER_ANCESTOR_CGROUP,      // a sample counted under a targeted ancestor of its (nested) cgroup
    HEARTH_COUNTER_OVER_SHARE,           // a sample counted without stacks: its target had used up its keys
    HEARTH_COUNTER_COUNT
};

#endif
