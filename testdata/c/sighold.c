/* sighold.c: calls probed() in a loop until killed. Its SIGUSR1 handler
 * sleeps 200 ms: a detach can then come while the signal has the thread
 * interrupted inside a probe's trampoline, to which the handler returns
 * after the detach.
 */
#include <signal.h>
#include <string.h>
#include <time.h>

static volatile long handled;

__attribute__((noinline, noipa)) long probed(long i) { return i + 1; }

static void on_usr1(int sig) {
    (void)sig;
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    handled++;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    for (long i = 0;; i++)
        probed(i);
}
