#ifndef QKDB_CSIGNAL_H
#define QKDB_CSIGNAL_H

/// Ctrl-C for long commands, async-signal-safe: the SIGINT handler only increments an atomic
/// counter (and, on the second Ctrl-C, calls _exit(130)); the trainer polls the counter between
/// steps and checkpoints. Nothing in the handler can block or allocate.
void qk_sigint_install(void);

/// How many SIGINTs arrived since `qk_sigint_install`.
int qk_sigint_count(void);

#endif
