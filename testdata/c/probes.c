/* probes.c: functions whose first (or probed) instruction has a known form,
 * written in assembly so that no compiler can change it, called a known
 * number of times with known arguments.
 *
 *   probes N   calls each function N times and prints what they returned.
 */
#include <stdio.h>
#include <stdlib.h>

long counter;

/* push_func(a, b) = a + b; first instruction push %rbp. */
long push_func(long a, long b);
/* rip_func(x) = counter += x; first instruction a rip-relative load. */
long rip_func(long x);
/* mid_func(x) = 3x + 1; probed in the middle, at mid_func+8 (mid_point). */
long mid_func(long x);
/* call_func(x) = 2x + 1; first instruction call rel32. */
long call_func(long x);
/* jcc_func(x) = x > 0 ? x + 10 : -1; jle rel8 at jcc_func+3. */
long jcc_func(long x);
/* icall_func(x, f) = f(x); call *%rsi at icall_func+4. */
long icall_func(long x, long (*f)(long));
/* refused_func: starts with cli, which kernel uprobes refuse (ptprobe
 * relocates it: in user mode it faults as it would unprobed); never called. */
void refused_func(void);
/* hlt_func: starts with hlt, which ptprobe refuses to probe; never called. */
void hlt_func(void);

asm(".text\n"
    ".globl push_func\n.type push_func,@function\n"
    "push_func:\n"
    "  push %rbp\n"
    "  mov %rsp,%rbp\n"
    "  lea (%rdi,%rsi),%rax\n"
    "  pop %rbp\n"
    "  ret\n"
    ".size push_func,.-push_func\n"

    ".globl rip_func\n.type rip_func,@function\n"
    "rip_func:\n"
    "  mov counter(%rip),%rax\n"
    "  add %rdi,%rax\n"
    "  mov %rax,counter(%rip)\n"
    "  ret\n"
    ".size rip_func,.-rip_func\n"

    ".globl mid_func\n.type mid_func,@function\n"
    "mid_func:\n"
    "  push %rbx\n"                /* 1 byte  */
    "  mov %rdi,%rbx\n"            /* 3 bytes */
    "  imul $3,%rbx,%rbx\n"        /* 4 bytes */
    "mid_point:\n"                 /* +8      */
    "  lea 1(%rbx),%rax\n"
    "  pop %rbx\n"
    "  ret\n"
    ".size mid_func,.-mid_func\n"

    ".type twice,@function\n"
    "twice:\n"
    "  lea (%rdi,%rdi),%rax\n"
    "  ret\n"
    ".size twice,.-twice\n"

    ".globl call_func\n.type call_func,@function\n"
    "call_func:\n"
    "  call twice\n"
    "  add $1,%rax\n"
    "  ret\n"
    ".size call_func,.-call_func\n"

    ".globl jcc_func\n.type jcc_func,@function\n"
    "jcc_func:\n"
    "  test %rdi,%rdi\n"           /* 3 bytes */
    "  jle 1f\n"                   /* +3: jle rel8 */
    "  lea 10(%rdi),%rax\n"
    "  ret\n"
    "1:\n"
    "  mov $-1,%rax\n"
    "  ret\n"
    ".size jcc_func,.-jcc_func\n"

    ".globl icall_func\n.type icall_func,@function\n"
    "icall_func:\n"
    "  sub $8,%rsp\n"              /* 4 bytes */
    "  call *%rsi\n"               /* +4 */
    "  add $8,%rsp\n"
    "  ret\n"
    ".size icall_func,.-icall_func\n"

    ".globl refused_func\n.type refused_func,@function\n"
    "refused_func:\n"
    "  cli\n"
    "  ret\n"
    ".size refused_func,.-refused_func\n"
    ".globl hlt_func\n.type hlt_func,@function\n"
    "hlt_func:\n"
    "  hlt\n"
    "  ret\n"
    ".size hlt_func,.-hlt_func\n");

static long negate(long x) { return -x; }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    long sum_push = 0, sum_mid = 0, sum_call = 0, sum_jcc = 0, sum_icall = 0;
    for (long i = 0; i < n; i++) {
        sum_push += push_func(i, 2 * i);
        rip_func(i);
        sum_mid += mid_func(i);
        sum_call += call_func(i);
        sum_jcc += jcc_func(i % 2 ? i : -i); /* both branch directions */
        sum_icall += icall_func(i, negate);
    }
    printf("push=%ld rip=%ld mid=%ld call=%ld jcc=%ld icall=%ld\n",
           sum_push, counter, sum_mid, sum_call, sum_jcc, sum_icall);
    return 3; /* a distinctive exit status the tracer must pass on */
}
