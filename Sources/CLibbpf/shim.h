// Only what Swift cannot import directly: libbpf's option macros, the perf_event_open syscall and
// libbpf's variadic print callback.
#ifndef CLIBBPF_SHIM_H
#define CLIBBPF_SHIM_H

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hearth_sampler_types.h"

_Static_assert(sizeof(struct hearth_sample_key) == 48, "hearth_sample_key layout changed");
_Static_assert(sizeof(struct hearth_unwind_mapping) == 32, "hearth_unwind_mapping layout changed");
_Static_assert(sizeof(struct hearth_unwind_module) == 16, "hearth_unwind_module layout changed");
_Static_assert(sizeof(struct hearth_config) == 28, "hearth_config layout changed");
_Static_assert(sizeof(struct hearth_target_cgroup) == 8, "hearth_target_cgroup layout changed");

/// An eventfd to wake a thread waiting in a ring buffer's epoll set (non-blocking, close-on-exec); -1 on failure.
static inline int CLibbpf_wakeup_event(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

/// Adds `fd` to the epoll set `epoll_fd` as readable input, reported as ring 0 (epoll_event is packed, which
/// Swift does not import). Returns 0 or -1 with errno.
static inline int CLibbpf_epoll_add_readable(int epoll_fd, int fd) {
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = 0};
    return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
}

static inline struct bpf_object *CLibbpf_open_mem(const void *bytes, size_t size, const char *name) {
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name);
    return bpf_object__open_mem(bytes, size, &opts);
}

/// Opens a cpu-clock software event in frequency mode on one CPU, for every process.
/// Returns the file descriptor or -errno.
static inline int CLibbpf_open_cpu_clock(int cpu, unsigned long long frequency) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.freq = 1;
    attr.sample_freq = frequency;
    int fd = (int)syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/// 1 when the kernel has the bpf() system call: an invalid command answers EINVAL or EPERM, not ENOSYS.
static inline int CLibbpf_has_bpf_syscall(void) {
    long result = syscall(__NR_bpf, -1, NULL, 0);
    return !(result == -1 && errno == ENOSYS);
}

/// Batch lookup-and-delete with default options. Returns 0 or -errno; `*count` is updated in place.
static inline int CLibbpf_lookup_and_delete_batch(int fd, void *in_batch, void *out_batch, void *keys,
                                                  void *values, __u32 *count) {
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_and_delete_batch(fd, in_batch, out_batch, keys, values, count, &opts);
    return err < 0 ? -errno : 0;
}

/// Receives every libbpf message as one formatted line; defined in Swift (HearthSampler, with @_cdecl).
extern void HearthSampler_libbpf_line(int level, const char *line);

static inline int CLibbpf_print_trampoline(enum libbpf_print_level level, const char *format, va_list args) {
    char line[1024];
    vsnprintf(line, sizeof(line), format, args);
    HearthSampler_libbpf_line((int)level, line);
    return 0;
}
static inline void CLibbpf_route_print(void) { libbpf_set_print(CLibbpf_print_trampoline); }

#endif
