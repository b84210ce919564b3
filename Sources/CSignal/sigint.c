#include "CSignal.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static atomic_int interrupts;

static void on_sigint(int sig) {
    (void)sig;
    // The second Ctrl-C means "now": no checkpoint, exit code 128 + SIGINT.
    if (atomic_fetch_add(&interrupts, 1) >= 1) _exit(130);
}

void qk_sigint_install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
}

int qk_sigint_count(void) { return atomic_load(&interrupts); }
