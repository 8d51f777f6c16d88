/* vforkwait.c: vforks a child that sleeps DELAY milliseconds before it
 * execs /bin/true, so that the parent waits inside vfork all that time;
 * then calls tick() every millisecond until killed. For attaching to and
 * detaching from a process whose only thread waits inside vfork.
 *
 *   vforkwait [DELAY [BEFORE]]   (defaults 300 and 0): BEFORE milliseconds
 *                                pass before the vfork
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile long ticks;

__attribute__((noinline, noipa)) long tick(long i) { return ticks = i; }

int main(int argc, char **argv) {
    long delay = argc > 1 ? atol(argv[1]) : 300;
    long before = argc > 2 ? atol(argv[2]) : 0;
    struct timespec pause = {before / 1000, before % 1000 * 1000000};
    nanosleep(&pause, NULL);
    pid_t child = vfork();
    if (child == 0) {
        /* Only async-signal-safe system calls in a vfork child. */
        struct timespec ts = {delay / 1000, delay % 1000 * 1000000};
        nanosleep(&ts, NULL);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    if (child < 0)
        return 2;
    int st;
    waitpid(child, &st, 0);
    for (long i = 1;; i++) {
        tick(i);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}
