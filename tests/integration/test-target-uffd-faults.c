/* SPDX-License-Identifier: MIT */
/*
 * Every step of target_uffd_create() can fail, and the target is left as it was. A child with
 * busy threads (distinct signal masks, invariants held in registers), a thread blocked in a
 * syscall and a checksummed buffer is attached; for every step of a clean run, in turn, the
 * step is made to fail before it runs and, in another run, after it ran (what it made, e.g. a
 * remote fd, exists and must be undone). After each run: every thread's registers (read with
 * ptrace while still held), the fd table with each fd's target, the mappings and every
 * thread's pending, blocked, ignored and caught signals are exactly what they were before,
 * and the child, released, still runs and passes its own checks (its buffer's checksum, its
 * threads' invariants and progress).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target/attach.h"
#include "target-proc.h"
#include "target/uffd.h"
#include "test-check.h"

#define BUSY	    3
#define DATA_LEN    (64 * 1024)
#define MAX_STEPS   32
#define MAX_THREADS 16
#define TIMEOUT_MS  20000
#define FAULT	    (-ENOTRECOVERABLE) /* what a failed step returns: no step returns it */

/* The child's view of itself; shared by its threads only. */
struct child_state {
	uint8_t data[DATA_LEN];
	uint64_t sum;
	_Atomic uint64_t progress[BUSY];
	atomic_int broken;
};

struct child {
	pid_t pid;
	int cmd, rep;
};

static uint64_t checksum(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/*
 * Two values that move together; the empty asm keeps them in registers, unknown to the
 * compiler, so that a register the injection failed to restore breaks the invariant.
 */
static void *busy(void *arg)
{
	struct child_state *s = ((void **)arg)[0];
	int idx = (int)(intptr_t)((void **)arg)[1];
	uint64_t a = (uint64_t)idx, b = (uint64_t)idx * 7;
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1 + idx % 2);
	sigaddset(&mask, SIGRTMIN + idx);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	for (;;) {
		a += 1;
		b += 7;
		__asm__ volatile("" : "+r"(a), "+r"(b));
		if (b != a * 7)
			atomic_store(&s->broken, 1);
		if (!(a & 0xfff))
			atomic_fetch_add(&s->progress[idx], 1);
	}
	return NULL;
}

static void *blocked(void *arg)
{
	char c;

	/* Sits in read() forever: a thread held inside a syscall, never picked to inject on. */
	while (read((int)(intptr_t)arg, &c, 1) != 0)
		;
	return NULL;
}

/* 'C': check itself once every busy thread has moved on, answer 'Y' or 'N'; 'Q': exit 0. */
static void child_main(int cmd, int rep)
{
	static struct child_state s;
	static void *args[BUSY][2];
	uint64_t seen[BUSY] = {0};
	pthread_t th;
	int never[2];
	char c;

	for (size_t i = 0; i < DATA_LEN; i++)
		s.data[i] = (uint8_t)(i * 131 + 7);
	s.sum = checksum(s.data, DATA_LEN);
	if (pipe(never) < 0 || pthread_create(&th, NULL, blocked, (void *)(intptr_t)never[0]))
		_exit(2);
	for (int i = 0; i < BUSY; i++) {
		args[i][0] = &s;
		args[i][1] = (void *)(intptr_t)i;
		if (pthread_create(&th, NULL, busy, args[i]))
			_exit(2);
	}
	while (read(cmd, &c, 1) == 1) {
		bool ok = checksum(s.data, DATA_LEN) == s.sum && !atomic_load(&s.broken);

		if (c == 'Q')
			_exit(0);
		/* Every busy thread runs on: wait, however long the machine takes, until each has
		 * made progress (the parent gives up after TIMEOUT_MS). */
		for (int i = 0; i < BUSY; i++) {
			while (atomic_load(&s.progress[i]) == seen[i])
				usleep(1000);
			seen[i] = atomic_load(&s.progress[i]);
		}
		if (write(rep, ok ? "Y" : "N", 1) != 1)
			_exit(3);
	}
	_exit(4);
}

