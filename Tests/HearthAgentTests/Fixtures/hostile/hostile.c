// hostile.c: the attacking processes of the hostile-input fixtures (built and described by hostile.py).
//   hostile map FILE COUNT              mmap FILE COUNT times (PROT_READ|PROT_EXEC, MAP_PRIVATE, offset 0, so no two
//                                       mappings merge), then spin in hostile_spin
//   hostile jit BYTES [first|middle|last]
//                                       an anonymous RWX page running `jmp .` on a second thread, described by
//                                       /tmp/perf-PID.map of about BYTES bytes: millions of `ADDR 1 a` lines at
//                                       addresses outside the page and one `PAGE 1000 hostile_jit_code` line
//                                       (last by default)
//   hostile spin                        spin in hostile_spin (the binary itself is the attack)
// Each prints one line once its attack is in place, `ready PID` (`ready PID PERFMAP` for jit), then burns CPU until
// killed. Built with gcc -O1 -g; hostile_spin must stay a real, separately named function.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

volatile unsigned long hostile_sink;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// Burns CPU forever. With HOSTILE_DUTY_PERCENT=P (1-99) only P% of each 50 ms: the attack is in the files and maps,
// and a test beside a well-behaved workload must not starve the profiler of CPU on a 2-core machine.
__attribute__((noinline)) void hostile_spin(void) {
    const char *duty = getenv("HOSTILE_DUTY_PERCENT");
    int percent = duty != NULL ? atoi(duty) : 100;
    if (percent <= 0 || percent >= 100) {
        for (;;) hostile_sink++;
    }
    for (;;) {
        double until = now_ms() + 0.5 * percent;
        while (now_ms() < until) {
            for (int i = 0; i < 10000; i++) hostile_sink++;
        }
        usleep((useconds_t)(500 * (100 - percent)));
    }
}

static void ready(const char *extra) {
    // Started by hungfs, which prints the ready line itself once the mount has stopped answering.
    if (getenv("HOSTILE_NO_READY") != NULL) return;
    if (extra != NULL) {
        printf("ready %ld %s\n", (long)getpid(), extra);
    } else {
        printf("ready %ld\n", (long)getpid());
    }
    fflush(stdout);
}

static void die(const char *what) {
    fprintf(stderr, "hostile: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int map_command(const char *path, long count) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(path);
    struct stat info;
    if (fstat(fd, &info) != 0) die("fstat");
    if (info.st_size <= 0) {
        fprintf(stderr, "hostile: %s is empty\n", path);
        return 1;
    }
    size_t length = (size_t)info.st_size;
    for (long i = 0; i < count; i++) {
        void *address = mmap(NULL, length, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
        if (address == MAP_FAILED) {
            fprintf(stderr, "hostile: mmap %ld of %ld: %s\n", i + 1, count, strerror(errno));
            return 1;
        }
    }
    close(fd);  // the mappings keep the file
    ready(NULL);
    hostile_spin();
    return 0;
}

// Appends `ADDR SIZE NAME\n` (ADDR and SIZE in lowercase hex, no 0x) to out; returns the bytes written.
static size_t format_line(char *out, uint64_t address, uint64_t size, const char *name) {
    char digits[40];
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        uint64_t value = pass == 0 ? address : size;
        int count = 0;
        do {
            digits[count++] = "0123456789abcdef"[value & 0xf];
            value >>= 4;
        } while (value != 0);
        while (count > 0) out[n++] = digits[--count];
        out[n++] = ' ';
    }
    size_t length = strlen(name);
    memcpy(out + n, name, length);
    n += length;
    out[n++] = '\n';
    return n;
}

static void write_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t written = write(fd, data, length);
        if (written < 0) {
            if (errno == EINTR) continue;
            die("write perf map");
        }
        data += written;
        length -= (size_t)written;
    }
}

static int jit_command(long long bytes, const char *position) {
    long page_size = sysconf(_SC_PAGESIZE);
    unsigned char *page = mmap(NULL, (size_t)page_size, PROT_READ | PROT_WRITE | PROT_EXEC,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) die("mmap rwx page");
    static const unsigned char loop[] = {0xeb, 0xfe};  // jmp . (spins forever)
    memcpy(page, loop, sizeof loop);
    uint64_t page_start = (uint64_t)(uintptr_t)page;
    uint64_t page_end = page_start + (uint64_t)page_size;

    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%ld.map", (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die(path);

    char real[128];
    size_t real_length = format_line(real, page_start, 0x1000, "hostile_jit_code");
    int where = 2;  // last
    if (strcmp(position, "first") == 0) where = 0;
    else if (strcmp(position, "middle") == 0) where = 1;
    else if (strcmp(position, "last") != 0) {
        fprintf(stderr, "hostile: jit position must be first, middle or last\n");
        return 2;
    }

    enum { chunk = 1 << 20 };
    char *buffer = malloc(chunk + 256);
    if (buffer == NULL) die("malloc");
    size_t used = 0;
    uint64_t total = 0;
    uint64_t budget = bytes > (long long)real_length ? (uint64_t)bytes - real_length : 0;
    int real_written = 0;
    if (where == 0) {
        memcpy(buffer, real, real_length);
        used = real_length;
        real_written = 1;
    }
    // Junk lines: one byte each, 16 bytes apart, from 0x10000000, skipping the real page.
    uint64_t address = 0x10000000;
    for (;;) {
        if (address >= page_start && address < page_end) {
            address = page_end;
            continue;
        }
        if (where == 1 && !real_written && total >= budget / 2) {
            memcpy(buffer + used, real, real_length);
            used += real_length;
            real_written = 1;
        }
        char line[64];
        size_t length = format_line(line, address, 1, "a");
        if (total + length > budget) break;
        memcpy(buffer + used, line, length);
        used += length;
        total += length;
        address += 16;
        if (used >= chunk) {
            write_all(fd, buffer, used);
            used = 0;
        }
    }
    if (!real_written) {
        memcpy(buffer + used, real, real_length);
        used += real_length;
    }
    write_all(fd, buffer, used);
    free(buffer);
    if (close(fd) != 0) die("close perf map");

    pthread_t thread;
    int error = pthread_create(&thread, NULL, (void *(*)(void *))(void *)page, NULL);
    if (error != 0) {
        errno = error;
        die("pthread_create");
    }
    ready(path);
    pthread_join(thread, NULL);  // never returns: the thread spins in the page
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "spin") == 0) {
        ready(NULL);
        hostile_spin();
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "map") == 0) {
        char *end;
        long count = strtol(argv[3], &end, 10);
        if (*end != '\0' || count < 1) {
            fprintf(stderr, "hostile: bad COUNT %s\n", argv[3]);
            return 2;
        }
        return map_command(argv[2], count);
    }
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "jit") == 0) {
        char *end;
        long long bytes = strtoll(argv[2], &end, 10);
        if (*end != '\0' || bytes < 0) {
            fprintf(stderr, "hostile: bad BYTES %s\n", argv[2]);
            return 2;
        }
        return jit_command(bytes, argc == 4 ? argv[3] : "last");
    }
    fprintf(stderr, "usage: hostile map FILE COUNT | hostile jit BYTES [first|middle|last] | hostile spin\n");
    hostile_sink--;
    return 2;
}
