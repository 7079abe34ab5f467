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
#define HEARTH_COMM_LEN 16

// The probability a target cgroup's sample is kept is probability / HEARTH_PROBABILITY_ONE.
#define HEARTH_PROBABILITY_ONE 0xffffffffu

/// One aggregation bucket: a process, its cgroup, and the pair of stacks it was sampled in.
struct hearth_sample_key {
    __u32 pid;  // thread group id (the process)
    __u32 tid;  // kernel task id, kept so per-thread views stay possible
    __u64 cgroup_id;
    __s32 user_stack_id;    // < 0: no user stack (kernel thread) or an error counted below
    __s32 kernel_stack_id;  // < 0: the sample was taken in user mode, or an error counted below
    char comm[HEARTH_COMM_LEN];
};

/// Sampler settings, written by user space into slot 0 of the `config` array map.
struct hearth_config {
    __u32 active_set;     // which of the two count/stack map pairs the program writes to (0 or 1)
    __u32 filter_pid;     // 0: every process; otherwise only this thread group id
    __u32 filter_cgroups; // 0: every cgroup; 1: only cgroups present in `target_cgroups`
    __u32 padding;
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
    HEARTH_COUNTER_COUNT
};

#endif
