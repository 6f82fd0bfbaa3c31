/* Child processes (qemu-nbd, qemu-img) that cannot outlive the tool, hold
 * none of its descriptors and can always be ended at once. */
#ifndef Q2S_CHILD_H
#define Q2S_CHILD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "qcow2-to-stdout.h"

/* Limits for QEMU programs that open an image from someone else, as
 * OpenStack sets for qemu-img (oslo.concurrency prlimit): 1 GiB of address
 * space (qemu-nbd serving a qcow2 takes about 240 MiB) and, for qemu-img,
 * which ends by itself, 30 s of CPU.  qemu-nbd serves as long as the
 * conversion lasts: its time is bounded by the wait for each reply. */
#define Q2S_UNTRUSTED_ADDRESS_SPACE (UINT64_C(1) << 30)
#define Q2S_UNTRUSTED_CPU_SECONDS 30

struct q2s_child_spec {
    char *const *argv;        /* argv[0] is looked up on $PATH */
    int stdout_fd;            /* -1: /dev/null */
    int stderr_fd;            /* -1: /dev/null */
    /* -1, or a listening socket passed as descriptor 3 with LISTEN_PID
     * and LISTEN_FDS=1 (systemd socket activation, sd_listen_fds(3)). */
    int listen_fd;
    /* Resource limits for an image from someone else; 0 for none. */
    uint64_t address_space_bytes;
    uint64_t cpu_seconds;
};

/* Starts a child whose standard input and output are /dev/null, which
 * gets no other descriptor of ours, and which the kernel kills when the
 * calling thread ends, even by SIGKILL (PR_SET_PDEATHSIG): call it from a
 * thread that lives as long as the child should.  0 with *pid, or -1. */
int q2s_child_spawn(const struct q2s_child_spec *spec, pid_t *pid,
                    struct q2s_error *err);

/* Kills the child (SIGKILL: it only ever reads) and reaps it. */
void q2s_child_kill(pid_t pid);

/* Reaps a child that was asked to exit; returns its wait status.  While
 * waiting, *interrupted becoming non-zero (it may be NULL) kills it. */
int q2s_child_wait(pid_t pid, const volatile sig_atomic_t *interrupted);

/* Whether a program is on $PATH. */
bool q2s_on_path(const char *program);

#endif
