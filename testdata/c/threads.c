/* threads.c: NTHREADS threads each call probed() NCALLS times.
 *
 *   threads [NTHREADS [NCALLS]]   (default 8 x 20000)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long ncalls = 20000;

__attribute__((noinline, noipa)) long probed(long thread, long i) {
    return thread * 1000003 + i;
}

static void *worker(void *arg) {
    long id = (long)arg, sum = 0;
    for (long i = 0; i < ncalls; i++)
        sum += probed(id, i);
    return (void *)sum;
}

int main(int argc, char **argv) {
    long nthreads = argc > 1 ? atol(argv[1]) : 8;
    if (argc > 2)
        ncalls = atol(argv[2]);
    pthread_t tids[256];
    if (nthreads < 1 || nthreads > 256)
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
