// hungfs.c: the hung-mount attack of the hostile-input fixtures (built and described by hostile.py). A minimal FUSE
// file system, spoken directly over /dev/fuse, that serves one executable and then stops answering, as a dead network
// volume or a FUSE daemon that stopped does: every later lookup, open, stat or read of it waits in the kernel.
//
//   hungfs MOUNTPOINT PROGRAM ARG...
//
// Mounts MOUNTPOINT (an empty directory) serving PROGRAM's bytes as MOUNTPOINT/hostile (mode 0755), forks the server,
// and execs MOUNTPOINT/hostile ARG... in this process (with HOSTILE_NO_READY=1, so `hostile spin` prints nothing).
// Once that process runs from the mount (its maps name the file and it has burned CPU), the server stops answering
// and prints `ready PID MOUNTPOINT`, PID being the process running from the mount. The server ends when that
// process does (PR_SET_PDEATHSIG) or on SIGTERM: it detaches the mount and closes /dev/fuse, which fails every
// request still waiting (ENOTCONN), so nothing stays blocked after the test. Needs root (mount).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define ROOT_NODE 1
#define FILE_NODE 2
#define FILE_NAME "hostile"

static unsigned char *program;
static size_t program_size;
static const char *mountpoint;
static volatile sig_atomic_t stopping;

