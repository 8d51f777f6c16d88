/* hot.c: NTHREADS threads call probed() and framed() in a hot loop until
 * the file STOPFILE exists; each thread then checks the sum of what the
 * calls returned against its closed form. For attaching and detaching
 * under load: a hit that the tracer left half-done shows as a wrong sum,
 * a crash or a signal.
 *
 *   hot NTHREADS STOPFILE    prints "threads=N ok" and exits 0, or
 *                            "thread T: bad sum" and exits 1
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile int stop;

/* The first instruction of probed is several bytes long; framed is built
 * unoptimized, so its first is the 1-byte push %rbp: a thread that ran
 * its trampoline comes back at framed+1, where a hit also leaves rip. */
__attribute__((noinline, noipa)) long probed(long thread, long i) {
    return thread * 1000003 + i;
}

__attribute__((noinline, noipa, optimize("O0"))) long framed(long i) {
    return i ^ 0x5a5a;
}

static void *worker(void *arg) {
    long id = (long)arg;
    unsigned long n = 0, sum = 0, want = 0;
    while (!stop) {
        for (int k = 0; k < 256; k++, n++) {
            sum += probed(id, n);
            sum += framed(n);
            want += id * 1000003 + n + (n ^ 0x5a5a);
        }
    }
    if (sum != want) {
        printf("thread %ld: bad sum %lu, want %lu after %lu calls\n", id, sum, want, n);
        return (void *)1;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 64;
    long nthreads = atol(argv[1]);
    pthread_t tids[64];
    if (nthreads < 1 || nthreads > 64)
        return 64;
    for (long t = 0; t < nthreads; t++)
        pthread_create(&tids[t], NULL, worker, (void *)t);
    struct timespec nap = {0, 5000000};
    while (access(argv[2], F_OK) != 0)
        nanosleep(&nap, NULL);
    stop = 1;
    int bad = 0;
    for (long t = 0; t < nthreads; t++) {
        void *ret;
        pthread_join(tids[t], &ret);
        bad |= ret != NULL;
    }
    if (bad)
        return 1;
    printf("threads=%ld ok\n", nthreads);
    return 0;
}
