/* oom.c: allocates 64 bytes N times and says for each whether malloc
 * failed; output goes through write(2), so that stdio allocates nothing.
 *
 *   oom N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 9;
    char line[64];
    for (int i = 1; i <= n; i++) {
        void *p = malloc(64);
        int len = snprintf(line, sizeof line, p ? "ok %d\n" : "out of memory at allocation %d\n", i);
        write(1, line, len);
    }
    return 0;
}
