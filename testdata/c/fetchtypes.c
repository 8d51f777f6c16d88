// fetchtypes.c: a struct to read with the kernel's remaining fetch types
// (bitfields, char, arrays, string arrays).
//
//   fetchtypes N   calls take(&r, i) N times; r.flags has 0x5 in bits
//                  0..3 and i in bits 4..7, r.tag is "hi" and the digit of
//                  i, r.vals is {i, -i, 7}, r.names {"even" or "odd",
//                  "pair"} (at offset 16), r.fn the address 4 bytes into
//                  take (at offset 32), r.none 0.
#include <stdio.h>
#include <stdlib.h>

struct rec {
    unsigned int flags;
    char tag[4];
    short vals[3];
    const char *names[2];
    const void *fn;
    const void *none;
};

__attribute__((noinline)) long take(struct rec *r, long x) {
    asm volatile("" ::"r"(r) : "memory");
    return r->flags + r->tag[2] + r->vals[0] + r->vals[1] + r->vals[2] + r->names[0][0] + x;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 3, s = 0;
    for (long i = 0; i < n; i++) {
        struct rec r = {.flags = 0xabcd0000u | (unsigned)((i & 15) << 4) | 0x5,
                        .tag = {'h', 'i', (char)('0' + i % 10), 0},
                        .vals = {(short)i, (short)-i, 7},
                        .names = {i % 2 ? "odd" : "even", "pair"},
                        .fn = (const char *)take + 4};
        s += take(&r, i);
    }
    printf("%ld\n", s);
    return 0;
}