static int child_start(struct child *c)
{
	int cmd[2], rep[2];

	if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0)
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0)
		child_main(cmd[0], rep[1]);
	close(cmd[0]);
	close(rep[1]);
	c->cmd = cmd[1];
	c->rep = rep[0];
	return 0;
}

/* Ask the child to check itself. */
static bool child_ok(struct child *c)
{
	struct pollfd p = {.fd = c->rep, .events = POLLIN};
	char answer = 0;

	if (write(c->cmd, "C", 1) != 1 || poll(&p, 1, TIMEOUT_MS) != 1)
		return false;
	return read(c->rep, &answer, 1) == 1 && answer == 'Y';
}

/* Everything of the target one run may change. */
struct state {
	char fds[8192], maps[1 << 16], signals[8192];
	size_t nthreads;
	pid_t tids[MAX_THREADS];
	struct user_regs_struct regs[MAX_THREADS];
};

static int state_proc(pid_t pid, struct state *s)
{
	int r = proc_fds(pid, s->fds, sizeof(s->fds));

	if (r == 0)
		r = proc_maps(pid, s->maps, sizeof(s->maps));
	return r ?: proc_signals(pid, s->signals, sizeof(s->signals));
}

/* While held: every thread's registers, as the kernel has them now. */
static int state_regs(const struct target *t, struct state *s)
{
	s->nthreads = target_nthreads(t);
	if (s->nthreads > MAX_THREADS)
		return -E2BIG;
	for (size_t i = 0; i < s->nthreads; i++) {
		s->tids[i] = target_thread_at(t, i)->tid;
		if (ptrace(PTRACE_GETREGS, s->tids[i], 0, &s->regs[i]) < 0)
			return -errno;
	}
	return 0;
}

static int state_same(const struct state *a, const struct state *b)
{
	CHECK(!strcmp(a->fds, b->fds), "fd table changed:\n%s---\n%s", a->fds, b->fds);
	CHECK(!strcmp(a->maps, b->maps), "mappings changed:\n%s---\n%s", a->maps, b->maps);
	CHECK(!strcmp(a->signals, b->signals), "signal state changed:\n%s---\n%s", a->signals,
	      b->signals);
	CHECK(a->nthreads == b->nthreads, "%zu threads, then %zu", a->nthreads, b->nthreads);
	for (size_t i = 0; i < a->nthreads; i++)
		CHECK(a->tids[i] == b->tids[i] && !memcmp(&a->regs[i], &b->regs[i], sizeof(a->regs[i])),
		      "registers of thread %d changed (rip %#llx -> %#llx, rax %#llx -> %#llx)",
		      a->tids[i], a->regs[i].rip, b->regs[i].rip, a->regs[i].rax, b->regs[i].rax);
	return 0;
fail:
	return -1;
}

/* The hook: records the steps of a run, fails the chosen one. */
struct plan {
	int fail_index; /* -1: none */
	enum target_uffd_phase fail_phase;
	bool fired;
	unsigned int nsteps;
	const char *names[MAX_STEPS];
	bool remote[MAX_STEPS];
};

static int on_step(void *arg, const struct target_uffd_step *s)
{
	struct plan *p = arg;

	if (s->phase == TARGET_UFFD_BEFORE && s->index < MAX_STEPS) {
		p->names[s->index] = s->name;
		p->remote[s->index] = s->remote;
		p->nsteps = s->index + 1;
	}
	if ((int)s->index != p->fail_index || s->phase != p->fail_phase)
		return 0;
	p->fired = true;
	return FAULT;
}

