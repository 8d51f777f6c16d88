/* libcalls.c: calls libc's strtol N times on the strings "0", "7", "14"...
 * through a pointer the compiler cannot see through, so every call is a
 * real call into libc.
 *
 *   libcalls N
 */
#include <stdio.h>
#include <stdlib.h>

long (*volatile conv)(const char *, char **, int) = strtol;

int main(int argc, char **argv) {
    long n = 0, sum = 0;
    /* Not atol: it would call strtol once more. */
    for (const char *p = argc > 1 ? argv[1] : "100"; *p >= '0' && *p <= '9'; p++)
        n = n * 10 + (*p - '0');
    char buf[32];
    for (long i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "%ld", i * 7);
        sum += conv(buf, NULL, 10);
    }
    printf("sum=%ld\n", sum);
    return 0;
}
