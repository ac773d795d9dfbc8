/* SPDX-License-Identifier: MIT */
/*
 * Holding a running process: every thread seized and stopped with ptrace, its registers
 * captured, so that the engine can inject syscalls (target/inject.h), obtain a userfaultfd for
 * its mm (target/uffd.h) and arm write protection while nothing in the target runs.
 *
 * ptrace is per thread: attach, inject and detach a target from the same daemon thread. The
 * ptrace stops are collected with waitpid(tid, __WALL): no other daemon thread may reap with
 * waitpid(-1, __WALL) while a target is attached, or it steals them.
 *
 * Not handled: a thread in an uninterruptible sleep longer than TARGET_STOP_TIMEOUT_MS fails the
 * attach (-ETIMEDOUT) and stays traced, since PTRACE_DETACH needs a stopped tracee: when it
 * stops it waits for us, so target_detach() leaves the target attached and is to be retried.
 * Attaching from a thread that exits after the job bounds this: the kernel detaches every tracee
 * of an exiting tracer and drops their pending interrupt (kernel/ptrace.c: exit_ptrace()).
 * Also not handled: an execve() in the target while it is being attached.
 */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

/* How long one thread may take to reach a ptrace stop during attach (a thread in an
 * uninterruptible sleep, state D, stops only when that sleep ends). */
#define TARGET_STOP_TIMEOUT_MS 5000
/* How long one injected syscall may take. */
#define TARGET_INJECT_TIMEOUT_MS 30000
/* Signals dequeued by a thread while it ran an injected syscall, kept for re-delivery. */
#define TARGET_MAX_STASHED_SIGNALS 8

enum target_error_kind {
	TARGET_ERR_NONE = 0,
	TARGET_ERR_NOPROC,  /* -ESRCH: no such process */
	TARGET_ERR_ZOMBIE,  /* -EOWNERDEAD: the process has exited, nobody reaped it yet */
	TARGET_ERR_KTHREAD, /* -EINVAL: a kernel thread, it has no user memory */
	TARGET_ERR_SELF,    /* -EDEADLK: our own process */
	TARGET_ERR_THREAD,  /* -EINVAL: a thread id, not a process id */
	TARGET_ERR_PERM,    /* -EPERM: we may not ptrace it */
	TARGET_ERR_TRACED,  /* -EBUSY: a debugger (or another snapshot) already traces it */
	TARGET_ERR_ARCH,    /* -EOPNOTSUPP: not a 64-bit x86 process */
	TARGET_ERR_TIMEOUT, /* -ETIMEDOUT: a thread did not stop */
	TARGET_ERR_SYSTEM,  /* anything else; msg says which call failed */
};

struct target_error {
	enum target_error_kind kind;
	char msg[256]; /* for a human: what was wrong and what to do */
};

struct target_fpstate {
	uint8_t *data;
	size_t len;
	bool xstate; /* true: NT_X86_XSTATE (XSAVE layout); false: NT_PRFPREG (FXSAVE, 512 bytes) */
};

/* One thread of the target. Read-only for callers: change it through target_* functions. */
struct target_thread {
	pid_t tid;
	bool seized;	 /* we are its tracer */
	bool stopped;	 /* it sits in a ptrace stop */
	bool gone;	 /* it exited (killed) while we held it */
	bool foreign;	 /* auto-attached clone child outside the thread group: let go */
	bool in_syscall; /* it stopped on its way out of a syscall (orig_rax >= 0) */
	bool restart;	 /* that syscall was interrupted and is restarted when the thread resumes */
	bool rseq_abort; /* it stopped inside an rseq critical section and resumes at its abort */
	bool group_stop; /* it is stopped by job control (SIGSTOP and friends) */
	bool regs_dirty; /* an injection changed its registers: detach writes resume_regs */
	struct user_regs_struct regs;	     /* as the kernel reported them at the stop */
	struct user_regs_struct resume_regs; /* what the thread continues with (restart applied) */
	struct target_fpstate fp;	     /* target_regs_capture_state() */
	uint64_t sig_pending, sig_blocked;   /* target_regs_capture_state(), if sig_read */
	bool sig_read;
	unsigned int nstashed;
	unsigned int nlost; /* signals dropped because the stash was full */
	siginfo_t stashed[TARGET_MAX_STASHED_SIGNALS];
};

struct target {
	pid_t pid;
	int pidfd;
	bool attached;
	size_t nthreads;
	size_t capacity;
	struct target_thread *threads;
	/* Where injected syscalls execute: a `syscall` instruction (0f 05) in the target's [vdso],
	 * found once; 0 means none, and injection pokes one at the thread's rip instead. */
	bool syscall_insn_probed;
	uint64_t syscall_insn;
	ssize_t inject_thread; /* index of the thread injections run on, -1 until chosen */
	size_t nborn; /* threads born during attach, held from birth through PTRACE_O_TRACECLONE */
};

/*
 * Seize and stop every thread of process pid, capture their general registers (their FP state:
 * target_regs_capture_state()). On failure returns
 * -errno (see enum target_error_kind), fills err (may be NULL) and leaves the process as it was.
 */
int target_attach(pid_t pid, struct target **ret, struct target_error *err);
/*
 * target_attach(), only to the process pidfd refers to (pidfd -EBADF: any): if that process
 * exited and pid now names another, -ESRCH (TARGET_ERR_NOPROC) and the other is never touched
 * but in a window of a few system calls, where it is at most stopped and let go at once.
 */
int target_attach_pinned(pid_t pid, int pidfd, struct target **ret, struct target_error *err);

/*
 * Restore injected registers, re-deliver stashed signals, let every thread go. -ETIMEDOUT: a
 * thread never stopped and is still traced; call again later (target_free() tries once more).
 */
int target_detach(struct target *t);

/* Detach if still attached, release everything. NULL is fine. */
void target_free(struct target *t);

size_t target_nthreads(const struct target *t);
const struct target_thread *target_thread_at(const struct target *t, size_t i);
pid_t target_pid(const struct target *t);
int target_pidfd(const struct target *t);

/*
 * For the target-*.c modules: wait for the next wait status of tid (a ptrace stop or its
 * exit), giving up after timeout_ms with -ETIMEDOUT. In a thread that blocks SIGCHLD it
 * sleeps until the stop's SIGCHLD arrives (a SIGCHLD it takes that is not about tid is raised
 * again before it returns); otherwise it polls, adding up to a millisecond to every wait.
 */
int target_wait_status(pid_t tid, unsigned int timeout_ms, int *ret_status);

/*
 * For a single-threaded tracer process (the holder), before it attaches: SIGCHLD to its
 * default action and blocked, so that target_wait_status() sleeps until each ptrace stop
 * instead of polling for it.
 */
int target_wait_prepare(void);
