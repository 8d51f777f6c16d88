/* forklimit.c: calls probed(i) for i = 0..2, lowers RLIMIT_NOFILE to 3
 * (no room for another file descriptor), forks a child that exits at once,
 * then calls probed(i) for i = 10..12. ptprobe cannot give the child a
 * ring of its own (memfd_create fails in it); the parent's probes must go
 * on recording.
 *
 *   forklimit           prints "ok"
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline, noipa)) long probed(long i) { return i + 1; }

int main(void) {
    long s = 0;
    for (long i = 0; i < 3; i++)
        s += probed(i);
    struct rlimit rl = {3, 3};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1;
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    waitpid(p, NULL, 0);
    for (long i = 10; i < 13; i++)
        s += probed(i);
    printf("ok\n");
    return s == 0;
}
