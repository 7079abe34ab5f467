// Workloads with known call chains for the .eh_frame unwinder tests. Built by the tests with
// `gcc -O2 -g -fomit-frame-pointer` (and once with -fno-omit-frame-pointer); every function is noinline and does
// work after its call, so no call becomes a tail call and every frame stays on the stack.
//   unwind_workload chain        main -> level1 -> level2 -> level3 -> hot_leaf, forever
//   unwind_workload recurse N    main -> recurse x N -> recursion_leaf, forever
//   unwind_workload qsort        main -> sorter -> qsort (libc) -> ... -> compare_keys, forever
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "chain";
    if (strcmp(mode, "recurse") == 0) {
        int depth = argc > 2 ? atoi(argv[2]) : 100;
        for (;;) recurse(depth);
    } else if (strcmp(mode, "qsort") == 0) {
        for (;;) sorter();
    } else {
        for (;;) level1();
    }
    return 0;
}
