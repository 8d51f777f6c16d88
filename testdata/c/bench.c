/* bench.c: calls one of two probe targets N times and prints how long the
 * loop took, for per-hit cost measurements.
 *
 *   bench push|rip N   ->  "loop_ns=<nanoseconds> calls=<N>"
 *
 * bench_push starts with push %rbp (the kernel emulates it); bench_rip with
 * a rip-relative load (the kernel single-steps it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

long bench_counter;
long bench_push(long x);
long bench_rip(long x);
/* Out-of-line copies of the first instruction of each, jumping back:
 * for the C floor tracer, which moves rip here on each hit (the system
 * calls of ptprobe's one-stop path, without its relocation). */
long bench_push_ool(long x);
long bench_rip_ool(long x);
asm(".text\n"
    ".globl bench_push\n.type bench_push,@function\nbench_push:\n"
    "  push %rbp\n  mov %rsp,%rbp\n  lea 1(%rdi),%rax\n  pop %rbp\n  ret\n"
    ".size bench_push,.-bench_push\n"
    ".globl bench_rip\n.type bench_rip,@function\nbench_rip:\n"
    "  mov bench_counter(%rip),%rax\n  add %rdi,%rax\n  mov %rax,bench_counter(%rip)\n  ret\n"
    ".size bench_rip,.-bench_rip\n"
    ".globl bench_push_ool\n.type bench_push_ool,@function\nbench_push_ool:\n"
    "  push %rbp\n  jmp bench_push+1\n"
    ".size bench_push_ool,.-bench_push_ool\n"
    ".globl bench_rip_ool\n.type bench_rip_ool,@function\nbench_rip_ool:\n"
    "  mov bench_counter(%rip),%rax\n  jmp bench_rip+7\n"
    ".size bench_rip_ool,.-bench_rip_ool\n");

int main(int argc, char **argv) {
    if (argc < 3)
        return 64;
    /* The second argument is a string for fetch-arg benchmarks. */
    long (*volatile fn)(long, const char *) =
        (long (*)(long, const char *))(strcmp(argv[1], "rip") == 0 ? bench_rip : bench_push);
    long n = atol(argv[2]), sum = 0;
    /* BENCH_STRING=heap: the string is on the heap, not in .rodata (a
     * string's cost on the no-stop path must not hang on where it is). */
    const char *s = "bench";
    const char *where = getenv("BENCH_STRING");
    if (where && strcmp(where, "heap") == 0)
        s = strdup(s);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        sum += fn(i, s);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("loop_ns=%ld calls=%ld sum=%ld\n", (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec), n, sum);
    return 0;
}
