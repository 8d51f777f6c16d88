/* forker.c: forks NCHILD children that each call probed() NCALLS times,
 * and reports how many children did not exit 0 (a child killed by a stray
 * SIGTRAP would show here).
 *
 *   forker [NCHILD [NCALLS]]   (default 200 x 10)
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline, noipa)) long probed(long i) { return i + 1; }

int main(int argc, char **argv) {
    int nchild = argc > 1 ? atoi(argv[1]) : 200;
    long ncalls = argc > 2 ? atol(argv[2]) : 10;
    probed(-1); /* the parent's own call */
    int bad = 0;
    for (int c = 0; c < nchild; c++) {
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0) {
            long s = 0;
            for (long i = 0; i < ncalls; i++)
                s += probed(i);
            _exit(s == ncalls * (ncalls + 1) / 2 ? 0 : 1);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    printf("children=%d bad=%d\n", nchild, bad);
    return 0;
}
