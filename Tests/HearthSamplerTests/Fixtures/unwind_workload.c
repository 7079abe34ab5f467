// Workloads with known call chains for the .eh_frame unwinder tests. Built by the tests with
// `gcc -O2 -g -fomit-frame-pointer` (and once with -fno-omit-frame-pointer); every function is noinline and does
// work after its call, so no call becomes a tail call and every frame stays on the stack.
//   unwind_workload chain        main -> level1 -> level2 -> level3 -> hot_leaf, forever
//   unwind_workload recurse N    main -> recurse x N -> recursion_leaf, forever
//   unwind_workload qsort        main -> sorter -> qsort (libc) -> ... -> compare_keys, forever
//   unwind_workload syscalls     main -> syscall_loop -> write (libc) -> the kernel, forever
//   unwind_workload signal       main -> interrupted_work, interrupted by SIGPROF, whose handler spins in
//                                signal_hot_loop (so samples land in the handler, above __restore_rt)
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

volatile unsigned long sink;

#define NOINLINE __attribute__((noinline, noclone))

NOINLINE void hot_leaf(void) {
    for (unsigned long i = 0; i < 20000000; i++) sink += i;
}

NOINLINE void level3(void) {
    hot_leaf();
    sink ^= 3;
}

NOINLINE void level2(void) {
    level3();
    sink ^= 2;
}

NOINLINE void level1(void) {
    level2();
    sink ^= 1;
}

NOINLINE void recursion_leaf(void) {
    for (unsigned long i = 0; i < 20000000; i++) sink += i;
}

NOINLINE void recurse(int depth) {
    if (depth <= 1) recursion_leaf();
    else recurse(depth - 1);
    sink += depth;
}

NOINLINE int compare_keys(const void *a, const void *b) {
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    for (int i = 0; i < 200; i++) sink += i;  // make the callback, not the sort, the hot spot
    return x < y ? -1 : x > y;
}

NOINLINE void sorter(void) {
    enum { count = 4096 };
    static unsigned long keys[count];
    for (int i = 0; i < count; i++) keys[i] = (unsigned long)i * 2654435761u % 100003;
    qsort(keys, count, sizeof(keys[0]), compare_keys);
    sink ^= keys[0];
}

NOINLINE void syscall_loop(void) {
    int fd = open("/dev/null", O_WRONLY);
    char byte = 0;
    for (;;) {
        if (write(fd, &byte, 1) < 0) break;
    }
    close(fd);
}

NOINLINE void signal_hot_loop(void) {
    for (unsigned long i = 0; i < 20000000; i++) sink += i;
}

NOINLINE void on_sigprof(int signal) {
    signal_hot_loop();
    sink ^= (unsigned long)signal;
}

NOINLINE void interrupted_work(void) {
    for (;;) sink++;
}

NOINLINE void run_signal_handlers(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_sigprof;
    sigaction(SIGPROF, &action, NULL);
    // Every 10 ms of CPU time: the handler runs longer than that, so the next signal waits for its return.
    struct itimerval timer = {.it_interval = {0, 10000}, .it_value = {0, 10000}};
    setitimer(ITIMER_PROF, &timer, NULL);
    interrupted_work();
    sink--;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "chain";
    if (strcmp(mode, "recurse") == 0) {
        int depth = argc > 2 ? atoi(argv[2]) : 100;
        for (;;) recurse(depth);
    } else if (strcmp(mode, "qsort") == 0) {
        for (;;) sorter();
    } else if (strcmp(mode, "syscalls") == 0) {
        syscall_loop();
    } else if (strcmp(mode, "signal") == 0) {
        run_signal_handlers();
    } else {
        for (;;) level1();
    }
    return 0;
}
