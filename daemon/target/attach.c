/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sys/linux-compat.h"
#include "target/attach.h"
#include "target/regs.h"

/* A process that creates threads faster than we can seize them is given up on after this many
 * scans of /proc/PID/task, rather than looped on forever. */
#define ATTACH_MAX_ROUNDS 1000
/* Longest sleep waiting for a SIGCHLD before waitpid() is asked again: see
 * target_wait_status(). */
#define WAIT_SLICE_MS 10
#define SEIZE_OPTIONS	  (PTRACE_O_TRACECLONE | PTRACE_O_TRACESYSGOOD)

/* What /proc tells about one task. */
struct proc_task {
	char state;	     /* /proc/TID/stat field 3: R, S, D, Z, X, t, T, ... */
	unsigned long flags; /* field 9: PF_* */
	pid_t tgid;
	pid_t tracer;
	long threads;
};

enum seize_result {
	SEIZE_NEW,  /* seized and interrupted */
	SEIZE_OURS, /* already ours: a clone child auto-attached through PTRACE_O_TRACECLONE */
	SEIZE_GONE, /* it exited meanwhile */
};

static int err_set(struct target_error *err, enum target_error_kind kind, int r, const char *fmt,
		   ...) __attribute__((format(printf, 4, 5)));
static int err_set(struct target_error *err, enum target_error_kind kind, int r, const char *fmt,
		   ...)
{
	va_list ap;

	err->kind = kind;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return r;
}

static int read_small_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	int r;

	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, buf, size - 1);
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	buf[n] = '\0';
	return 0;
}

