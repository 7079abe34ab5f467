// native_unwind.h: the .eh_frame unwinder of the sampler (included once, by sampler.bpf.c).
//
// User space compiles each ELF file's call frame information into 8-byte rows (HearthUnwind's encoding) and
// appends them to unwind_rows; unwind_modules says where a module's rows are, unwind_processes lists a
// process's executable mappings. A walk of up to HEARTH_UNWIND_MAX_FRAMES frames runs in bpf_loop: per frame
// it finds the mapping (binary search), the module, the row (binary search), computes the CFA and reads the
// return address. Where no row exists it takes one validated frame-pointer step. It never drops a sample: a
// stack that fails ends in an error marker frame, one that is too deep in a truncation marker.
// Preallocated maps only: map-in-map outer updates wait for an RCU grace period on 6.18.
// The layout, limits and memory budget are documented in Sources/HearthSampler/Docs.docc/NativeUnwinding.md.

// Rows of every loaded module, 8 bytes each (UnwindRow.encoded(base:)); user space sets max_entries (the
// budget) before loading and allocates ranges of it.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} unwind_rows SEC(".maps");

// module id (assigned by user space, shared by every process mapping the file) -> its range of rows.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct hearth_unwind_module);
} unwind_modules SEC(".maps");

// pid (thread group id) -> its executable mappings, sorted. A process without an entry keeps frame pointers.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct hearth_unwind_process);
} unwind_processes SEC(".maps");

// pid -> bpf_ktime_get_ns() of the sample that asked for the process's tables: it has none yet, or a walk met a
// PC outside its mappings (new code: dlopen, exec) or a module that was evicted. The agent deletes a request once
// it has served it and keeps one it cannot serve (yet), so the program asks once rather than at every sample.
// LRU: when full, the oldest request is forgotten, never a new one refused.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} unwind_requests SEC(".maps");

// Wakes the agent's table loader when a request is new, so it sleeps rather than polls while nothing is asked.
// Only a wake-up: the requests themselves are in unwind_requests (a full ring loses a wake-up, not a request).
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} unwind_wakeups SEC(".maps");

static __always_inline void request_tables(__u32 pid) {
    if (bpf_map_lookup_elem(&unwind_requests, &pid)) return;  // asked already
    __u64 now = bpf_ktime_get_ns();
    if (bpf_map_update_elem(&unwind_requests, &pid, &now, BPF_NOEXIST) == 0)
        bpf_ringbuf_output(&unwind_wakeups, &pid, sizeof(pid), 0);
}

// Per-CPU scratch for the stack being walked: too large for the 512-byte BPF stack.
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct hearth_unwound_stack);
} unwind_scratch SEC(".maps");

// Unwound stacks by the low 32 bits of their hash, one map per set like stacks_N; drained and emptied by
// user space.
#define HEARTH_UNWOUND_MAP(name)                            \
    struct {                                                \
        __uint(type, BPF_MAP_TYPE_HASH);                    \
        __uint(max_entries, 1);                             \
        __type(key, __u32);                                 \
        __type(value, struct hearth_unwound_stack);         \
    } name SEC(".maps")

HEARTH_UNWOUND_MAP(unwound_0);
HEARTH_UNWOUND_MAP(unwound_1);

// Row kinds and RBP rules of the 8-byte row (HearthUnwind's UnwindRule.Kind).
#define ROW_NO_INFO 0
#define ROW_CFA_RSP 1
#define ROW_CFA_RBP 2
#define ROW_PLT 3
#define ROW_SIGNAL 4
#define ROW_STOP 5
#define ROW_UNSUPPORTED 6
#define RBP_UNCHANGED 0
#define RBP_SAVED 1
#define RBP_UNDEFINED 2

// Above this a "user" address is kernel space or non-canonical.
#define USER_ADDRESS_LIMIT 0x0000800000000000ULL
// A frame pointer further than this above RSP is not believed (8 MiB: the default stack limit).
#define MAX_FRAME_DISTANCE (8ULL << 20)
// In a signal trampoline RSP points at the ucontext; uc_mcontext (struct sigcontext) is 40 bytes in.
#define UCONTEXT_MCONTEXT 40
#define SIGCONTEXT_RBP 80
#define SIGCONTEXT_RSP 120
#define SIGCONTEXT_RIP 128

#define WALK_RUNNING 0
#define WALK_DONE 1
#define WALK_FAILED 2

struct unwind_walk {
    __u64 pc;
    __u64 sp;
    __u64 bp;
    __u64 hash;
    __u32 pid;
    __u32 status;           // WALK_*
    __u32 error;            // enum hearth_unwind_error when status is WALK_FAILED
    __u32 pc_is_return;     // 1: pc is a return address, look up pc - 1 (the call instruction)
    __u32 tables_stale;     // 1: a PC was outside every mapping, or its module is gone: ask for a reload
    __u32 padding;
};
// No per-walk counters in this struct: a field that grows each iteration keeps the verifier from seeing that
// the loop's states converge.

