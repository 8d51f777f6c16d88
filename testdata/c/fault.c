/* fault.c: loads through a bad pointer in load_word(), recovers with a
 * SIGSEGV handler that siglongjmps, and reports where the fault was seen.
 *
 *   fault N   does N good loads and N faulting loads.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

long load_word(long *p);
asm(".text\n.globl load_word\n.type load_word,@function\n"
    "load_word:\n"
    "  mov (%rdi),%rax\n" /* the probed instruction, faults for bad p */
    "  ret\n"
    ".size load_word,.-load_word\n");

static sigjmp_buf env;
static volatile long faults, at_load_word, bad_addr;

static void on_segv(int sig, siginfo_t *si, void *uc_) {
    ucontext_t *uc = uc_;
    faults++;
    if (uc->uc_mcontext.gregs[REG_RIP] == (long)load_word)
        at_load_word++;
    if ((long)si->si_addr == 0x10)
        bad_addr++;
    siglongjmp(env, 1);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10, good = 0, x = 42;
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    for (long i = 0; i < n; i++) {
        good += load_word(&x);
        if (sigsetjmp(env, 1) == 0)
            load_word((long *)0x10);
    }
    printf("good=%ld faults=%ld at_load_word=%ld bad_addr=%ld\n", good, faults, at_load_word, bad_addr);
    return 0;
}