/* Attach, run with plan, check everything is as before, release, let the child check. */
static int one_run(struct child *c, int devfd, struct plan *p, bool undo_step)
{
	static struct state before, after;
	struct target_uffd_hooks hooks = {.step = on_step, .arg = p};
	struct target *t = NULL;
	struct target_error err;
	int uffd = -EBADF, r;

	CHECK(state_proc(c->pid, &before) == 0, "/proc/%d", c->pid);
	CHECK(target_attach(c->pid, &t, &err) == 0, "attach: %s", err.msg);
	CHECK(state_regs(t, &before) == 0, "registers before");
	r = target_uffd_create_hooked(t, devfd, &hooks, &uffd);
	CHECK(p->fail_index < 0 || p->fired, "the fault was never injected");
	if (p->fail_index < 0)
		CHECK(r == 0 && uffd >= 0, "clean run: %s", strerror(-r));
	/* An undo that could not run is tried again: it may then succeed. */
	else if (!(r == 0 && undo_step && p->fail_phase == TARGET_UFFD_BEFORE))
		CHECK(r == FAULT && uffd == -EBADF, "returned %d (%s), fd %d", r, strerror(-r),
		      uffd);
	CHECK(state_regs(t, &after) == 0, "registers after");
	CHECK(target_detach(t) == 0, "detach");
	CHECK(state_proc(c->pid, &after) == 0, "/proc/%d", c->pid);
	CHECK(state_same(&before, &after) == 0, "the target is not as it was");
	CHECK(child_ok(c), "the child's own checks failed");
	target_free(t);
	if (uffd >= 0)
		close(uffd);
	return 0;
fail:
	target_free(t);
	if (uffd >= 0)
		close(uffd);
	return -1;
}

/*
 * Waits until the child's mappings stay the same across one of its rounds of checks. Built
 * with ASan, a child whose threads just started may still map memory of its runtime's own
 * (its allocator growing, a thread's data, the shadow of a thread's stack) after its first
 * answer: seen once in CI, in the clean run's "before" and "after". Nothing of ours runs
 * meanwhile, so what changes here is the child alone.
 */
static int child_settled(struct child *c)
{
	static struct state a, b;

	for (int i = 0; i < 100; i++) {
		if (state_proc(c->pid, &a) < 0 || !child_ok(c) || state_proc(c->pid, &b) < 0)
			return -1;
		if (!strcmp(a.maps, b.maps))
			return 0;
	}
	return -1;
}

static int run_all(struct child *c, int devfd)
{
	struct plan clean = {.fail_index = -1};
	int last_forward = -1, failed = 0;

	CHECK(child_ok(c), "the child is not running"); /* and has all its threads */
	CHECK(child_settled(c) == 0, "the child's mappings keep changing by themselves");
	CHECK(one_run(c, devfd, &clean, false) == 0, "clean run");
	for (unsigned int i = 0; i < clean.nsteps; i++)
		if (!strcmp(clean.names[i], "pidfd_getfd uffd"))
			last_forward = (int)i;
	CHECK(last_forward > 0, "no step \"pidfd_getfd uffd\"");
	for (unsigned int i = 0; i < clean.nsteps; i++) {
		for (int ph = TARGET_UFFD_BEFORE; ph <= TARGET_UFFD_AFTER; ph++) {
			struct plan p = {.fail_index = (int)i, .fail_phase = ph};
			bool undo = (int)i > last_forward;
			int r = one_run(c, devfd, &p, undo);

			printf("%s step %2u %-26s %s %-6s: %s\n", r ? "FAIL" : "PASS", i,
			       clean.names[i], clean.remote[i] ? "(injected)" : "(local)   ",
			       ph == TARGET_UFFD_BEFORE ? "before" : "after",
			       r ? "the target is not as it was" : "target as it was");
			failed |= r;
		}
	}
	return failed;
fail:
	return -1;
}

int main(void)
{
	struct child c = {.pid = -1};
	int devfd, status = -1, failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	devfd = proc_devuffd_or_skip();
	if (devfd < 0)
		return 77;
	/* As the holder: waits for the target sleep until SIGCHLD (the other target tests poll). */
	if (target_wait_prepare() < 0) {
		printf("FAIL: target_wait_prepare: %m\n");
		return 1;
	}
	if (child_start(&c) < 0) {
		printf("FAIL: fork: %m\n");
		return 1;
	}
	failed = run_all(&c, devfd);
	if (write(c.cmd, "Q", 1) != 1)
		kill(c.pid, SIGKILL);
	waitpid(c.pid, &status, 0);
	if (status != 0) {
		printf("FAIL: the child ended with status %#x\n", status);
		failed = 1;
	}
	close(devfd);
	return failed ? 1 : 0;
}
