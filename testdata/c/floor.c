/* floor.c: the smallest ptrace tracer with one stop per hit, the floor
 * ptprobe's engine is measured against. It runs PROG with an int3 on the
 * instruction at file offset FUNC and, on each hit, moves rip to the
 * out-of-line copy at file offset OOL (which jumps back): exactly the
 * system calls of ptprobe's one-stop path (wait4, GETREGS, POKEUSER of
 * rip, CONT).
 * Tracer and program share one CPU, the floor's best case.
 *
 *   floor CPU FUNC OOL PROG [ARGS...]    prints "hits=N" on stderr
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned long mapped(pid_t pid, const char *prog, unsigned long off) {
    char path[64], line[512], file[256];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    unsigned long start, end, pgoff, res = 0;
    char perms[8];
    while (f && fgets(line, sizeof line, f)) {
        file[0] = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %255s", &start, &end, perms, &pgoff, file) < 4)
            continue;
        if (perms[2] == 'x' && strstr(file, prog) && off >= pgoff && off - pgoff < end - start)
            res = start + off - pgoff;
    }
    if (f)
        fclose(f);
    return res;
}

int main(int argc, char **argv) {
    if (argc < 5)
        return 64;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(atoi(argv[1]), &set);
    sched_setaffinity(0, sizeof set, &set); /* the child inherits it */
    unsigned long func_off = strtoul(argv[2], NULL, 0), ool_off = strtoul(argv[3], NULL, 0);
    pid_t pid = fork();
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execv(argv[4], argv + 4);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    const char *base = strrchr(argv[4], '/') ? strrchr(argv[4], '/') + 1 : argv[4];
    unsigned long func = mapped(pid, base, func_off), ool = mapped(pid, base, ool_off);
    if (!func || !ool) {
        fprintf(stderr, "floor: cannot find the offsets in %s\n", argv[4]);
        kill(pid, SIGKILL);
        return 2;
    }
    long word = ptrace(PTRACE_PEEKTEXT, pid, (void *)func, 0);
    ptrace(PTRACE_POKETEXT, pid, (void *)func, (void *)((word & ~0xffL) | 0xcc));
    long hits = 0;
    int sig = 0;
    for (;;) {
        ptrace(PTRACE_CONT, pid, 0, (void *)(long)sig);
        sig = 0;
        if (waitpid(pid, &st, 0) < 0 || WIFEXITED(st) || WIFSIGNALED(st))
            break;
        struct user_regs_struct regs;
        ptrace(PTRACE_GETREGS, pid, 0, &regs);
        if (WSTOPSIG(st) == SIGTRAP && regs.rip - 1 == func) {
            ptrace(PTRACE_POKEUSER, pid, (void *)offsetof(struct user_regs_struct, rip), (void *)ool);
            hits++;
        } else {
            sig = WSTOPSIG(st);
        }
    }
    fprintf(stderr, "hits=%ld\n", hits);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
