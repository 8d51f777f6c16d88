/* strings.c: passes strings that are awkward to print to a function the
 * kernel backend's tests probe, so that the trace_pipe parser meets them.
 *
 *   strings    calls take_str(i, s) for each string of the table below,
 *              then take_str(-1, (char *)8) (unreadable: a fault), then
 *              take_int(i) for i in -2..2.
 */
#include <stdio.h>
#include <string.h>

static char long_str[5001];

__attribute__((noinline, noipa)) long take_str(long i, const char *s) {
    return i + (s != NULL);
}

__attribute__((noinline, noipa)) long take_int(long i) { return i * 2; }

int main(void) {
    memset(long_str, 'x', sizeof long_str - 1);
    const char *strs[] = {
        "plain",
        "with space",
        "quote\" x=\"y",
        "new\nline",
        "",
        "tab\there",
        long_str,
    };
    long sum = 0;
    for (long i = 0; i < (long)(sizeof strs / sizeof strs[0]); i++)
        sum += take_str(i, strs[i]);
    sum += take_str(-1, (const char *)8);
    for (long i = -2; i <= 2; i++)
        sum += take_int(i);
    printf("sum=%ld\n", sum);
    return 0;
}
