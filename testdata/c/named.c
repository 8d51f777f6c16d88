/* named.c: NTHREADS threads each call named(name, i) NCALLS times, the
 * name its own (a string in the program's data), i counting from 0.
 *
 *   named [NTHREADS [NCALLS]]   (default 8 x 20000)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long ncalls = 20000;
static const char *names[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
                              "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa"};

__attribute__((noinline, noipa)) long named(const char *name, long i) {
    return (long)strlen(name) + i;
}

static void *worker(void *arg) {
    long id = (long)arg, sum = 0;
    for (long i = 0; i < ncalls; i++)
        sum += named(names[id], i);
    return (void *)sum;
}

int main(int argc, char **argv) {
    long nthreads = argc > 1 ? atol(argv[1]) : 8;
    if (argc > 2)
        ncalls = atol(argv[2]);
    pthread_t tids[16];
    if (nthreads < 1 || nthreads > 16)
        return 64;
    for (long t = 0; t < nthreads; t++)
        pthread_create(&tids[t], NULL, worker, (void *)t);
    long total = 0;
    for (long t = 0; t < nthreads; t++) {
        void *ret;
        pthread_join(tids[t], &ret);
        total += (long)ret;
    }
    printf("threads=%ld calls=%ld total=%ld\n", nthreads, ncalls, total);
    return 0;
}
