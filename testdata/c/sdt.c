// sdt.c: SDT (USDT) probes made with <sys/sdt.h>, with semaphores.
//
//   sdt N [LIB]   N times: ptsdt:work (semaphore; an int, a string, an
//                 array element, a long) when its semaphore is raised, and
//                 ptsdt:twice at two inlined locations (semaphore); then,
//                 with LIB, dlopen(LIB) and N calls of its ptsdt_lib_call
//                 (probe ptsdtlib:call behind a semaphore of the library).
//                 Prints how often each probe was reached and the
//                 semaphores' values at the end.
//   sdt wait      prints its pid, then runs the work loop until stdin
//                 closes (for attach tests).
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

unsigned short ptsdt_work_semaphore __attribute__((section(".probes")));
unsigned short ptsdt_twice_semaphore __attribute__((section(".probes")));

long table[8] = {11, 22, 33, 44, 55, 66, 77, 88};
static const char *names[] = {"zero", "one", "two"};
static long twice_fired;

static inline __attribute__((always_inline)) void twice(long v) {
    if (ptsdt_twice_semaphore) {
        twice_fired++;
        STAP_PROBE1(ptsdt, twice, v);
    }
}

__attribute__((noinline)) long work(long i, long *fired) {
    volatile long k = i % 8;
    if (ptsdt_work_semaphore) {
        (*fired)++;
        STAP_PROBE4(ptsdt, work, (int)i, names[i % 3], table[k], i * 1000);
    }
    twice(i);
    twice(-i);
    return table[k];
}

int main(int argc, char **argv) {
    long fired = 0, sum = 0;
    if (argc > 1 && strcmp(argv[1], "wait") == 0) {
        printf("%d\n", getpid());
        fflush(stdout);
        char c;
        for (long i = 0; read(0, &c, 1) > 0; i++)
            sum += work(i, &fired);
        printf("fired=%ld sem=%u\n", fired, ptsdt_work_semaphore);
        return 0;
    }
    long n = argc > 1 ? atol(argv[1]) : 3;
    for (long i = 0; i < n; i++)
        sum += work(i, &fired);
    long lib_fired = -1;
    unsigned lib_sem = 0;
    if (argc > 2) {
        void *h = dlopen(argv[2], RTLD_NOW);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        void (*call)(long) = (void (*)(long))dlsym(h, "ptsdt_lib_call");
        for (long i = 0; i < n; i++)
            call(i);
        lib_fired = *(long *)dlsym(h, "ptsdt_lib_fired");
        lib_sem = *(unsigned short *)dlsym(h, "ptsdtlib_call_semaphore");
    }
    printf("sum=%ld work=%ld twice=%ld lib=%ld sem=%u,%u,%u\n", sum, fired, twice_fired, lib_fired,
           ptsdt_work_semaphore, ptsdt_twice_semaphore, lib_sem);
    return 0;
}
