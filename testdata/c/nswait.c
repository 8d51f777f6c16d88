/* nswait.c: a target for attaching to a process in a container (a mount
 * namespace of its own). It prints "ready" once set up and waits for a
 * line on stdin; then it calls work(i) N times, reaching the SDT probe
 * nswait:tick (behind a semaphore) in each, and the library's
 * plugin_func(i) N times; it prints "done" and the sums, waits for a
 * second line (so that a tracer can detach while it runs) and exits.
 * With "early" it dlopens LIBRARY before "ready" (the library is mapped
 * when the tracer attaches); with "late" after the first line (a tracer
 * arms it when the dynamic linker maps it).
 *
 *   nswait LIBRARY N early|late
 */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned short nswait_tick_semaphore __attribute__((section(".probes")));
static long ticks;

__attribute__((noinline, noipa)) long work(long i) {
    if (nswait_tick_semaphore) {
        ticks++;
        STAP_PROBE1(nswait, tick, i);
    }
    return i * 3;
}

static void *load(const char *lib) {
    void *h = dlopen(lib, RTLD_NOW);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        exit(1);
    }
    return h;
}

int main(int argc, char **argv) {
    if (argc < 4)
        return 64;
    long n = atol(argv[2]);
    void *h = NULL;
    if (strcmp(argv[3], "early") == 0)
        h = load(argv[1]);
    char line[64];
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 2;
    if (!h)
        h = load(argv[1]);
    long (*f)(long) = (long (*)(long))dlsym(h, "plugin_func");
    long s = 0, p = 0;
    for (long i = 0; i < n; i++) {
        s += work(i);
        p += f(i);
    }
    printf("done work=%ld plugin=%ld ticks=%ld\n", s, p, ticks);
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 3;
    return 0;
}
