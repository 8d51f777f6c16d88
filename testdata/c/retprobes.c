/* retprobes.c: functions whose returns are hard to catch.
 *
 *   retprobes N   prints what each part returned.
 *
 * plain(x) = 2x; recurse(n) recurses n deep (recurse(10000) makes 10001
 * calls); level1..level3 are left by a longjmp from level3; multi_ret has
 * three ret instructions; tail_a tail-calls tail_b (jmp, no call).
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

static jmp_buf env;

__attribute__((noinline, noipa)) long plain(long x) { return 2 * x; }

/* volatile keeps gcc from turning the recursion into a loop */
__attribute__((noinline, noipa)) long recurse(long n) {
    volatile long v = n;
    if (v == 0)
        return 0;
    long r = recurse(v - 1);
    return r + 1 + (v - n);
}

__attribute__((noinline, noipa)) long level3(long x, int jump) {
    if (jump)
        longjmp(env, 1);
    return x + 3;
}
__attribute__((noinline, noipa)) long level2(long x, int jump) { return level3(x, jump) + 2; }
__attribute__((noinline, noipa)) long level1(long x, int jump) { return level2(x, jump) + 1; }

/* multi_ret(x): 1 for x < 0, 2 for x == 0, 3 for x > 0, each by its own ret. */
long multi_ret(long x);
/* tail_a(x) = tail_b(x) = x + 100, by a jmp. */
long tail_a(long x);
long tail_b(long x);
asm(".text\n"
    ".globl multi_ret\n.type multi_ret,@function\nmulti_ret:\n"
    "  test %rdi,%rdi\n  jns 1f\n  mov $1,%eax\n  ret\n"
    "1: jnz 2f\n  mov $2,%eax\n  ret\n"
    "2: mov $3,%eax\n  ret\n"
    ".size multi_ret,.-multi_ret\n"
    ".globl tail_b\n.type tail_b,@function\ntail_b:\n"
    "  lea 100(%rdi),%rax\n  ret\n"
    ".size tail_b,.-tail_b\n"
    ".globl tail_a\n.type tail_a,@function\ntail_a:\n"
    "  jmp tail_b\n"
    ".size tail_a,.-tail_a\n");

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10;
    long s = 0, jumps = 0;
    for (long i = 0; i < n; i++)
        s += plain(i);
    printf("plain=%ld\n", s);
    printf("recurse=%ld\n", recurse(10000));
    /* n times left by longjmp, then n normal returns */
    for (long i = 0; i < n; i++) {
        if (setjmp(env) == 0)
            level1(i, 1);
        else
            jumps++;
    }
    s = 0;
    for (long i = 0; i < n; i++)
        s += level1(i, 0);
    printf("jumps=%ld levels=%ld\n", jumps, s);
    s = 0;
    for (long i = 0; i < n; i++)
        s += multi_ret(i % 3 - 1);
    printf("multi=%ld\n", s);
    s = 0;
    for (long i = 0; i < n; i++)
        s += tail_a(i);
    printf("tail=%ld\n", s);
    return 0;
}
