/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "target/inject.h"
#include "target/regs.h"

/* The [vdso] is two pages on x86-64; anything much larger is not a vdso we understand. */
#define VDSO_MAX_LEN (64 * 1024)
/* Stops other than the syscall stop we wait for (signals dequeued, group stops) tolerated per
 * step before the injection is abandoned. */
#define INJECT_MAX_STOPS  64
#define SYSCALL_INSN_WORD 0x050fUL /* `syscall` is 0f 05; a little-endian word puts 0f first */

static int mem_xfer(pid_t pid, uint64_t addr, void *buf, size_t len, bool write)
{
	struct iovec local = {.iov_base = buf, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
	ssize_t n;

	if (write)
		n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
	else
		n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

int target_mem_read(const struct target *t, uint64_t addr, void *buf, size_t len)
{
	return mem_xfer(t->pid, addr, buf, len, false);
}

int target_mem_write(const struct target *t, uint64_t addr, const void *buf, size_t len)
{
	return mem_xfer(t->pid, addr, (void *)buf, len, true);
}

static int maps_find_vdso(pid_t pid, uint64_t *ret_start, uint64_t *ret_end)
{
	char path[64], *line = NULL;
	size_t size = 0;
	int r = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (getline(&line, &size, f) > 0) {
		uint64_t start, end;

		if (!strstr(line, "[vdso]"))
			continue;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &start, &end) == 2 && end > start) {
			*ret_start = start;
			*ret_end = end;
			r = 0;
		}
		break;
	}
	free(line);
	fclose(f);
	return r;
}

/*
 * Any 0f 05 byte pair decodes as `syscall` when jumped to, whatever instruction it belongs to;
 * the vdso has real ones in its fallback paths. Executing one there writes no target memory.
 */
static void inject_probe_insn(struct target *t)
{
	uint64_t start = 0, end = 0;
	uint8_t *buf;

	if (t->syscall_insn_probed)
		return;
	t->syscall_insn_probed = true;
	t->syscall_insn = 0;
	if (maps_find_vdso(t->pid, &start, &end) < 0 || end - start > VDSO_MAX_LEN)
		return;
	buf = malloc(end - start);
	if (!buf)
		return;
	if (target_mem_read(t, start, buf, end - start) == 0) {
		for (uint64_t i = 0; i + 1 < end - start; i++) {
			if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
				t->syscall_insn = start + i;
				break;
			}
		}
	}
	free(buf);
}

/* Prefer a thread outside any syscall, then one not stopped by job control. */
static struct target_thread *inject_pick(struct target *t)
{
	int best_score = -1;

	if (t->inject_thread >= 0 && !t->threads[t->inject_thread].gone)
		return &t->threads[t->inject_thread];
	t->inject_thread = -1;
	for (size_t i = 0; i < t->nthreads; i++) {
		const struct target_thread *th = &t->threads[i];
		int score = (th->in_syscall ? 0 : 2) + (th->group_stop ? 0 : 1);

		if (th->gone || !th->seized || !th->stopped || score <= best_score)
			continue;
		best_score = score;
		t->inject_thread = (ssize_t)i;
	}
	return t->inject_thread >= 0 ? &t->threads[t->inject_thread] : NULL;
}

/*
 * Resuming the thread dequeues any signal pending for it, before it reaches our syscall. Its
 * handler must not run on the injected registers, so the signal is suppressed here and
 * re-queued at detach (detach_requeue() in target/attach.c).
 */
static void inject_stash(struct target_thread *th)
{
	if (th->nstashed < TARGET_MAX_STASHED_SIGNALS &&
	    ptrace(PTRACE_GETSIGINFO, th->tid, 0, &th->stashed[th->nstashed]) == 0)
		th->nstashed++;
	else
		th->nlost++;
}

