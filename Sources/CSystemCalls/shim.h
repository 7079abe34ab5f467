#ifndef CSYSTEMCALLS_SHIM_H
#define CSYSTEMCALLS_SHIM_H
// System calls glibc 2.36 has no wrapper for (and Swift cannot call the variadic syscall()).
#include <errno.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

// openat2(2): returns the descriptor, or -1 with errno set (ENOSYS before Linux 5.6, or under a seccomp filter
// that does not know the call).
static inline int CSystemCalls_openat2(int directory, const char *path, uint64_t flags, uint64_t resolve) {
    struct open_how how = {.flags = flags, .mode = 0, .resolve = resolve};
    return (int)syscall(SYS_openat2, directory, path, &how, sizeof(how));
}

// O_PATH (010000000 on every Linux architecture but alpha, parisc and sparc) needs _GNU_SOURCE in glibc's headers.
static const int CSystemCalls_O_PATH = 010000000;

static const uint64_t CSystemCalls_RESOLVE_IN_ROOT = RESOLVE_IN_ROOT;
static const uint64_t CSystemCalls_RESOLVE_NO_MAGICLINKS = RESOLVE_NO_MAGICLINKS;

// Names the calling thread (prctl is variadic, and pthread_setname_np needs _GNU_SOURCE): what `top -H` and
// /proc/PID/task/TID/comm show. At most 15 bytes are kept.
static inline void CSystemCalls_name_thread(const char *name) { (void)prctl(PR_SET_NAME, name, 0, 0, 0); }
#endif
