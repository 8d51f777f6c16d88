/* churn.c: until SIGTERM, makes a thread and forks a child, over and over,
 * each calling probed() ten times; then prints how many children did not
 * exit 0 (one killed by a stray SIGTRAP, say) and exits. For attaching
 * and detaching while threads and processes come and go.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

__attribute__((noinline, noipa)) long probed(long i) { return i + 1; }

static void *calls(void *arg) {
    long s = 0;
    for (long i = 0; i < 10; i++)
        s += probed(i);
    return (void *)s;
}

static void on_term(int sig) { (void)sig; stop = 1; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    long rounds = 0, bad = 0;
    while (!stop) {
        pthread_t th;
        if (pthread_create(&th, NULL, calls, NULL) == 0)
            pthread_join(th, NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(calls(NULL) == (void *)55 ? 0 : 1);
        if (pid > 0) {
            int st;
            while (waitpid(pid, &st, 0) < 0 && !stop)
                ;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                bad++;
        }
        rounds++;
    }
    printf("rounds=%ld bad=%ld\n", rounds, bad);
    return 0;
}
