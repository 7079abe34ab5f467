// Hearth's CPU sampler. Attached to one PERF_COUNT_SW_CPU_CLOCK event per online CPU (frequency mode),
// it aggregates in the kernel: one counter per (process, cgroup, user stack, kernel stack).
//
// Two sets of count and stack maps alternate: the program writes into the set named by
// config.active_set while user space drains and clears the other, so a drain never races the program
// and the stack map is emptied every interval.
//
// Every path that drops a sample increments a counter in `counters`: there is no silent loss.
//
// Each profiling target has a share of the new keys an interval may add (config.keys_per_target): past it, the
// target's samples are still counted, under their cgroup alone and without stacks, so one tenant flooding the maps
// with unique stacks (thousands of threads, random deep recursion) leaves room for every other.
//
// Two programs share this body: hearth_sample walks user stacks by frame pointers only; hearth_sample_unwind walks
// those of processes that have unwind tables (unwind_processes) from .eh_frame rows (native_unwind.h) and stores
// them in unwound_N. User space loads one of them.

#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>

#include "hearth_sampler_types.h"

char LICENSE[] SEC("license") = "GPL";

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct hearth_config);
} config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, HEARTH_COUNTER_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

// cgroup id -> the probability a sample from it is kept, and the slot of the target it belongs to.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, HEARTH_TARGET_CGROUPS_ENTRIES);
    __type(key, __u64);
    __type(value, struct hearth_target_cgroup);
} target_cgroups SEC(".maps");

// Target slot -> new keys its samples added to counts_N this interval; one per set, zeroed by user space with the
// set it drains.
#define HEARTH_TARGET_KEYS_MAP(name)                    \
    struct {                                            \
        __uint(type, BPF_MAP_TYPE_ARRAY);               \
        __uint(max_entries, HEARTH_MAX_TARGETS);        \
        __type(key, __u32);                             \
        __type(value, __u32);                           \
    } name SEC(".maps")

HEARTH_TARGET_KEYS_MAP(target_keys_0);
HEARTH_TARGET_KEYS_MAP(target_keys_1);

#define HEARTH_COUNTS_MAP(name)                                  \
    struct {                                                     \
        __uint(type, BPF_MAP_TYPE_HASH);                         \
        __uint(max_entries, HEARTH_COUNTS_MAP_ENTRIES);          \
        __type(key, struct hearth_sample_key);                   \
        __type(value, __u64);                                    \
    } name SEC(".maps")

#define HEARTH_STACKS_MAP(name)                                                  \
    struct {                                                                     \
        __uint(type, BPF_MAP_TYPE_STACK_TRACE);                                  \
        __uint(max_entries, HEARTH_STACK_MAP_ENTRIES);                           \
        __uint(key_size, sizeof(__u32));                                         \
        __uint(value_size, HEARTH_MAX_STACK_DEPTH * sizeof(__u64));              \
    } name SEC(".maps")

HEARTH_COUNTS_MAP(counts_0);
HEARTH_COUNTS_MAP(counts_1);
HEARTH_STACKS_MAP(stacks_0);
HEARTH_STACKS_MAP(stacks_1);

static __always_inline void count(__u32 counter) {
    __u64 *value = bpf_map_lookup_elem(&counters, &counter);
    if (value) *value += 1;  // per-CPU slot: no atomic needed
}

// Records a stack id error, telling "there is no such stack" (not an error) from a real loss.
static __always_inline void count_stack_error(long id, __u32 counter) {
    if (id >= 0 || id == -EFAULT) return;
    if (id == -EEXIST) count(HEARTH_COUNTER_STACK_COLLISION);
    else if (id == -ENOMEM) count(HEARTH_COUNTER_STACK_MAP_FULL);
    else count(counter);
}

#include "native_unwind.h"

// Adds one sample to `key`. Returns 1 when it inserted the key, 0 when the key was there, -1 when the map had no
// room (counted).
static __always_inline int add_to_counts(void *counts, struct hearth_sample_key *key) {
    __u64 *value = bpf_map_lookup_elem(counts, key);
    if (value) {
        __sync_fetch_and_add(value, 1);
        return 0;
    }
    __u64 one = 1;
    if (bpf_map_update_elem(counts, key, &one, BPF_NOEXIST) == 0) return 1;
    // Another CPU may have inserted the same key in between: add to it instead.
    value = bpf_map_lookup_elem(counts, key);
    if (!value) {
        count(HEARTH_COUNTER_COUNTS_MAP_FULL);
        return -1;
    }
    __sync_fetch_and_add(value, 1);
    return 0;
}

// Records one sample of a target past its share: one key per cgroup, no process, thread, comm or stack, so the
// target adds nothing to the stack maps and at most one key per cgroup to the counts map.
static __always_inline int record_over_share(void *counts, __u64 cgroup_id) {
    struct hearth_sample_key key = {};
    key.cgroup_id = cgroup_id;
    key.user_stack_id = HEARTH_STACK_OVER_SHARE;
    key.kernel_stack_id = HEARTH_STACK_OVER_SHARE;
    if (add_to_counts(counts, &key) < 0) return 0;
    count(HEARTH_COUNTER_OVER_SHARE);
    count(HEARTH_COUNTER_RECORDED);
    return 0;
}

