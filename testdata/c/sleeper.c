/* sleeper.c: sleeper(ms) sleeps ms milliseconds; called for 3, 12 and 40 ms,
 * twice each, so that return-probe latencies fall in known buckets. */
#include <stdio.h>
#include <time.h>

__attribute__((noinline, noipa)) int sleeper(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    return nanosleep(&ts, NULL);
}

int main(void) {
    long ms[] = {3, 12, 40, 3, 12, 40};
    for (int i = 0; i < 6; i++)
        sleeper(ms[i]);
    puts("done");
    return 0;
}
