/* SPDX-License-Identifier: MIT */
/*
 * Registers of held threads: capture at attach, restore after injection, and the JSON form
 * recorded in the image metadata.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <sys/user.h>

#include "target/attach.h"

/* Read th's general registers; compute its resume registers. */
int target_regs_capture(struct target_thread *th);
/*
 * Read every held thread's FP/extended state and signal state, for the image
 * (target_regs_json_put()): not needed to inject system calls, so a hold whose registers no
 * image takes skips it. With may_thread, the signal states (one /proc file each) are read on a
 * second thread while this one reads the FP states (ptrace: only the tracer thread may); not
 * in a child of a multi-threaded fork(), where starting a thread is not safe (target/spawner.h).
 */
int target_regs_capture_state(struct target *t, bool may_thread);

/* If th stopped inside an rseq critical section, make it resume at the section's abort_ip. */
int target_regs_rseq_fixup(const struct target *t, struct target_thread *th);

/* Write th->resume_regs back into the (stopped) thread. */
int target_regs_restore(const struct target_thread *th);

int target_regs_get(pid_t tid, struct user_regs_struct *ret);
int target_regs_set(pid_t tid, const struct user_regs_struct *regs);

/*
 * [{"tid":N, "regs":{"rip":"0x...", ...}, "in_syscall":bool, "restart":bool,
 *   "rseq_abort":bool, "group_stop":bool, "fpstate_format":"xsave"|"fxsave", "fpstate":"<base64>"},
 * ...] "regs" are the registers the thread resumes with: for a thread stopped in an interrupted
 * syscall, rip points back at the syscall instruction and rax holds the syscall to re-run;
 * for one caught inside an rseq critical section, rip is the section's abort handler. Also
 * "signals": {"pending": "0x...", "blocked": "0x..."} when /proc says, and "stop_regs" (where
 * it stopped) when those differ. target_regs_json_put() writes it, NUL-ended, into out, which
 * has room for target_regs_json_size() bytes, and returns where the NUL is. Formatted by hand,
 * not with jansson or stdio: it runs in the hold (regs.c).
 */
size_t target_regs_json_size(const struct target *t);
char *target_regs_json_put(const struct target *t, char *out);
