/* SPDX-License-Identifier: MIT */
/*
 * The holder: a child process that does all the ptrace work of a snapshot (attach, syscall
 * injection, creating the userfaultfd, holding the threads, detaching). It exists so that
 * killing uffsnapd at any moment, even in the middle of an injection, can never leave a
 * target thread running with injected registers: the holder notices that its socket to the
 * daemon closed, finishes or undoes what it was doing, restores every register and detaches.
 * (The daemon's death also drops all write protection: the kernel releases the userfaultfd
 * with the daemon's last reference to it.)
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct holder;

struct holder_info {
	int uffd;	     /* a userfaultfd bound to the target's mm; UFFDIO_API not yet called */
	char *threads_json;  /* every thread's registers, for the image metadata: JSON text of an
			      * array (target_regs_write_json()), kept as text, never parsed */
	uint64_t *stack_addrs; /* stack pointers and (non-main) TLS bases of the held threads */
	size_t nstack_addrs;
	unsigned nthreads;
	uint64_t held_at_ns; /* CLOCK_MONOTONIC, as the holder saw it: when it began to stop the
			      * threads (the daemon asked for the hold a little earlier) */
};

/*
 * For a child that must outlive the daemon to undo what it did to a target (the holder, a QEMU
 * guest's guardian): its own session, terminal and termination signals ignored, last in line
 * for the OOM killer where allowed (holder.c says why).
 */
void holder_isolate(void);
/*
 * Starts a holder (from the spawner: target/spawner.h), which attaches to pid and creates the
 * userfaultfd. On success the target is held and ret_info filled (the caller owns uffd,
 * threads_json and stack_addrs). On failure, -errno and msg (one line for a human); the target
 * was never changed, or is released again. pidfd (or -EBADF): the process pid must still name
 * (target_attach_pinned()), at every hold. registers: false when no image will take this
 * hold's registers (a later hold's will): threads_json is then "[]", and the hold is shorter
 * by reading no FP state and no signal state.
 */
int holder_start(pid_t pid, int pidfd, int devuffd_fd, bool registers, struct holder **ret,
		 struct holder_info *ret_info, char *msg, size_t msglen);
/*
 * Lets the target run again (after the last hold: the snapshot instant). ret_at_ns (may be
 * NULL): when it did, on CLOCK_MONOTONIC, as the holder saw it (our own wake-up may be later).
 */
int holder_release(struct holder *h, uint64_t *ret_at_ns, char *msg, size_t msglen);
/*
 * Holds the released target again: every thread stopped (threads born since included),
 * ret_info filled with their registers and stack addresses (no uffd). Then holder_release().
 */
int holder_hold(struct holder *h, struct holder_info *ret_info, char *msg, size_t msglen);
/*
 * While the target is held: creates another userfaultfd bound to its mm (UFFDIO_API not yet
 * called), e.g. a synchronous one beside an asynchronous one. Then holder_release().
 */
int holder_new_uffd(struct holder *h, int *ret_uffd, char *msg, size_t msglen);
/* Releases the target if still held, waits for the holder to end. NULL is fine. */
void holder_free(struct holder *h);
void holder_info_clear(struct holder_info *i);
