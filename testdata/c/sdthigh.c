// sdthigh.c: an SDT probe whose arguments are high-byte registers, which
// gcc's STAP_PROBE operands never give but a hand-written probe may:
// ptsdt:high has -1@%ah (signed) and 1@%bh (unsigned), both holding the
// low byte of v, written with STAP_PROBE_ASM.
//
//   sdthigh   calls high(v) for v = -3..3 and prints the sum.
#include <sys/sdt.h>
#include <stdio.h>

__attribute__((noinline)) long high(long v) {
    long out;
    __asm__ volatile("movq %1, %%rax\n\t"
                     "shlq $8, %%rax\n\t"
                     "movq %%rax, %%rbx\n\t"
                     "orq $0x7f, %%rax\n\t" /* %al set: a probe reading %al instead shows it */
                     STAP_PROBE_ASM(ptsdt, high, -1@%%ah 1@%%bh)
                     "movq %%rbx, %0\n\t"
                     : "=r"(out)
                     : "r"(v)
                     : "rax", "rbx", "memory");
    return out >> 8;
}

int main(void) {
    long s = 0;
    for (long v = -3; v <= 3; v++)
        s += high(v);
    printf("%ld\n", s);
    return 0;
}
