/* SPDX-License-Identifier: MIT */
/* Between the holder (holder.c) and the spawner that forks it (spawner.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The most fds one message between the daemon, the spawner and a holder carries. */
#define HOLDER_MAX_FDS 3

/*
 * The holder's whole life, in the child the spawner forked: attach to pid, create the
 * userfaultfd, serve the daemon on sock; whatever happens to the daemon, the target ends up
 * released. registers: whether the first hold reports the threads' registers (later holds
 * always do). may_thread: whether it may start a thread (its spawner was forked by a process
 * of one thread: target/spawner.h). Its exit status.
 */
int holder_child_main(int sock, pid_t pid, int pidfd, int devfd, bool registers, bool may_thread);

/* Sends len bytes of buf as one message, with nfds (<= HOLDER_MAX_FDS) fds attached (SCM_RIGHTS).
 * 0, or -errno. */
int holder_sendmsg(int sock, const void *buf, size_t len, const int *fds, int nfds);