static long status_field(const char *status, const char *name)
{
	const char *p = strstr(status, name);

	return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

static int proc_task_read(pid_t tid, struct proc_task *ret)
{
	char path[64], buf[4096];
	struct proc_task pt;
	const char *p;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", tid);
	r = read_small_file(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	/* The command name may hold spaces and parentheses: fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %lu", &pt.state, &pt.flags) != 2)
		return -EIO;
	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	r = read_small_file(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	pt.tgid = (pid_t)status_field(buf, "\nTgid:");
	pt.tracer = (pid_t)status_field(buf, "\nTracerPid:");
	pt.threads = status_field(buf, "\nThreads:");
	*ret = pt;
	return 0;
}

static bool proc_task_dead(const struct proc_task *pt)
{
	return pt->state == 'Z' || pt->state == 'X';
}

/* Reject, with a distinct error each, what can never be attached to. */
static int attach_check(pid_t pid, struct target_error *err)
{
	struct proc_task pt;
	int r = proc_task_read(pid, &pt);

	if (r == -ESRCH)
		return err_set(err, TARGET_ERR_NOPROC, r, "no process with pid %d", pid);
	if (r < 0)
		return err_set(err, TARGET_ERR_SYSTEM, r, "cannot read /proc/%d: %s", pid,
			       strerror(-r));
	if (pt.tgid == getpid())
		return err_set(err, TARGET_ERR_SELF, -EDEADLK,
			       "pid %d is part of this very process: cannot snapshot ourselves",
			       pid);
	if (pt.flags & PF_KTHREAD)
		return err_set(err, TARGET_ERR_KTHREAD, -EINVAL,
			       "pid %d is a kernel thread: it has no user memory to snapshot", pid);
	if (pt.tgid != pid)
		return err_set(err, TARGET_ERR_THREAD, -EINVAL,
			       "%d is a thread of process %d: give the process id", pid, pt.tgid);
	/* A leader that exited while other threads live is a zombie too, but the process is not. */
	if (proc_task_dead(&pt) && pt.threads <= 1)
		return err_set(err, TARGET_ERR_ZOMBIE, -EOWNERDEAD,
			       "pid %d is a zombie: it has exited and has no memory left", pid);
	if (pt.tracer > 0)
		return err_set(
		    err, TARGET_ERR_TRACED, -EBUSY,
		    "pid %d is already traced by pid %d (a debugger or another snapshot)", pid,
		    pt.tracer);
	return 0;
}

static struct target_thread *thread_add(struct target *t, pid_t tid)
{
	struct target_thread *th;

	if (t->nthreads == t->capacity) {
		size_t cap = t->capacity ? t->capacity * 2 : 16;

		th = reallocarray(t->threads, cap, sizeof(*th));
		if (!th)
			return NULL;
		t->threads = th;
		t->capacity = cap;
	}
	th = &t->threads[t->nthreads++];
	*th = (struct target_thread){.tid = tid, .seized = true};
	return th;
}

static void thread_remove(struct target *t, size_t i)
{
	free(t->threads[i].fp.data);
	memmove(&t->threads[i], &t->threads[i + 1], (t->nthreads - i - 1) * sizeof(t->threads[0]));
	t->nthreads--;
}

static bool thread_known(const struct target *t, pid_t tid)
{
	for (size_t i = 0; i < t->nthreads; i++)
		if (t->threads[i].tid == tid)
			return true;
	return false;
}

/* PTRACE_SEIZE said EPERM: find out why, for this one thread. */
static int seize_eperm(struct target *t, pid_t tid, struct target_error *err)
{
	struct proc_task pt;
	int r;

	/* PTRACE_INTERRUPT succeeds only on our own tracees (ptrace_check_attach()). */
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) == 0)
		return SEIZE_OURS;
	r = proc_task_read(tid, &pt);
	if (r == -ESRCH || (r >= 0 && proc_task_dead(&pt)))
		return SEIZE_GONE; /* ptrace_attach() refuses tasks with exit_state set */
	if (r >= 0 && pt.tracer > 0)
		return err_set(
		    err, TARGET_ERR_TRACED, -EBUSY,
		    "pid %d is already traced by pid %d (a debugger or another snapshot)", t->pid,
		    pt.tracer);
	return err_set(err, TARGET_ERR_PERM, -EPERM,
		       "not permitted to ptrace pid %d (need CAP_SYS_PTRACE or same user)", t->pid);
}

static int seize_one(struct target *t, pid_t tid, struct target_error *err)
{
	if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)SEIZE_OPTIONS) < 0) {
		int r = -errno;

		if (r == -ESRCH)
			return SEIZE_GONE;
		if (r == -EPERM)
			return seize_eperm(t, tid, err);
		return err_set(err, TARGET_ERR_SYSTEM, r, "cannot seize thread %d of pid %d: %s",
			       tid, t->pid, strerror(-r));
	}
	/* Seized threads run on; the interrupt stops each in PTRACE_EVENT_STOP. */
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) {
		int r = -errno;

		/* Seized but gone before the interrupt: it exits, waitpid() will say so. */
		if (r != -ESRCH)
			return err_set(err, TARGET_ERR_SYSTEM, r, "cannot interrupt thread %d: %s",
				       tid, strerror(-r));
	}
	return SEIZE_NEW;
}

/* Seize every thread /proc lists that we do not hold yet; *ret_new counts them. */
static int attach_scan(struct target *t, size_t *ret_new, struct target_error *err)
{
	char path[64];
	struct dirent *de;
	size_t added = 0;
	DIR *dir;
	int r = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", t->pid);
	dir = opendir(path);
	if (!dir)
		return err_set(err, TARGET_ERR_NOPROC, -ESRCH, "pid %d exited", t->pid);
	while ((de = readdir(dir))) {
		pid_t tid = (pid_t)strtol(de->d_name, NULL, 10);

		if (tid <= 0 || thread_known(t, tid))
			continue;
		r = seize_one(t, tid, err);
		if (r < 0)
			break;
		if (r == SEIZE_GONE)
			continue;
		if (r == SEIZE_OURS)
			t->nborn++;
		if (!thread_add(t, tid)) {
			r = err_set(err, TARGET_ERR_SYSTEM, -ENOMEM, "out of memory");
			break;
		}
		added++;
	}
	closedir(dir);
	if (r < 0)
		return r;
	*ret_new = added;
	return 0;
}

