// cxx.cpp: C++ exceptions thrown through probed frames.
//
//   cxx N   N times: outer() -> middle() (try/catch) -> thrower() -> deep()
//           which throws; middle catches; outer and middle return normally.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

__attribute__((noinline)) long deep(long x) {
    if (x >= 0)
        throw std::runtime_error("deep");
    return x;
}
__attribute__((noinline)) long thrower(long x) { return deep(x) + 1; }
__attribute__((noinline)) long middle(long x) {
    try {
        return thrower(x) + 10;
    } catch (const std::exception &) {
        return x * 2;
    }
}
__attribute__((noinline)) long outer(long x) { return middle(x) + 1000; }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10, s = 0;
    for (long i = 0; i < n; i++)
        s += outer(i);
    std::printf("sum=%ld\n", s);
    return 0;
}
