/* fork.c: the parent and a forked child each call probed(who, i) N times;
 * the child also execs "/bin/true" at the end, so that its events come
 * from a process that is neither the launched one nor alive at the end.
 *
 *   fork N
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline, noipa)) long probed(long who, long i) { return who + i; }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10, sum = 0;
    pid_t child = fork();
    if (child < 0)
        return 1;
    long who = child == 0 ? 1 : 0;
    for (long i = 0; i < n; i++)
        sum += probed(who, i);
    if (child == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(2);
    }
    int status;
    waitpid(child, &status, 0);
    printf("sum=%ld child=%d\n", sum, WEXITSTATUS(status));
    return 0;
}