/* waitpid() has no timeout: yield first (a stop is usually microseconds away), then back off
 * up to a millisecond between polls. */
static void wait_backoff(unsigned int spins)
{
	if (spins < 64) {
		sched_yield();
	} else {
		unsigned int shift = spins - 64 < 10 ? spins - 64 : 10;
		struct timespec ts = {0, 1000L << shift};

		nanosleep(&ts, NULL);
	}
}

/*
 * Sleep until a SIGCHLD is pending or left_ms pass. A tracer gets SIGCHLD for every ptrace
 * stop and exit of its tracees (kernel/signal.c: do_notify_parent_cldstop(), for_ptracer),
 * sent to its process. Returns true if it took one that someone else may be waiting for:
 * anything but a ptrace stop (CLD_TRAPPED) or news of tid; the caller raises it again on the
 * way out. Ptrace stops are not raised again: other waiters for those sleep in slices too.
 */
static bool wait_sigchld(pid_t tid, long left_ms)
{
	struct timespec ts = {left_ms / 1000, (left_ms % 1000) * 1000000L};
	sigset_t set;
	siginfo_t si;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (sigtimedwait(&set, &si, &ts) != SIGCHLD)
		return false;
	return si.si_code != CLD_TRAPPED && si.si_pid != tid;
}