/* PTRACE_SYSCALL until the syscall-entry (or -exit) stop of syscall nr. */
static int inject_step(struct target_thread *th, uint8_t want_op, long nr)
{
	for (unsigned int n = 0; n < INJECT_MAX_STOPS; n++) {
		struct __ptrace_syscall_info info;
		int status, r;

		if (ptrace(PTRACE_SYSCALL, th->tid, 0, 0) < 0)
			return -errno;
		r = target_wait_status(th->tid, TARGET_INJECT_TIMEOUT_MS, &status);
		if (r < 0)
			return r;
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			th->gone = true;
			return -ESRCH;
		}
		if (!WIFSTOPPED(status) || status >> 16 != 0) {
			/* PTRACE_EVENT_STOP: a group stop caught the thread; go on. */
			continue;
		}
		if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
			inject_stash(th);
			continue;
		}
		if (ptrace(PTRACE_GET_SYSCALL_INFO, th->tid, (void *)sizeof(info), &info) < 0)
			return -errno;
		if (info.op != want_op ||
		    (want_op == PTRACE_SYSCALL_INFO_ENTRY && info.entry.nr != (uint64_t)nr))
			return -EPROTO;
		return 0;
	}
	return -ELOOP;
}

static int inject_at(struct target_thread *th, uint64_t insn, long nr, const long args[6],
		     long *ret_result)
{
	struct user_regs_struct regs = th->regs;
	int r, k;

	regs.rip = insn;
	regs.rax = (unsigned long)nr;
	/* The kernel's restart logic runs on these registers as the thread leaves its stop
	 * (arch_do_signal_or_restart()); orig_rax = -1 says "not in a syscall", so it leaves
	 * them alone. */
	regs.orig_rax = (unsigned long)-1;
	regs.rdi = (unsigned long)args[0];
	regs.rsi = (unsigned long)args[1];
	regs.rdx = (unsigned long)args[2];
	regs.r10 = (unsigned long)args[3];
	regs.r8 = (unsigned long)args[4];
	regs.r9 = (unsigned long)args[5];
	r = target_regs_set(th->tid, &regs);
	if (r < 0)
		return r;
	th->regs_dirty = true;
	r = inject_step(th, PTRACE_SYSCALL_INFO_ENTRY, nr);
	if (r == 0)
		r = inject_step(th, PTRACE_SYSCALL_INFO_EXIT, nr);
	if (r == 0)
		r = target_regs_get(th->tid, &regs);
	if (r == 0)
		*ret_result = (long)regs.rax;
	if (th->gone)
		return r;
	/* The thread now sits in the injected syscall's exit stop, holding resume_regs. */
	k = target_regs_restore(th);
	return r < 0 ? r : k;
}

/* No vdso: write `syscall` over the word at the thread's rip, run it, put the word back. */
static int inject_poked(struct target_thread *th, long nr, const long args[6], long *ret_result)
{
	uint64_t addr = th->regs.rip & ~(uint64_t)7; /* a whole word, on rip's (mapped) page */
	unsigned long orig;
	int r, k;

	errno = 0;
	orig = (unsigned long)ptrace(PTRACE_PEEKTEXT, th->tid, (void *)(uintptr_t)addr, 0);
	if (errno)
		return -errno;
	if (ptrace(PTRACE_POKETEXT, th->tid, (void *)(uintptr_t)addr,
		   (void *)((orig & ~0xffffUL) | SYSCALL_INSN_WORD)) < 0)
		return -errno;
	r = inject_at(th, addr, nr, args, ret_result);
	k = ptrace(PTRACE_POKETEXT, th->tid, (void *)(uintptr_t)addr, (void *)orig) < 0 ? -errno
											: 0;
	return r < 0 ? r : k;
}

int target_inject_syscall(struct target *t, long nr, const long args[6], long *ret_result)
{
	struct target_thread *th;
	long result;
	int r;

	if (!t || !t->attached)
		return -ESRCH;
	th = inject_pick(t);
	if (!th)
		return -ESRCH;
	inject_probe_insn(t);
	if (t->syscall_insn)
		r = inject_at(th, t->syscall_insn, nr, args, &result);
	else
		r = inject_poked(th, nr, args, &result);
	if (r < 0)
		return r;
	*ret_result = result;
	return 0;
}
