/* placed.c: calls probed(s, kind) with strings in each kind of memory,
 * for checking that the no-stop path reads each as the stop path and the
 * kernel do, and never faults (docs/DESIGN.md §8).
 *
 *   placed N RACE   N rounds of nine calls, kinds 0..6, 8, 9:
 *     0 a literal: "rodata"             1 the main thread's stack: "stack-I"
 *     2 .bss: "bss-I"                   3 the heap: "heap-I"
 *     4 a thread's stack: "thread-I"    5 16 bytes without a NUL that end
 *                                         where an unmapped page starts
 *     6 an unmapped page                8 a page of .bss made PROT_NONE
 *     9 a page of the main stack made PROT_NONE
 *   then RACE calls of kind 7 from one thread with a pointer into a page
 *   that another thread maps and unmaps all the while ("race" or a
 *   fault; the program must not die of it). Prints "ok".
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

__attribute__((noinline, noipa)) long probed(const char *s, long kind) {
    asm volatile("" ::"r"(s) : "memory");
    return kind;
}

static char bss[64];
static char guarded[3 * 4096] __attribute__((aligned(4096)));

/* probe_none calls probed(kind) with a pointer to the middle page of
 * area (3 pages, the first page-aligned) made PROT_NONE meanwhile. */
static void probe_none(char *area, long kind) {
    char *page = (char *)(((unsigned long)area + 4095) & ~4095UL);
    strcpy(page, "hidden");
    if (mprotect(page, 4096, PROT_NONE) != 0)
        abort();
    probed(page, kind);
    if (mprotect(page, 4096, PROT_READ | PROT_WRITE) != 0)
        abort();
}

__attribute__((noinline)) static void probe_stack_none(void) {
    char frame[4 * 4096];
    asm volatile("" ::"r"(frame) : "memory");
    probe_none(frame, 9);
}
static long rounds;
static char *tail, *hole;
static _Atomic(char *) racing;
static atomic_int done;

static void *threaded(void *arg) {
    char buf[64];
    for (long i = 0; i < rounds; i++) {
        snprintf(buf, sizeof buf, "thread-%ld", i);
        probed(buf, 4);
    }
    return arg;
}

static void *mapper(void *arg) {
    while (!atomic_load(&done)) {
        char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            abort();
        strcpy(p, "race");
        atomic_store(&racing, p);
        munmap(p, 4096);
    }
    return arg;
}

int main(int argc, char **argv) {
    rounds = argc > 1 ? atol(argv[1]) : 3;
    long race = argc > 2 ? atol(argv[2]) : 0;
    char *pages = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED)
        return 1;
    munmap(pages + 4096, 4096);
    tail = pages + 4096 - 16;
    memset(tail, 'x', 16);
    hole = pages + 4096 + 100;
    char stack[64];
    char *heap = malloc(64);
    for (long i = 0; i < rounds; i++) {
        snprintf(stack, sizeof stack, "stack-%ld", i);
        snprintf(bss, sizeof bss, "bss-%ld", i);
        snprintf(heap, 64, "heap-%ld", i);
        probed("rodata", 0);
        probed(stack, 1);
        probed(bss, 2);
        probed(heap, 3);
        pthread_t th;
        if (i == 0) {
            pthread_create(&th, NULL, threaded, NULL);
            pthread_join(th, NULL);
        }
        probed(tail, 5);
        probed(hole, 6);
        probe_none(guarded, 8);
        probe_stack_none();
    }
    if (race > 0) {
        pthread_t m;
        strcpy(bss, "race");
        atomic_store(&racing, bss);
        pthread_create(&m, NULL, mapper, NULL);
        for (long i = 0; i < race; i++)
            probed(atomic_load(&racing), 7);
        atomic_store(&done, 1);
        pthread_join(m, NULL);
    }
    free(heap);
    puts("ok");
    return 0;
}
