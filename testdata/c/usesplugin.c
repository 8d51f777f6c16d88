/* usesplugin.c: calls plugin_func of the library built from plugin.c,
 * linked at build time and found at run time through the program's
 * DT_RUNPATH (or DT_RPATH) only: no system directory has it.
 *
 *   usesplugin N
 */
#include <stdio.h>
#include <stdlib.h>

long plugin_func(long x);

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1, s = 0;
    for (long i = 0; i < n; i++)
        s += plugin_func(i);
    printf("sum=%ld\n", s);
    return 0;
}
