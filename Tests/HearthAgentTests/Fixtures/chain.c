// A workload whose call chains are known, for the end-to-end profiling tests.
//   chain spin      main -> middle -> hot_leaf, spinning forever
//   chain syscalls  main -> syscall_loop, writing one byte to /dev/null forever (time goes to the kernel)
// Built by the tests with frame pointers and without inlining.
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

volatile unsigned long sink;

__attribute__((noinline)) void hot_leaf(void) {
    for (;;) sink++;
}

__attribute__((noinline)) void middle(void) {
    hot_leaf();
    sink--;  // never reached; keeps the call from becoming a tail call
}

__attribute__((noinline)) void syscall_loop(void) {
    int fd = open("/dev/null", O_WRONLY);
    char byte = 0;
    for (;;) {
        if (write(fd, &byte, 1) < 0) break;
    }
    close(fd);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "syscalls") == 0) {
        syscall_loop();
    } else {
        middle();
    }
    return 0;
}
