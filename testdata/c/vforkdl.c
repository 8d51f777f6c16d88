/* vforkdl.c: while a vfork child sleeps in the parent's memory (300 ms),
 * another thread of the parent loads LIBRARY, calls its plugin_func(i)
 * for i = 0..4 and the program's own probed(i) for i = 0..2; once the
 * child has exited it calls plugin_func(i) for i = 5..9. The records of
 * that thread carry the child's generation (docs/DESIGN.md §8), and the
 * dynamic linker's hook runs while the parent's forking thread waits in
 * vfork.
 *
 *   vforkdl LIBRARY     prints "sum=S"
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline, noipa)) long probed(long i) { return i + 1; }

static const char *library;
static long (*plugin)(long);
static long sum;

static void *thread(void *arg) {
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    void *h = dlopen(library, RTLD_NOW);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        exit(1);
    }
    plugin = (long (*)(long))dlsym(h, "plugin_func");
    for (long i = 0; i < 5; i++)
        sum += plugin(i);
    for (long i = 0; i < 3; i++)
        sum += probed(i);
    return arg;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 64;
    library = argv[1];
    pthread_t t;
    pthread_create(&t, NULL, thread, NULL);
    pid_t p = vfork();
    if (p == 0) {
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
        _exit(0);
    }
    waitpid(p, NULL, 0);
    pthread_join(t, NULL);
    for (long i = 5; i < 10; i++)
        sum += plugin(i);
    printf("sum=%ld\n", sum);
    return 0;
}
