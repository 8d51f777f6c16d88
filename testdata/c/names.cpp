// names.cpp: functions to name by C++ names and globs.
//
//   names N   calls ns::Foo::bar(int) N times, over(int) N times,
//             over(double) 2N times, twice<int> N times, twice<long> 2N
//             times, and the C functions parse_a, parse_b and parse_c N,
//             2N and 3N times; prints the sum.
#include <cstdio>
#include <cstdlib>

namespace ns {
struct Foo {
    long base;
    __attribute__((noinline)) long bar(int x);
};
long Foo::bar(int x) { return base + x; }
} // namespace ns

__attribute__((noinline)) long over(int x) { return x + 1; }
__attribute__((noinline)) long over(double x) { return (long)(x * 2); }

template <typename T> __attribute__((noinline)) T twice(T v) {
    asm volatile("" ::: "memory");
    return v + v;
}

extern "C" {
__attribute__((noinline)) long parse_a(long x) { asm volatile(""); return x + 1; }
__attribute__((noinline)) long parse_b(long x) { asm volatile(""); return x + 2; }
__attribute__((noinline)) long parse_c(long x) { asm volatile(""); return x + 3; }
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 3, s = 0;
    ns::Foo f{7};
    for (long i = 0; i < n; i++) {
        s += f.bar((int)i);
        s += over((int)i);
        s += over((double)i) + over((double)i + 0.5);
        s += twice<int>((int)i);
        s += twice<long>(i) + twice<long>(i + 1);
        s += parse_a(i);
        for (int k = 0; k < 2; k++)
            s += parse_b(i);
        for (int k = 0; k < 3; k++)
            s += parse_c(i);
    }
    std::printf("sum=%ld\n", s);
    return 0;
}
