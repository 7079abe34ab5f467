#ifndef CMALLOC_SHIM_H
#define CMALLOC_SHIM_H
// glibc's malloc tuning (mallopt), which the Glibc Swift module does not include.
#include <malloc.h>

// One malloc arena for the whole process (M_ARENA_MAX is a macro with a negative value).
static inline int CMalloc_limitArenas(int arenas) {
    return mallopt(M_ARENA_MAX, arenas);
}
#endif
