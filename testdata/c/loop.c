/* loop.c: runs until killed, calling tick() every millisecond, with a
 * second thread calling tock() as often; for attaching and detaching.
 *
 *   loop [SECONDS]   stops by itself after SECONDS (default: never) and
 *                    prints how many ticks and tocks it made.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile long ticks, tocks;
static volatile int stop;

__attribute__((noinline, noipa)) long tick(long i) { return ticks = i; }
__attribute__((noinline, noipa)) long tock(long i) { return tocks = i; }

static void nap(void) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

static void *other(void *arg) {
    for (long i = 1; !stop; i++) {
        tock(i);
        nap();
    }
    return arg;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 1e9;
    pthread_t th;
    pthread_create(&th, NULL, other, NULL);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 1;; i++) {
        tick(i);
        nap();
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec + (now.tv_nsec - start.tv_nsec) / 1e9 > secs)
            break;
    }
    stop = 1;
    pthread_join(th, NULL);
    printf("ticks=%ld tocks=%ld\n", ticks, tocks);
    return 0;
}
