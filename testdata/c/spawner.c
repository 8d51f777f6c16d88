/* spawner.c: new images made in every way: vfork+exec, a chain of execs,
 * posix_spawn. Each image calls stage(n) once.
 *
 *   spawner vfork | chain N | spawn | child N
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

__attribute__((noinline, noipa)) long stage(long n) { return n * 10; }

static void run_self(const char *self, const char *mode, long n) {
    char arg[32];
    snprintf(arg, sizeof arg, "%ld", n);
    execl(self, self, mode, arg, (char *)NULL);
    _exit(127);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 64;
    const char *self = "/proc/self/exe";
    long n = argc > 2 ? atol(argv[2]) : 0;
    if (strcmp(argv[1], "child") == 0) {
        stage(n);
        return 0;
    }
    if (strcmp(argv[1], "chain") == 0) {
        stage(n);
        if (n > 0)
            run_self(self, "chain", n - 1); /* replaces this image */
        printf("chain done\n");
        return 0;
    }
    stage(-1);
    int st = 0;
    if (strcmp(argv[1], "vfork") == 0) {
        pid_t pid = vfork();
        if (pid == 0)
            run_self(self, "child", 1);
        waitpid(pid, &st, 0);
    } else if (strcmp(argv[1], "spawn") == 0) {
        pid_t pid;
        char *args[] = {(char *)self, "child", "2", NULL};
        if (posix_spawn(&pid, self, NULL, NULL, args, environ) != 0)
            return 3;
        waitpid(pid, &st, 0);
    }
    printf("%s status=%d\n", argv[1], st);
    return 0;
}
