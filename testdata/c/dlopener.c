/* dlopener.c: sleeps, then dlopens a library and calls its plugin_func N
 * times. Probes on the library are armed only when it is mapped. With
 * ROUNDS, it does so ROUNDS times, closing the library after each (the
 * dynamic linker unmaps it, and maps it again at the next round).
 *
 *   dlopener LIBRARY N [SLEEP_MS [ROUNDS]]
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 3)
        return 64;
    long n = atol(argv[2]), ms = argc > 3 ? atol(argv[3]) : 1000;
    long rounds = argc > 4 ? atol(argv[4]) : 1;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    long s = 0;
    for (long r = 0; r < rounds; r++) {
        void *h = dlopen(argv[1], RTLD_NOW);
        if (!h) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        long (*f)(long) = (long (*)(long))dlsym(h, "plugin_func");
        for (long i = 0; i < n; i++)
            s += f(i);
        if (rounds > 1 && dlclose(h) != 0) {
            fprintf(stderr, "dlclose: %s\n", dlerror());
            return 1;
        }
    }
    printf("sum=%ld\n", s);
    return 0;
}
