/* acid.c: a program without libc, for the acid test of relocation. Its
 * functions have loops, a switch compiled to a jump table, rip-relative
 * data, calls and recursion; it runs few enough instructions that a
 * single-stepping tracer can count every one of them.
 *
 * Build: gcc -O2 -static -nostdlib -fno-pie -no-pie -fno-stack-protector
 *        -fcf-protection=none -o acid acid.c
 */
typedef unsigned long u64;

static long sys_write(int fd, const void *buf, u64 n) {
    long ret;
    asm volatile("syscall" : "=a"(ret) : "a"(1), "D"(fd), "S"(buf), "d"(n) : "rcx", "r11", "memory");
    return ret;
}

static void __attribute__((noreturn)) sys_exit(int code) {
    asm volatile("syscall" : : "a"(60), "D"(code));
    __builtin_unreachable();
}

/* rip-relative data */
static const int table[16] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};
static u64 state = 88172645463325252UL;
static char out[256];

__attribute__((noinline)) u64 next_random(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

__attribute__((noinline)) long classify(long x) {
    switch (x & 15) { /* dense cases: a jump table */
    case 0: return x * 3;
    case 1: return x + 7;
    case 2: return x ^ 0x55;
    case 3: return -x;
    case 4: return x << 2;
    case 5: return x >> 1;
    case 6: return x - 100;
    case 7: return x * x;
    case 8: return table[x & 15];
    case 9: return x | 1;
    default: return 0;
    }
}

__attribute__((noinline)) long table_sum(long n) {
    long s = 0;
    for (long i = 0; i < n; i++)
        s += table[i & 15] * (i + 1);
    return s;
}

__attribute__((noinline)) long collatz(u64 n) {
    long steps = 0;
    while (n != 1) {
        n = (n & 1) ? 3 * n + 1 : n / 2;
        steps++;
    }
    return steps;
}

__attribute__((noinline)) long fib(long n) {
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

__attribute__((noinline)) char *put_num(char *p, long v) {
    char tmp[24];
    int n = 0;
    u64 u = v < 0 ? -(u64)v : (u64)v;
    do {
        tmp[n++] = '0' + u % 10;
        u /= 10;
    } while (u);
    if (v < 0)
        *p++ = '-';
    while (n)
        *p++ = tmp[--n];
    *p++ = ' ';
    return p;
}

void __attribute__((noreturn, used)) acid_main(void) {
    long c = 0, t = 0, z = 0;
    for (int i = 0; i < 200; i++)
        c += classify((long)(next_random() & 0xffff));
    t = table_sum(300);
    for (u64 n = 1; n < 60; n++)
        z += collatz(n);
    long f = fib(15);
    char *p = out;
    p = put_num(p, c);
    p = put_num(p, t);
    p = put_num(p, z);
    p = put_num(p, f);
    *p++ = '\n';
    sys_write(1, out, p - out);
    sys_exit(0);
}

/* The stack is 16-byte aligned at _start; acid_main expects a call. */
asm(".text\n.globl _start\n_start:\n  xor %ebp,%ebp\n  call acid_main\n  hlt\n");