int target_wait_prepare(void)
{
	struct sigaction sa = {.sa_handler = SIG_DFL};
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		return -errno;
	return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/*
 * With SIGCHLD blocked in this thread, sleep in sigtimedwait() for the stop's SIGCHLD: no
 * polling latency. A process-directed SIGCHLD can be taken by another thread that has it
 * unblocked while this one is between waitpid() and sigtimedwait(); the sleep is therefore
 * cut into slices of WAIT_SLICE_MS, which bound the latency such a lost wakeup can add.
 * Otherwise poll (wait_backoff()).
 */
int target_wait_status(pid_t tid, unsigned int timeout_ms, int *ret_status)
{
	struct timespec start, now;
	unsigned int spins = 0;
	bool block, reraise = false;
	sigset_t cur;
	int r;

	block = pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0 && sigismember(&cur, SIGCHLD) == 1;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int status;
		pid_t w = waitpid(tid, &status, __WALL | WNOHANG);
		long left;

		if (w < 0 && errno != EINTR) {
			r = errno == ECHILD ? -ESRCH : -errno;
			break;
		}
		if (w == tid) {
			*ret_status = status;
			r = 0;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = (long)timeout_ms - ((now.tv_sec - start.tv_sec) * 1000 +
					   (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		if (block)
			reraise |= wait_sigchld(tid, left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS);
		else
			wait_backoff(spins++);
	}
	/* Standard signals coalesce: one SIGCHLD stands for all we took that were not ours. */
	if (reraise)
		kill(getpid(), SIGCHLD);
	return r;
}

/* A thread we hold cloned: the child is traced already (PTRACE_O_TRACECLONE). */
static int attach_clone_child(struct target *t, pid_t parent, struct target_error *err)
{
	unsigned long msg;
	struct target_thread *th;
	char path[64];

	if (ptrace(PTRACE_GETEVENTMSG, parent, 0, &msg) < 0)
		return err_set(err, TARGET_ERR_SYSTEM, -errno, "PTRACE_GETEVENTMSG: %m");
	if (thread_known(t, (pid_t)msg))
		return 0;
	th = thread_add(t, (pid_t)msg);
	if (!th)
		return err_set(err, TARGET_ERR_SYSTEM, -ENOMEM, "out of memory");
	t->nborn++;
	/* clone() without CLONE_THREAD and without SIGCHLD also reports PTRACE_EVENT_CLONE. */
	snprintf(path, sizeof(path), "/proc/%d/task/%d", t->pid, th->tid);
	th->foreign = access(path, F_OK) < 0;
	return 0;
}

static int attach_stopped(struct target_thread *th, int sig)
{
	th->stopped = true;
	/* PTRACE_EVENT_STOP with SIGTRAP is our interrupt; with a stop signal, a group stop. */
	th->group_stop = sig != SIGTRAP;
	if (!th->foreign)
		return 0;
	th->seized = false;
	return ptrace(PTRACE_DETACH, th->tid, 0, 0) < 0 ? -errno : 0;
}

/*
 * Wait until thread i is in PTRACE_EVENT_STOP. Returns 1 if it exited instead. May append
 * clone children to t->threads.
 */
static int attach_wait_one(struct target *t, size_t i, struct target_error *err)
{
	pid_t tid = t->threads[i].tid;

	for (;;) {
		int status, r, sig, event;

		r = target_wait_status(tid, TARGET_STOP_TIMEOUT_MS, &status);
		if (r == -ESRCH)
			return 1;
		if (r == -ETIMEDOUT)
			return err_set(err, TARGET_ERR_TIMEOUT, r,
				       "thread %d of pid %d did not stop within %d ms "
				       "(uninterruptible sleep?)",
				       tid, t->pid, TARGET_STOP_TIMEOUT_MS);
		if (r < 0)
			return err_set(err, TARGET_ERR_SYSTEM, r, "waitpid(%d): %s", tid,
				       strerror(-r));
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return 1;
		if (!WIFSTOPPED(status))
			continue;
		sig = WSTOPSIG(status);
		event = (unsigned int)status >> 16;
		if (event == PTRACE_EVENT_STOP) {
			r = attach_stopped(&t->threads[i], sig);
			return r < 0 ? err_set(err, TARGET_ERR_SYSTEM, r, "detach clone child") : 0;
		}
		if (event == PTRACE_EVENT_CLONE) {
			r = attach_clone_child(t, tid, err);
			if (r < 0)
				return r;
			sig = 0;
		} else if (event != 0 || sig == (SIGTRAP | 0x80)) {
			sig = 0;
		}
		/* Any ptrace stop clears a pending interrupt (kernel/signal.c: ptrace_stop(),
		 * "any trap clears pending STOP trap"): interrupt again, while it is stopped, so
		 * that it stops before returning to user mode. A signal-delivery-stop means the
		 * signal was dequeued before the interrupt took effect: deliver it now. */
		if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 && errno != ESRCH)
			return err_set(err, TARGET_ERR_SYSTEM, -errno, "PTRACE_INTERRUPT(%d): %m",
				       tid);
		if (ptrace(PTRACE_CONT, tid, 0, (void *)(long)sig) < 0 && errno != ESRCH)
			return err_set(err, TARGET_ERR_SYSTEM, -errno, "PTRACE_CONT(%d): %m", tid);
	}
}

static int attach_wait_all(struct target *t, struct target_error *err)
{
	for (size_t i = 0; i < t->nthreads;) {
		int r;

		if (t->threads[i].stopped || !t->threads[i].seized) {
			i++;
			continue;
		}
		r = attach_wait_one(t, i, err);
		if (r < 0)
			return r;
		if (r == 1 || t->threads[i].foreign)
			thread_remove(t, i);
		else
			i++;
	}
	return 0;
}

/*
 * Seize, interrupt, wait; again until a scan finds no thread we do not hold. Stopped threads
 * cannot clone, and a clone in flight when its parent was seized completes (and shows in
 * /proc/PID/task) before the parent stops, so the scan after everything stopped is complete.
 */
static int attach_threads(struct target *t, struct target_error *err)
{
	for (unsigned int round = 0; round < ATTACH_MAX_ROUNDS; round++) {
		size_t added = 0;
		int r;

		r = attach_scan(t, &added, err);
		if (r < 0)
			return r;
		if (added)
			t->attached = true;
		r = attach_wait_all(t, err);
		if (r < 0)
			return r;
		if (!added)
			return t->nthreads ? 0
					   : err_set(err, TARGET_ERR_NOPROC, -ESRCH,
						     "pid %d exited", t->pid);
	}
	return err_set(err, TARGET_ERR_SYSTEM, -EAGAIN,
		       "pid %d creates threads faster than they can be attached", t->pid);
}

static int attach_capture(struct target *t, struct target_error *err)
{
	for (size_t i = 0; i < t->nthreads; i++) {
		int r = target_regs_capture(&t->threads[i]);

		if (r == 0)
			r = target_regs_rseq_fixup(t, &t->threads[i]);
		if (r == -EOPNOTSUPP)
			return err_set(err, TARGET_ERR_ARCH, r,
				       "pid %d is not a 64-bit x86 process", t->pid);
		if (r < 0)
			return err_set(err, TARGET_ERR_SYSTEM, r,
				       "cannot read the registers of thread %d: %s",
				       t->threads[i].tid, strerror(-r));
	}
	return 0;
}

static int attach_pidfd(struct target *t, struct target_error *err)
{
	t->pidfd = (int)syscall(SYS_pidfd_open, t->pid, 0);
	if (t->pidfd >= 0)
		return 0;
	t->pidfd = -EBADF;
	if (errno == ESRCH)
		return err_set(err, TARGET_ERR_NOPROC, -ESRCH, "no process with pid %d", t->pid);
	return err_set(err, TARGET_ERR_SYSTEM, -errno, "pidfd_open(%d): %m", t->pid);
}

/*
 * Does pid still name the process pidfd refers to? A pid number stays with its process until
 * that is reaped (kernel/exit.c release_task() frees both at once), and /proc/self/fdinfo shows
 * a pidfd's pid, or -1 once its process is reaped (kernel/pid.c pidfd_show_fdinfo()). So if
 * the answer is yes after pid was seized, the process seized is pidfd's.
 */
static int pin_check(pid_t pid, int pidfd, struct target_error *err)
{
	char path[64], buf[1024];
	int r;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	r = read_small_file(path, buf, sizeof(buf));
	if (r < 0)
		return err_set(err, TARGET_ERR_SYSTEM, r == -ESRCH ? -EBADF : r,
			       "cannot read the pidfd of pid %d: %s", pid, strerror(-r));
	if (status_field(buf, "\nPid:") != pid)
		return err_set(err, TARGET_ERR_NOPROC, -ESRCH,
			       "pid %d is not the process that was authorized: that one exited and "
			       "its pid now names another process",
			       pid);
	return 0;
}

int target_attach(pid_t pid, struct target **ret, struct target_error *err)
{
	return target_attach_pinned(pid, -EBADF, ret, err);
}

int target_attach_pinned(pid_t pid, int pidfd, struct target **ret, struct target_error *err)
{
	struct target_error ignored;
	struct target *t = NULL;
	int r;

	if (!err)
		err = &ignored;
	*err = (struct target_error){0};
	if (pid <= 0)
		return err_set(err, TARGET_ERR_NOPROC, -ESRCH, "%d is not a process id", pid);
	r = attach_check(pid, err);
	if (r >= 0 && pidfd >= 0) /* the usual case of a reused pid: never touch the other */
		r = pin_check(pid, pidfd, err);
	if (r < 0)
		return r;
	t = calloc(1, sizeof(*t));
	if (!t)
		return err_set(err, TARGET_ERR_SYSTEM, -ENOMEM, "out of memory");
	*t = (struct target){.pid = pid, .pidfd = -EBADF, .inject_thread = -1};
	r = attach_pidfd(t, err);
	if (r < 0)
		goto out;
	r = attach_threads(t, err);
	if (r >= 0 && pidfd >= 0) /* reused since the first check: let the other go */
		r = pin_check(pid, pidfd, err);
	if (r < 0)
		goto out;
	r = attach_capture(t, err);
	if (r < 0)
		goto out;
	*ret = t;
	t = NULL;
out:
	target_free(t);
	return r;
}

/*
 * Re-queue signals a thread dequeued while it ran an injected syscall. rt_tgsigqueueinfo()
 * keeps the exact siginfo, but the kernel allows that from another process only for si_code < 0
 * (sigqueue, timers, ...) other than SI_TKILL; kill() and kernel signals go back with tgkill()
 * and lose their siginfo details, not the signal.
 */
static int detach_requeue(const struct target *t, struct target_thread *th)
{
	int r = 0;

	for (unsigned int i = 0; i < th->nstashed; i++) {
		siginfo_t *si = &th->stashed[i];
		long k;

		if (si->si_code < 0 && si->si_code != SI_TKILL)
			k = syscall(SYS_rt_tgsigqueueinfo, t->pid, th->tid, si->si_signo, si);
		else
			k = syscall(SYS_tgkill, t->pid, th->tid, si->si_signo);
		if (k < 0 && r == 0)
			r = -errno;
	}
	th->nstashed = 0;
	return r;
}

/*
 * A thread killed while held is a zombie only its tracer can reap, and the kernel reports the
 * leader's exit only once every other thread is reaped (kernel/exit.c: delay_group_leader()).
 * Reap it, within a bound, so that the target's parent can reap the process.
 */
static void detach_reap(pid_t tid)
{
	for (int i = 0; i < 16; i++) {
		int status;

		if (target_wait_status(tid, TARGET_STOP_TIMEOUT_MS, &status) < 0 ||
		    WIFEXITED(status) || WIFSIGNALED(status))
			return;
	}
}

static int detach_thread(struct target *t, size_t i)
{
	struct target_thread *th = &t->threads[i];
	int r = 0, k;

	if (th->gone || !th->seized)
		return 0;
	if (!th->stopped)
		return -ETIMEDOUT; /* still seized and running: a later target_detach() retries */
	if (th->regs_dirty) {
		r = target_regs_restore(th);
		th->regs_dirty = r < 0;
	}
	k = detach_requeue(t, th);
	if (r == 0)
		r = k;
	if (ptrace(PTRACE_DETACH, th->tid, 0, 0) < 0) {
		k = -errno;
		if (k == -ESRCH) {
			detach_reap(th->tid);
			th->gone = true;
		}
		if (r == 0)
			r = k;
	}
	th->seized = false;
	th->stopped = false;
	return r;
}

int target_detach(struct target *t)
{
	struct target_error ignored;
	int r = 0;

	if (!t || !t->attached)
		return 0;
	/* Threads seized but not yet stopped (a failed attach) must stop before they can be
	 * let go: PTRACE_DETACH works only on a tracee in a ptrace stop. */
	attach_wait_all(t, &ignored);
	/* The leader last: see detach_reap(). */
	for (int leader = 0; leader <= 1; leader++) {
		for (size_t i = 0; i < t->nthreads; i++) {
			int k;

			if ((t->threads[i].tid == t->pid) != leader)
				continue;
			k = detach_thread(t, i);
			if (k < 0 && r == 0)
				r = k;
		}
	}
	/* A thread that never stopped is still ours: a later target_detach() can retry. */
	t->attached = false;
	for (size_t i = 0; i < t->nthreads; i++)
		if (t->threads[i].seized && !t->threads[i].gone)
			t->attached = true;
	return r;
}

void target_free(struct target *t)
{
	if (!t)
		return;
	target_detach(t);
	for (size_t i = 0; i < t->nthreads; i++)
		free(t->threads[i].fp.data);
	free(t->threads);
	if (t->pidfd >= 0)
		close(t->pidfd);
	free(t);
}

size_t target_nthreads(const struct target *t)
{
	return t->nthreads;
}

const struct target_thread *target_thread_at(const struct target *t, size_t i)
{
	return i < t->nthreads ? &t->threads[i] : NULL;
}

pid_t target_pid(const struct target *t)
{
	return t->pid;
}

int target_pidfd(const struct target *t)
{
	return t->pidfd;
}