// Records one sample in a map set. `unwound_stack` is the stack the .eh_frame unwinder walked (NULL: frame
// pointers, for a process without tables or a program built without the unwinder). `target_keys` (NULL: no share)
// counts the new keys of the sample's target.
static __always_inline int record(void *counts, void *stacks, void *unwound, struct bpf_perf_event_data *ctx,
                                  __u64 pid_tgid, __u64 cgroup_id, struct hearth_unwound_stack *unwound_stack,
                                  __u32 request_tables_if_user, __u32 *target_keys) {
    struct hearth_sample_key key = {};
    key.pid = pid_tgid >> 32;
    key.tid = (__u32)pid_tgid;
    key.cgroup_id = cgroup_id;
    bpf_get_current_comm(&key.comm, sizeof(key.comm));

    long user;
    if (unwound_stack) {
        user = store_unwound_stack(unwound, unwound_stack);
        key.user_stack_source = HEARTH_USER_STACK_UNWOUND;
    } else {  // no tables for this process (yet): frame pointers, as without unwinding
        user = bpf_get_stackid(ctx, stacks, BPF_F_USER_STACK | BPF_F_FAST_STACK_CMP);
        count_stack_error(user, HEARTH_COUNTER_USER_STACK_ERROR);
        // A process with a user stack and no tables: ask the agent to load them (kernel threads have none).
        if (request_tables_if_user && user >= 0) request_tables(key.pid);
    }
    long kernel = bpf_get_stackid(ctx, stacks, BPF_F_FAST_STACK_CMP);
    count_stack_error(kernel, HEARTH_COUNTER_KERNEL_STACK_ERROR);
    key.user_stack_id = (__s32)user;
    key.kernel_stack_id = (__s32)kernel;

    int added = add_to_counts(counts, &key);
    if (added < 0) return 0;
    if (added && target_keys) __sync_fetch_and_add(target_keys, 1);
    count(HEARTH_COUNTER_RECORDED);
    return 0;
}

// The new-key count of `target` in the active set, when targets have a share (NULL: no limit).
static __always_inline __u32 *share_of(struct hearth_config *cfg, __u32 set, __u32 target) {
    if (!cfg->filter_cgroups || cfg->keys_per_target == 0) return 0;
    if (set == 0) return bpf_map_lookup_elem(&target_keys_0, &target);
    return bpf_map_lookup_elem(&target_keys_1, &target);
}

// The program body. `with_unwinder` is a compile-time constant: the frame-pointer program below carries no
// unwinder code, so the verifier (whose time the agent pays at every load) never walks it there.
static __always_inline int sample(struct bpf_perf_event_data *ctx, const int with_unwinder) {
    count(HEARTH_COUNTER_SAMPLES);

    __u32 zero = 0;
    struct hearth_config *cfg = bpf_map_lookup_elem(&config, &zero);
    if (!cfg) {
        count(HEARTH_COUNTER_CONFIG_MISSING);
        return 0;
    }

    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 pid = pid_tgid >> 32;
    if (pid == 0) {
        count(HEARTH_COUNTER_IDLE);
        return 0;
    }
    if (cfg->filter_pid != 0 && cfg->filter_pid != pid) {
        count(HEARTH_COUNTER_FILTERED_PID);
        return 0;
    }

    __u64 cgroup_id = bpf_get_current_cgroup_id();
    __u32 target = 0;
    if (cfg->filter_cgroups) {
        struct hearth_target_cgroup *entry = bpf_map_lookup_elem(&target_cgroups, &cgroup_id);
        // A cgroup nested in a targeted container (a CI or Docker-in-Docker pod makes thousands) that the map had no
        // room for, or that appeared since the last scan: count it as the container it is in.
        for (__u32 i = 0; !entry && i < HEARTH_MAX_ANCESTOR_LEVELS; i++) {
            __u32 level = cfg->ancestor_level_min + i;
            if (cfg->ancestor_level_max == 0 || level > cfg->ancestor_level_max) break;
            __u64 ancestor = bpf_get_current_ancestor_cgroup_id(level);
            if (ancestor == 0 || ancestor == cgroup_id) break;  // above the sample's own level
            entry = bpf_map_lookup_elem(&target_cgroups, &ancestor);
            if (entry) {
                cgroup_id = ancestor;
                count(HEARTH_COUNTER_ANCESTOR_CGROUP);
            }
        }
        if (!entry) {
            count(HEARTH_COUNTER_FILTERED_CGROUP);
            return 0;
        }
        if (entry->probability != HEARTH_PROBABILITY_ONE && bpf_get_prandom_u32() > entry->probability) {
            count(HEARTH_COUNTER_SUBSAMPLED);
            return 0;
        }
        target = entry->target;
    }

    // Read once, so the share and the counts are of one set (user space waits for programs that read the old one).
    __u32 set = cfg->active_set;
    // Before any stack is collected: a target past its share must not fill the stack maps either.
    __u32 *target_keys = share_of(cfg, set, target);
    if (target_keys && *target_keys >= cfg->keys_per_target) {
        if (set == 0) return record_over_share(&counts_0, cgroup_id);
        return record_over_share(&counts_1, cgroup_id);
    }

    struct hearth_unwound_stack *unwound_stack = 0;
    if (with_unwinder && bpf_map_lookup_elem(&unwind_processes, &pid)) unwound_stack = unwind_user_stack(ctx, pid);
    if (set == 0)
        return record(&counts_0, &stacks_0, &unwound_0, ctx, pid_tgid, cgroup_id, unwound_stack, with_unwinder,
                      target_keys);
    return record(&counts_1, &stacks_1, &unwound_1, ctx, pid_tgid, cgroup_id, unwound_stack, with_unwinder,
                  target_keys);
}

// User stacks by frame pointers only.
SEC("perf_event")
int hearth_sample(struct bpf_perf_event_data *ctx) { return sample(ctx, 0); }

// User stacks from .eh_frame tables where a process has them, frame pointers until it does.
SEC("perf_event")
int hearth_sample_unwind(struct bpf_perf_event_data *ctx) { return sample(ctx, 1); }
