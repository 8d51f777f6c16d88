/* sigtrap.c: a program with a SIGTRAP disposition of its own, whose
 * worker thread calls a probed function with SIGTRAP blocked (as thread
 * pools block every signal in their workers), then checks that its
 * disposition and its mask are as it set them, unblocks SIGTRAP and raises
 * it.
 *
 *   sigtrap handler | full | ignore | exec  [CALLS]
 *
 * handler: a SIGTRAP handler, the worker blocks SIGTRAP alone; full: the
 * same handler, the worker blocks every signal; ignore: SIGTRAP ignored,
 * nothing blocked; exec: SIGTRAP ignored, then an exec of itself, whose
 * new image (which inherits that) checks it before and after calling the
 * probed function. A hit of an int3 with SIGTRAP blocked or ignored makes
 * the kernel reset the action to SIG_DFL and unblock SIGTRAP in the thread
 * (force_sig): the checks print what a tracer left changed.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t caught;
static void on_trap(int sig) {
    (void)sig;
    caught++;
}

__attribute__((noinline, noipa)) long probed(long n) { return n + 1; }

static const char *mode;
static long calls = 10;

static void *worker(void *arg) {
    (void)arg;
    sigset_t set, cur;
    sigemptyset(&set);
    if (strcmp(mode, "full") == 0)
        sigfillset(&set);
    else if (strcmp(mode, "handler") == 0)
        sigaddset(&set, SIGTRAP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    long sum = 0;
    for (long i = 0; i < calls; i++)
        sum += probed(i);
    pthread_sigmask(SIG_SETMASK, NULL, &cur);
    struct sigaction sa;
    sigaction(SIGTRAP, NULL, &sa);
    int blocked = sigismember(&cur, SIGTRAP), usr1 = sigismember(&cur, SIGUSR1);
    const char *act = sa.sa_handler == on_trap ? "handler" : sa.sa_handler == SIG_IGN ? "ignored" : "default";
    printf("sum=%ld sigtrap_blocked=%d sigusr1_blocked=%d action=%s\n", sum, blocked, usr1, act);
    fflush(stdout);
    sigset_t trap;
    sigemptyset(&trap);
    sigaddset(&trap, SIGTRAP);
    pthread_sigmask(SIG_UNBLOCK, &trap, NULL);
    raise(SIGTRAP);
    printf("after raise: caught=%d\n", (int)caught);
    return NULL;
}

static void inherited(void) {
    sigset_t cur;
    struct sigaction sa;
    for (int round = 0; round < 2; round++) {
        pthread_sigmask(SIG_SETMASK, NULL, &cur);
        sigaction(SIGTRAP, NULL, &sa);
        printf("%s: sigtrap_blocked=%d action=%s\n", round ? "after calls" : "after exec", sigismember(&cur, SIGTRAP),
               sa.sa_handler == SIG_IGN ? "ignored" : "default");
        long sum = 0;
        for (long i = 0; i < calls; i++)
            sum += probed(i);
        if (sum < 0)
            return;
    }
}

int main(int argc, char **argv) {
    mode = argc > 1 ? argv[1] : "handler";
    if (argc > 2)
        calls = atol(argv[2]);
    if (strcmp(mode, "inherited") == 0) {
        inherited();
        return 0;
    }
    if (strcmp(mode, "exec") == 0) {
        signal(SIGTRAP, SIG_IGN);
        fflush(stdout);
        execl("/proc/self/exe", argv[0], "inherited", argc > 2 ? argv[2] : "10", (char *)NULL);
        return 5;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = strcmp(mode, "ignore") == 0 ? SIG_IGN : on_trap;
    sigaction(SIGTRAP, &sa, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, worker, NULL) != 0)
        return 3;
    pthread_join(th, NULL);
    return 0;
}
