/* signals.c: a program that lives with signals, each mode printing what
 * it saw, so that traced and untraced runs can be compared.
 *
 *   signals stop      stops itself with SIGSTOP, is continued, goes on
 *   signals trap N    raises SIGTRAP N times, caught by its own handler
 *   signals itimer R  a 10 ms interval timer interrupts a 100 ms read of a
 *                     pipe; R=1: SA_RESTART (read completes), R=0: EINTR
 * Every mode calls probed() 10 times.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile long traps, alarms;

__attribute__((noinline, noipa)) long probed(long i) { return i; }

static void on_trap(int sig) { (void)sig; traps++; }
static void on_alarm(int sig) { (void)sig; alarms++; }

int main(int argc, char **argv) {
    if (argc < 2)
        return 64;
    long s = 0;
    for (int i = 0; i < 5; i++)
        s += probed(i);
    if (strcmp(argv[1], "stop") == 0) {
        raise(SIGSTOP);
        printf("continued\n");
    } else if (strcmp(argv[1], "trap") == 0) {
        signal(SIGTRAP, on_trap);
        long n = argc > 2 ? atol(argv[2]) : 5;
        for (long i = 0; i < n; i++)
            raise(SIGTRAP);
        printf("traps=%ld\n", traps);
    } else if (strcmp(argv[1], "itimer") == 0) {
        int restart = argc > 2 && atoi(argv[2]);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sa.sa_flags = restart ? SA_RESTART : 0;
        sigaction(SIGALRM, &sa, NULL);
        int fds[2];
        if (pipe(fds) != 0)
            return 2;
        if (fork() == 0) {
            usleep(100000);
            write(fds[1], "x", 1);
            _exit(0);
        }
        struct itimerval it = {{0, 10000}, {0, 10000}};
        setitimer(ITIMER_REAL, &it, NULL);
        char c;
        ssize_t r = read(fds[0], &c, 1);
        int err = errno;
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        printf("read=%zd %s alarms>0=%d\n", r, r < 0 ? strerror(err) : "ok", alarms > 0);
    }
    for (int i = 5; i < 10; i++)
        s += probed(i);
    printf("sum=%ld\n", s);
    return 0;
}