// Per-CPU state of the walk in progress (see unwind_user_stack).
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct unwind_walk);
} unwind_walk_state SEC(".maps");

static __always_inline void walk_fail(struct unwind_walk *walk, __u32 error) {
    walk->status = WALK_FAILED;
    walk->error = error;
}

struct mapping_search {
    struct hearth_unwind_process *process;
    __u64 pc;
    __u32 low;   // mappings below low start at or below pc
    __u32 high;  // mappings from high on start above pc
};

// One bisection step over a process's mappings, run by bpf_loop (see row_search_step).
static long mapping_search_step(__u32 index, void *context) {
    struct mapping_search *search = context;
    if (search->low >= search->high) return 1;
    __u32 middle = search->low + (search->high - search->low) / 2;
    if (search->process->mappings[middle & (HEARTH_UNWIND_MAX_MAPPINGS - 1)].start <= search->pc)
        search->low = middle + 1;
    else
        search->high = middle;
    return 0;
}

// The mapping holding `pc`: the last mapping starting at or below it, if pc is below its end.
static __always_inline struct hearth_unwind_mapping *find_mapping(struct hearth_unwind_process *process,
                                                                   __u64 pc) {
    __u32 count = process->count;
    if (count > HEARTH_UNWIND_MAX_MAPPINGS) count = HEARTH_UNWIND_MAX_MAPPINGS;
    struct mapping_search search = {.process = process, .pc = pc, .low = 0, .high = count};
    bpf_loop(HEARTH_UNWIND_MAPPING_SEARCH_STEPS, mapping_search_step, &search, 0);
    if (search.low == 0) return 0;
    struct hearth_unwind_mapping *mapping = &process->mappings[(search.low - 1) & (HEARTH_UNWIND_MAX_MAPPINGS - 1)];
    return pc < mapping->end ? mapping : 0;
}

struct row_search {
    __u32 first;    // the module's first row in unwind_rows
    __u32 low;      // rows below low are at or below address
    __u32 high;     // rows from high on are above address
    __u32 address;  // relative to the module's base
};

// One bisection step, run by bpf_loop: a plain loop makes the verifier walk every path of the search.
static long row_search_step(__u32 index, void *context) {
    struct row_search *search = context;
    if (search->low >= search->high) return 1;
    __u32 middle = search->low + (search->high - search->low) / 2;
    __u32 row_index = search->first + middle;
    __u64 *row = bpf_map_lookup_elem(&unwind_rows, &row_index);
    if (!row) {
        search->low = 0;  // out of the array: treat as no row
        return 1;
    }
    if ((__u32)*row <= search->address) search->low = middle + 1;
    else search->high = middle;
    return 0;
}

// The row in effect at `address` (relative to the module's base), or 0 when none covers it.
static __always_inline __u64 find_row(struct hearth_unwind_module *module, __u32 address) {
    __u32 count = module->row_count;
    if (count > HEARTH_UNWIND_MAX_MODULE_ROWS) return 0;
    struct row_search search = {.first = module->first_row, .low = 0, .high = count, .address = address};
    bpf_loop(HEARTH_UNWIND_ROW_SEARCH_STEPS, row_search_step, &search, 0);
    if (search.low == 0) return 0;
    __u32 index = search.first + search.low - 1;
    __u64 *row = bpf_map_lookup_elem(&unwind_rows, &index);
    return row ? *row : 0;
}

// The row for the current PC; 0 (kind noInfo) when no mapping, module or row covers it.
static __always_inline __u64 row_for_pc(struct unwind_walk *walk) {
    struct hearth_unwind_process *process = bpf_map_lookup_elem(&unwind_processes, &walk->pid);
    if (!process) return 0;
    __u64 lookup = walk->pc - (walk->pc_is_return ? 1 : 0);
    struct hearth_unwind_mapping *mapping = find_mapping(process, lookup);
    if (!mapping) {
        walk->tables_stale = 1;
        return 0;
    }
    if (mapping->module_id == 0) return 0;
    __u32 module_id = mapping->module_id;
    __u64 address = lookup - mapping->bias;
    struct hearth_unwind_module *module = bpf_map_lookup_elem(&unwind_modules, &module_id);
    if (!module) {
        walk->tables_stale = 1;
        return 0;
    }
    if (address < module->base || address - module->base > 0xffffffffULL) return 0;
    return find_row(module, (__u32)(address - module->base));
}