static void die(const char *what) {
    fprintf(stderr, "hungfs: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void on_signal(int signal) {
    (void)signal;
    stopping = 1;
}

static void reply(int fd, uint64_t unique, int error, const void *payload, size_t size) {
    struct fuse_out_header header = {.len = sizeof(header) + size, .error = error, .unique = unique};
    struct iovec parts[2] = {{&header, sizeof(header)}, {(void *)payload, size}};
    // ENOENT: the request was interrupted meanwhile; nothing else to do.
    if (writev(fd, parts, payload != NULL ? 2 : 1) < 0 && errno != ENOENT) die("writev /dev/fuse");
}

static void fill_attributes(uint64_t node, struct fuse_attr *attributes) {
    memset(attributes, 0, sizeof(*attributes));
    attributes->ino = node;
    attributes->blksize = 4096;
    if (node == ROOT_NODE) {
        attributes->mode = S_IFDIR | 0755;
        attributes->nlink = 2;
    } else {
        attributes->mode = S_IFREG | 0755;
        attributes->nlink = 1;
        attributes->size = program_size;
        attributes->blocks = (program_size + 511) / 512;
    }
}

// Answers one request while the file system is healthy.
static void serve(int fd, const struct fuse_in_header *in, const void *body) {
    switch (in->opcode) {
    case FUSE_INIT: {
        const struct fuse_init_in *init = body;
        struct fuse_init_out out = {0};
        out.major = FUSE_KERNEL_VERSION;
        out.minor = init->minor < FUSE_KERNEL_MINOR_VERSION ? init->minor : FUSE_KERNEL_MINOR_VERSION;
        out.max_readahead = init->max_readahead;
        out.max_background = 16;
        out.congestion_threshold = 12;
        out.max_write = 4096;
        out.time_gran = 1;
        reply(fd, in->unique, 0, &out, sizeof(out));
        return;
    }
    case FUSE_LOOKUP: {
        // Entries and attributes are never cached (valid for 0 s): every later path walk asks again.
        if (in->nodeid != ROOT_NODE || strcmp(body, FILE_NAME) != 0) {
            reply(fd, in->unique, -ENOENT, NULL, 0);
            return;
        }
        struct fuse_entry_out out = {0};
        out.nodeid = FILE_NODE;
        fill_attributes(FILE_NODE, &out.attr);
        reply(fd, in->unique, 0, &out, sizeof(out));
        return;
    }
    case FUSE_GETATTR: {
        struct fuse_attr_out out = {0};
        fill_attributes(in->nodeid, &out.attr);
        reply(fd, in->unique, 0, &out, sizeof(out));
        return;
    }
    case FUSE_OPEN: {
        struct fuse_open_out out = {0};
        reply(fd, in->unique, 0, &out, sizeof(out));
        return;
    }
    case FUSE_READ: {
        const struct fuse_read_in *read = body;
        size_t offset = read->offset < program_size ? read->offset : program_size;
        size_t count = program_size - offset < read->size ? program_size - offset : read->size;
        reply(fd, in->unique, 0, program + offset, count);
        return;
    }
    case FUSE_FLUSH:
    case FUSE_RELEASE:
        reply(fd, in->unique, 0, NULL, 0);
        return;
    case FUSE_FORGET:
    case FUSE_BATCH_FORGET:
    case FUSE_INTERRUPT:
        return;  // never answered
    default:
        reply(fd, in->unique, -ENOSYS, NULL, 0);
        return;
    }
}

// Whether `pid` runs from the mount: its maps name the file and it has used CPU (so it is past the loader, its
// pages in memory, and needs the file system no more).
static int running_from_mount(pid_t pid, const char *path) {
    char name[64];
    snprintf(name, sizeof(name), "/proc/%d/maps", (int)pid);
    FILE *maps = fopen(name, "r");
    if (maps == NULL) return 0;
    char line[4096];
    int mapped = 0;
    while (!mapped && fgets(line, sizeof(line), maps) != NULL) mapped = strstr(line, path) != NULL;
    fclose(maps);
    if (!mapped) return 0;
    snprintf(name, sizeof(name), "/proc/%d/stat", (int)pid);
    FILE *stat = fopen(name, "r");
    if (stat == NULL) return 0;
    char buffer[1024];
    size_t length = fread(buffer, 1, sizeof(buffer) - 1, stat);
    fclose(stat);
    buffer[length] = 0;
    char *fields = strrchr(buffer, ')');
    unsigned long user = 0, system = 0;
    if (fields == NULL || sscanf(fields + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &user, &system) != 2)
        return 0;
    return user + system >= 5;
}

static void run_server(int fd, pid_t workload, const char *path) {
    static unsigned char buffer[256 << 10];
    int hung = 0;
    while (!stopping) {
        if (!hung && running_from_mount(workload, path)) {
            hung = 1;
            printf("ready %d %s\n", (int)workload, mountpoint);
            fflush(stdout);
        }
        // Healthy, poll often to notice the workload is up; hung, just wait for a signal.
        struct timespec pause = {0, hung ? 100000000 : 5000000};
        ssize_t length = read(fd, buffer, sizeof(buffer));
        if (length < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                if (errno == EAGAIN) nanosleep(&pause, NULL);
                continue;
            }
            if (errno == ENODEV) break;  // unmounted
            die("read /dev/fuse");
        }
        if ((size_t)length < sizeof(struct fuse_in_header)) continue;
        const struct fuse_in_header *in = (const void *)buffer;
        // Hung: requests are read and never answered; the callers wait until the mount goes away.
        if (!hung) serve(fd, in, buffer + sizeof(*in));
    }
    umount2(mountpoint, MNT_DETACH);
    close(fd);
    exit(0);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: hungfs MOUNTPOINT PROGRAM ARG...\n");
        return 2;
    }
    mountpoint = argv[1];
    int source = open(argv[2], O_RDONLY | O_CLOEXEC);
    struct stat info;
    if (source < 0 || fstat(source, &info) != 0) die(argv[2]);
    program_size = (size_t)info.st_size;
    program = malloc(program_size);
    if (program == NULL || read(source, program, program_size) != (ssize_t)program_size) die("reading the program");
    close(source);

    // Non-blocking, so the server notices the workload is up between requests and a signal is never missed.
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) die("/dev/fuse");
    char options[256];
    snprintf(options, sizeof(options), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions",
             fd);
    if (mount("hungfs", mountpoint, "fuse.hungfs", MS_NOSUID | MS_NODEV, options) != 0) die("mount");

    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", mountpoint, FILE_NAME);
    pid_t workload = getpid();
    pid_t server = fork();
    if (server < 0) die("fork");
    if (server == 0) {
        // Whatever mask the starter had, the server must hear SIGTERM and its parent-death signal.
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        struct sigaction action = {0};
        action.sa_handler = on_signal;
        sigaction(SIGTERM, &action, NULL);
        sigaction(SIGINT, &action, NULL);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != workload) stopping = 1;
        run_server(fd, workload, path);
    }
    close(fd);
    setenv("HOSTILE_NO_READY", "1", 1);
    argv[2] = path;
    execv(path, argv + 2);
    die("execv from the mount");
}
