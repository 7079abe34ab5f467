// The two tenants of the fair-share tests (FairShareTests.swift):
//   fair_share_workload flood N   N threads at nice 19, each spinning at its own recursion depth (1 to 32) in
//                                 flood_leaf: one new (thread, stack) key per thread for the sampler, every interval
//   fair_share_workload steady    one thread spinning in steady_middle -> steady_leaf
// Built by the tests with frame pointers and without inlining. The flood runs at nice 19 so that on a machine with
// two cores the steady tenant still gets its CPU: the tests are about map room, not the scheduler.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

volatile unsigned long sink;

__attribute__((noinline)) void flood_leaf(void) {
    for (;;) sink++;
}

__attribute__((noinline)) void flood_recurse(unsigned long depth) {
    if (depth == 0) flood_leaf();
    else flood_recurse(depth - 1);
    sink--;  // never reached; keeps the call from becoming a tail call
}

static void *flood_thread(void *argument) {
    flood_recurse((unsigned long)argument % 32 + 1);
    return NULL;
}

__attribute__((noinline)) void steady_leaf(void) {
    for (;;) sink++;
}

__attribute__((noinline)) void steady_middle(void) {
    steady_leaf();
    sink--;
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "flood") == 0) {
        setpriority(PRIO_PROCESS, 0, 19);  // threads created below inherit it
        long threads = atol(argv[2]);
        for (long index = 0; index < threads; index++) {
            pthread_t thread;
            if (pthread_create(&thread, NULL, flood_thread, (void *)index) != 0) return 1;
        }
        for (;;) pause();
    }
    steady_middle();
    return 0;
}