// One frame-pointer step, for code without a table: RBP must point into the stack above RSP, where the
// caller's RBP and the return address were pushed. Consecutive steps thus see each RBP above the previous one.
static __always_inline void frame_pointer_step(struct unwind_walk *walk) {
    __u64 bp = walk->bp;
    if (bp < walk->sp || bp - walk->sp > MAX_FRAME_DISTANCE || (bp & 7) != 0) {
        walk_fail(walk, HEARTH_UNWIND_ERROR_BAD_FRAME_POINTER);
        return;
    }
    __u64 saved[2];  // [0] the caller's RBP, [1] the return address
    if (bpf_probe_read_user(saved, sizeof(saved), (void *)bp) != 0) {
        walk_fail(walk, HEARTH_UNWIND_ERROR_READ_RETURN_ADDRESS);
        return;
    }
    walk->bp = saved[0];
    walk->sp = bp + 16;
    walk->pc = saved[1];
    walk->pc_is_return = 1;
    count(HEARTH_COUNTER_UNWIND_FP_STEPS);
}

// The caller's registers from the ucontext a signal trampoline (__restore_rt) finds on the stack.
static __always_inline void signal_frame_step(struct unwind_walk *walk) {
    __u64 mcontext = walk->sp + UCONTEXT_MCONTEXT;
    __u64 pc = 0, sp = 0, bp = 0;
    if (bpf_probe_read_user(&bp, sizeof(bp), (void *)(mcontext + SIGCONTEXT_RBP)) != 0 ||
        bpf_probe_read_user(&sp, sizeof(sp), (void *)(mcontext + SIGCONTEXT_RSP)) != 0 ||
        bpf_probe_read_user(&pc, sizeof(pc), (void *)(mcontext + SIGCONTEXT_RIP)) != 0) {
        walk_fail(walk, HEARTH_UNWIND_ERROR_SIGNAL_FRAME);
        return;
    }
    walk->pc = pc;
    walk->sp = sp;
    walk->bp = bp;
    walk->pc_is_return = 0;  // the interrupted instruction itself, not a return address
}

// Computes the caller's PC, RSP and RBP from one row.
static __always_inline void table_step(struct unwind_walk *walk, __u64 row) {
    __u32 kind = (row >> 32) & 0xf;
    __u32 rbp_rule = (row >> 36) & 3;
    __s64 rbp_offset = (__s64)(__s8)(row >> 40) * 8;
    __s64 cfa_offset = (__s16)(row >> 48);
    __u64 cfa;
    if (kind == ROW_CFA_RSP) {
        cfa = walk->sp + cfa_offset;
    } else if (kind == ROW_CFA_RBP) {
        cfa = walk->bp + cfa_offset;
    } else {  // ROW_PLT: the lazy-binding push makes the frame 8 bytes deeper from the threshold on
        cfa = walk->sp + 8 + ((walk->pc & 15) >= (__u64)cfa_offset ? 8 : 0);
    }
    if (cfa <= walk->sp) {
        walk_fail(walk, HEARTH_UNWIND_ERROR_STACK_NOT_GROWING);
        return;
    }
    __u64 return_address = 0;
    if (bpf_probe_read_user(&return_address, sizeof(return_address), (void *)(cfa - 8)) != 0) {
        walk_fail(walk, HEARTH_UNWIND_ERROR_READ_RETURN_ADDRESS);
        return;
    }
    if (kind != ROW_PLT && rbp_rule == RBP_SAVED) {
        __u64 bp = 0;
        if (bpf_probe_read_user(&bp, sizeof(bp), (void *)(cfa + rbp_offset)) != 0) {
            walk_fail(walk, HEARTH_UNWIND_ERROR_READ_RBP);
            return;
        }
        walk->bp = bp;
    } else if (kind != ROW_PLT && rbp_rule == RBP_UNDEFINED) {
        walk->bp = 0;
    }
    walk->sp = cfa;
    walk->pc = return_address;
    walk->pc_is_return = 1;
}

