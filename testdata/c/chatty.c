/* chatty.c: calls probed() N times and after each call writes a line of
 * its own to stdout, with one write(2) (so each of its lines is one atomic
 * pipe write): for checking that the events ptprobe writes to the same
 * stdout never have a line of the program inside them.
 *
 *   chatty N   lines "chatty I " followed by I%97 dots, I = 0..N-1
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline, noipa)) long probed(long i, const char *s) { return i + (long)strlen(s); }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100;
    char line[256];
    long sum = 0;
    for (long i = 0; i < n; i++) {
        /* a string argument of varying length, so events vary in length */
        char arg[64];
        snprintf(arg, sizeof arg, "arg-%ld-%.*s", i, (int)(i % 37), "abcdefghijklmnopqrstuvwxyzabcdefghijk");
        sum += probed(i, arg);
        int len = snprintf(line, sizeof line, "chatty %ld ", i);
        memset(line + len, '.', i % 97);
        len += i % 97;
        line[len++] = '\n';
        if (write(1, line, len) != len)
            return 1;
    }
    return sum > 0 ? 0 : 1;
}
