/* execself.c: a program that execs itself N times, alternately from its
 * main thread and from a second thread (whose exec takes over the process
 * ID and ends the main thread), calling the probed stage(n) in each image.
 * The last image prints "done" and exits 0.
 *
 *   execself N [main]   main: every exec from the main thread
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline, noipa)) long stage(long n) { return n * 10; }

static char next[32];
static const char *only;

static void again(void) {
    execl("/proc/self/exe", "execself", next, only, (char *)NULL);
    _exit(127);
}

static void *exec_thread(void *arg) {
    (void)arg;
    stage(-1);
    again();
    return NULL;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    stage(n);
    if (n <= 0) {
        printf("done\n");
        return 0;
    }
    snprintf(next, sizeof next, "%ld", n - 1);
    only = argc > 2 ? argv[2] : NULL;
    if (n % 2 == 0 || only)
        again();
    pthread_t th;
    if (pthread_create(&th, NULL, exec_thread, NULL) != 0)
        return 3;
    pthread_join(th, NULL); /* never returns: the thread's exec ends us */
    return 4;
}
