// sdtlib.c: a library with an SDT probe behind a semaphore, loaded by
// sdt.c with dlopen after the program started.
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

unsigned short ptsdtlib_call_semaphore __attribute__((section(".probes")));
long ptsdt_lib_fired;

void ptsdt_lib_call(long v) {
    if (ptsdtlib_call_semaphore) {
        ptsdt_lib_fired++;
        STAP_PROBE1(ptsdtlib, call, v);
    }
}