// One iteration of bpf_loop: records the current frame, then steps to its caller.
static long unwind_frame(__u32 index, void *context) {
    __u32 zero = 0;
    struct unwind_walk *walk = bpf_map_lookup_elem(&unwind_walk_state, &zero);
    if (!walk) return 1;
    struct hearth_unwound_stack *stack = bpf_map_lookup_elem(&unwind_scratch, &zero);
    if (!stack) return 1;
    __u32 length = stack->length;
    if (length >= HEARTH_UNWIND_MAX_FRAMES) return 1;
    stack->frames[length] = walk->pc;
    stack->length = length + 1;
    walk->hash = (walk->hash ^ walk->pc) * 0x100000001b3ULL;  // FNV-1a over 64-bit words

    __u64 row = row_for_pc(walk);
    __u32 kind = (row >> 32) & 0xf;
    if (kind == ROW_STOP) {
        walk->status = WALK_DONE;
        return 1;
    }
    if (kind == ROW_CFA_RSP || kind == ROW_CFA_RBP || kind == ROW_PLT) table_step(walk, row);
    else if (kind == ROW_SIGNAL) signal_frame_step(walk);
    else frame_pointer_step(walk);  // no info, unsupported, or no table at all
    if (walk->status != WALK_RUNNING) return 1;

    if (walk->pc == 0) {  // the outermost frame returned to nowhere: a complete stack
        walk->status = WALK_DONE;
        return 1;
    }
    if (walk->pc >= USER_ADDRESS_LIMIT) {
        walk_fail(walk, HEARTH_UNWIND_ERROR_BAD_PC);
        return 1;
    }
    return 0;
}

// Unwinds the user stack of the current task into the per-CPU scratch stack and returns it (NULL when the scratch
// map is unavailable). Needs the process to have an entry in unwind_processes. Done once per sample, before the map
// set is chosen, so the verifier walks the unwinder once rather than once per set.
static __always_inline struct hearth_unwound_stack *unwind_user_stack(struct bpf_perf_event_data *ctx, __u32 pid) {
    __u32 zero = 0;
    struct hearth_unwound_stack *stack = bpf_map_lookup_elem(&unwind_scratch, &zero);
    if (!stack) return 0;
    stack->length = 0;

    // The walk's state lives in a map, not on the stack (and the callback looks it up): the verifier tracks stack
    // slots precisely, so each iteration of the loop looked new to it; map memory reads as unknown, and the loop's
    // states converge at once. The program's load, CPU the agent pays at every start, took seconds before.
    struct unwind_walk *walk = bpf_map_lookup_elem(&unwind_walk_state, &zero);
    if (!walk) return 0;
    __builtin_memset(walk, 0, sizeof(*walk));
    walk->pid = pid;
    walk->hash = 0xcbf29ce484222325ULL;
    if ((ctx->regs.cs & 3) == 3) {  // the sample interrupted user mode
        walk->pc = ctx->regs.rip;
        walk->sp = ctx->regs.rsp;
        walk->bp = ctx->regs.rbp;
    } else {  // in the kernel: the user registers saved at the top of the task's kernel stack
        struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
        if (regs) {
            walk->pc = regs->rip;
            walk->sp = regs->rsp;
            walk->bp = regs->rbp;
        }
    }
    if (walk->pc == 0 || walk->pc >= USER_ADDRESS_LIMIT) walk_fail(walk, HEARTH_UNWIND_ERROR_NO_REGISTERS);
    else bpf_loop(HEARTH_UNWIND_MAX_FRAMES, unwind_frame, 0, 0);  // state in unwind_walk_state

    count(HEARTH_COUNTER_UNWOUND);
    // A failed walk may mean tables that no longer fit the process (an exec, code remapped): the agent compares
    // its mappings again (at most once a second) and reloads them when they changed.
    if (walk->tables_stale || walk->status == WALK_FAILED) request_tables(pid);
    __u32 length = stack->length;
    if (length > HEARTH_UNWIND_MAX_FRAMES) length = HEARTH_UNWIND_MAX_FRAMES;
    if (walk->status != WALK_DONE) {
        __u64 marker = HEARTH_FRAME_TRUNCATED;
        if (walk->status == WALK_FAILED) {
            marker = HEARTH_FRAME_ERROR_BASE + walk->error;
            count(HEARTH_COUNTER_UNWIND_FAILED);
        } else {
            count(HEARTH_COUNTER_UNWIND_TRUNCATED);
        }
        stack->frames[length] = marker;
        length += 1;
        walk->hash = (walk->hash ^ marker) * 0x100000001b3ULL;
    }
    stack->length = length;
    stack->hash = walk->hash;
    return stack;
}

// Stores an unwound stack in `unwound` (one of unwound_N) and returns its id (>= 0), or -1 when it could not be
// stored (counted).
static __always_inline long store_unwound_stack(void *unwound, struct hearth_unwound_stack *stack) {
    if (!stack) return -1;

    __u32 id = (__u32)stack->hash & 0x7fffffff;  // non-negative, like bpf_get_stackid's ids
    if (bpf_map_update_elem(unwound, &id, stack, BPF_NOEXIST) != 0) {
        struct hearth_unwound_stack *existing = bpf_map_lookup_elem(unwound, &id);
        if (!existing || existing->hash != stack->hash) {  // the map is full, or another stack has this id
            count(HEARTH_COUNTER_UNWOUND_STACK_LOST);
            return -1;
        }
    }
    return id;
}
