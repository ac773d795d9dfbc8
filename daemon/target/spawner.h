/* SPDX-License-Identifier: MIT */
/*
 * The spawner: the process every holder (target/holder.h) is forked from.
 *
 * After fork() in a multi-threaded process, the child may call only async-signal-safe functions
 * until it execs (signal-safety(7)): a lock another thread held at the moment of the fork
 * (malloc's, stdio's, a sanitizer allocator's) stays locked forever in the child's copy. The
 * holder allocates (opendir(), the target's thread list, JSON), and the daemon runs jobs, a
 * signal thread and a progress printer. So holders are not forked from the daemon but from the
 * spawner: a child forked while the daemon still has one thread, which only waits for requests
 * and forks, and never starts a thread. (Seen: GCC 12's ASan does not take its allocator's lock
 * around fork(), and a holder forked while a job's thread was allocating waited forever in
 * opendir().) Holders then share nothing copy-on-write with the daemon's later memory either.
 *
 * A holder of a spawner forked from a process of one thread may start a thread of its own (it
 * reads the threads' signal states beside the FP states: target_regs_capture_state()); one of a
 * spawner restarted later, from a job's thread, may not.
 *
 * The spawner is one per process, like the signal mask it is forked with: its state is the
 * one file-scope exception to "no globals". It ends when the daemon closes its socket (exit,
 * death); holders live on until they have released their targets.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/*
 * Forks the spawner. Call it while the process has a single thread (after privileges are
 * dropped: the holders get the spawner's credentials). 0, or -errno. Without it, the first
 * holder_spawn() starts it, from whatever thread asks.
 */
int holder_spawner_start(void);
/* Closes the spawner's socket and reaps it. Holders it forked are not waited for. */
void holder_spawner_stop(void);
/*
 * Has the spawner fork a holder that runs holder_child_main(sock, pid, pidfd, devfd,
 * registers) (pidfd, devfd: -EBADF for none). *ret_pidfd: a pidfd of the holder, readable once
 * it has exited. 0, or -errno (the spawner gone and not restartable, fork() failed).
 */
int holder_spawn(int sock, pid_t pid, int pidfd, int devfd, bool registers, int *ret_pidfd);
