/* questions.c: calls with a known distribution of arguments, for the
 * filters, aggregations, scripts and trace files of docs/DESIGN.md §11.
 *
 *   questions N   for i in 0..N-1 calls sized(i % 5, 1 << (i % 13),
 *                 names[i % 3]), then fib(10) (177 calls, 15 deep);
 *                 prints the sum of what sized returned and fib(10), and
 *                 exits with that sum % 100.
 */
#include <stdio.h>
#include <stdlib.h>

static const char *names[] = {"alpha", "beta", "gamma"};

__attribute__((noinline, noipa)) long sized(long kind, long size, const char *name) {
    return kind * size + name[0];
}

/* volatile keeps gcc from turning a call of the recursion into a loop */
__attribute__((noinline, noipa)) long fib(long n) {
    volatile long v = n;
    if (v < 2)
        return v;
    long a = fib(v - 1);
    long b = fib(v - 2);
    return a + b + (v - n);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100;
    long s = 0;
    for (long i = 0; i < n; i++)
        s += sized(i % 5, 1L << (i % 13), names[i % 3]);
    long f = fib(10);
    printf("sum=%ld fib=%ld\n", s, f);
    return (int)(s % 100);
}
