/* flip.c: calls flipped() a different number of times on alternate runs,
 * so that two runs of it really differ.
 *
 *   flip STATEFILE   first run (no STATEFILE): creates it, 10 calls;
 *                    next run: removes it, 12 calls; and so on.
 */
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline, noipa)) long flipped(long i) { return i * 2; }

int main(int argc, char **argv) {
    if (argc < 2)
        return 64;
    long n = 10;
    if (access(argv[1], F_OK) == 0) {
        unlink(argv[1]);
        n = 12;
    } else {
        FILE *f = fopen(argv[1], "w");
        if (f)
            fclose(f);
    }
    long s = 0;
    for (long i = 0; i < n; i++)
        s += flipped(i);
    printf("%ld\n", s);
    return 0;
}
