/* longstr.c: passes strings of given lengths to takes(s, n), for the
 * limit of string fetch-args (4095 bytes, the kernel's MAX_STRING_SIZE
 * less the NUL).
 *
 *   longstr LEN...   one call per LEN, with a string of LEN bytes 'a'..'z'
 */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline, noipa)) long takes(const char *s, long n) { return s[0] + n; }

int main(int argc, char **argv) {
    long sum = 0;
    for (int i = 1; i < argc; i++) {
        long n = atol(argv[i]);
        char *s = malloc(n + 1);
        if (!s)
            return 1;
        for (long j = 0; j < n; j++)
            s[j] = 'a' + j % 26;
        s[n] = 0;
        sum += takes(s, n);
        free(s);
    }
    printf("%ld\n", sum);
    return 0;
}
