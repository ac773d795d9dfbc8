/* SPDX-License-Identifier: MIT */
/*
 * target_attach()/target_detach() on real child processes: every thread held, registers
 * plausible, blocked syscalls neither cut short nor skipped after detach (with and without an
 * injection on the blocked thread), signals arriving during an injection delivered once, thread
 * churn held completely. The refusals are in test-target-errors.c.
 */
#include <cpuid.h>
#include <dirent.h>
#include <jansson.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sys/linux-compat.h"
#include "target/attach.h"
#include "target/inject.h"
#include "target/regs.h"
#include "test-check.h"
#include "test-proc.h"

#define SLEEP_NS	  2000000000L /* long enough that attach, checks and detach fall inside it */
#define QUIET_MS	  300	      /* how long a woken-too-early thread gets to show itself */
#define REPORT_TIMEOUT_MS 20000
#define CHURN_ROUNDS	  30
#define CHURN_MAX_ROUNDS  2000


enum { REP_TIDS = 1, REP_SLEEP, REP_FUTEX, REP_READ, REP_SPIN, REP_SIGNALS, REP_READY };
enum { CMD_SPIN = 'S', CMD_QUIT = 'Q' };

struct report {
	int what;
	int err;
	long ret;
	long v[6];
};

struct shared {
	int futex_word;
	volatile long spin[2];
	volatile long churn;
	volatile int sig_count[2];
	volatile int sig_code;
	volatile int sig_value;
};

struct child_io {
	int cmd, rep, data;
	struct shared *sh;
};

struct child {
	pid_t pid;
	int cmd, rep, data;
	struct shared *sh;
};

typedef void (*child_fn)(const struct child_io *io);

static void report(const struct child_io *io, int what, long ret, int err, long v0, long v1,
		   long v2)
{
	struct report r = {.what = what, .err = err, .ret = ret, .v = {v0, v1, v2}};

	if (write(io->rep, &r, sizeof(r)) != sizeof(r))
		_exit(3);
}

static int child_start(struct child *c, child_fn fn)
{
	int cmd[2], rep[2], data[2];

	*c = (struct child){.pid = -1, .cmd = -EBADF, .rep = -EBADF, .data = -EBADF};
	if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0 || pipe2(data, O_CLOEXEC) < 0)
		return -errno;
	c->sh =
	    mmap(NULL, sizeof(*c->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c->sh == MAP_FAILED)
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0) {
		struct child_io io = {.cmd = cmd[0], .rep = rep[1], .data = data[0], .sh = c->sh};

		close(cmd[1]);
		close(rep[0]);
		close(data[1]);
		fn(&io);
		_exit(0);
	}
	close(cmd[0]);
	close(rep[1]);
	close(data[0]);
	c->cmd = cmd[1];
	c->rep = rep[0];
	c->data = data[1];
	return 0;
}

/*
 * Wait (bounded) for the child to exit, or kill it; returns its wait status, -1 if killed.
 * waitpid(-1, __WALL): a thread still traced by us after a failure is a zombie only we can
 * reap, and until then the kernel holds back the leader's exit.
 */
static int child_reap(struct child *c, bool kill_it)
{
	int status = -1;

	if (kill_it && c->pid > 0)
		kill(c->pid, SIGKILL);
	for (int i = 0; c->pid > 0 && i < REPORT_TIMEOUT_MS; i++) {
		int st;
		pid_t w = waitpid(kill_it ? -1 : c->pid, &st, __WALL | WNOHANG);

		if (w == c->pid || (w < 0 && errno == ECHILD)) {
			status = kill_it ? -1 : st;
			c->pid = -1;
		} else if (w <= 0) {
			usleep(1000);
		}
	}
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, __WALL);
		c->pid = -1;
	}
	close(c->cmd);
	close(c->rep);
	close(c->data);
	munmap(c->sh, sizeof(*c->sh));
	return status;
}

static int report_read(struct child *c, int timeout_ms, struct report *ret)
{
	struct pollfd p = {.fd = c->rep, .events = POLLIN};
	int n = poll(&p, 1, timeout_ms);

	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (read(c->rep, ret, sizeof(*ret)) != sizeof(*ret))
		return -EPIPE;
	return 0;
}

static int send_cmd(struct child *c, char cmd)
{
	return write(c->cmd, &cmd, 1) == 1 ? 0 : -EPIPE;
}

/* Block until /proc says thread tid sits in syscall nr. */
static int wait_in_syscall(pid_t pid, pid_t tid, long nr)
{
	char file[64], buf[256];

	snprintf(file, sizeof(file), "task/%d/syscall", tid);
	for (int i = 0; i < REPORT_TIMEOUT_MS; i++) {
		if (test_proc_read(pid, file, buf, sizeof(buf)) > 0 && buf[0] >= '0' &&
		    buf[0] <= '9' && strtol(buf, NULL, 10) == nr)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

static char task_state(pid_t pid, pid_t tid)
{
	char file[64];
	int state;

	snprintf(file, sizeof(file), "task/%d/stat", tid);
	state = test_proc_state(pid, file);
	return state < 0 ? '?' : (char)state;
}

static pid_t tracer_of(pid_t pid)
{
	char buf[4096], *p;

	if (test_proc_read(pid, "status", buf, sizeof(buf)) <= 0)
		return -1;
	p = strstr(buf, "TracerPid:");
	return p ? (pid_t)strtol(p + 10, NULL, 10) : -1;
}

/* Is addr inside a mapping of pid whose permissions contain perm ('x', 'w', or 0 for any)? */
static bool in_mapping(pid_t pid, uint64_t addr, char perm)
{
	char path[64], line[512];
	bool found = false;
	FILE *f;

	test_proc_path(path, sizeof(path), pid, "maps");
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3)
			continue;
		found = addr >= start && addr < end && (!perm || strchr(perms, perm));
	}
	fclose(f);
	return found;
}

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* ---- what the children do ---- */

static void do_sleep(const struct child_io *io)
{
	struct timespec ts = {SLEEP_NS / 1000000000L, SLEEP_NS % 1000000000L};
	long start = now_ns();
	int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);

	report(io, REP_SLEEP, r, r, now_ns() - start, SLEEP_NS, 0);
}

static void do_futex(const struct child_io *io)
{
	/* Not FUTEX_PRIVATE: the test process wakes it through the shared page. */
	long r = syscall(SYS_futex, &io->sh->futex_word, FUTEX_WAIT, 0, NULL, NULL, 0);

	report(io, REP_FUTEX, r, r < 0 ? errno : 0,
	       __atomic_load_n(&io->sh->futex_word, __ATOMIC_SEQ_CST), 0, 0);
}

static void do_read(const struct child_io *io)
{
	long v = 0;
	ssize_t r = read(io->data, &v, sizeof(v));

	report(io, REP_READ, r, r < 0 ? errno : 0, v, 0, 0);
}

static void *thread_sleep(void *arg)
{
	do_sleep(arg);
	return NULL;
}

static void *thread_futex(void *arg)
{
	do_futex(arg);
	return NULL;
}

static void *thread_read(void *arg)
{
	do_read(arg);
	return NULL;
}

static void *thread_spin(void *arg)
{
	volatile long *counter = arg;

	for (;;)
		(*counter)++;
	return NULL;
}

struct tid_slot {
	const struct child_io *io;
	void *(*fn)(void *);
	void *arg;
	pid_t tid;
	int ready;
};

static void *thread_tid(void *arg)
{
	struct tid_slot *s = arg;

	s->tid = gettid();
	__atomic_store_n(&s->ready, 1, __ATOMIC_SEQ_CST);
	return s->fn(s->arg);
}

/* Main thread serves commands; five threads: sleeper, futex waiter, reader, two spinners. */
static void child_multithread(const struct child_io *io)
{
	struct tid_slot s[5] = {
	    {io, thread_sleep, (void *)io},
	    {io, thread_futex, (void *)io},
	    {io, thread_read, (void *)io},
	    {io, thread_spin, (void *)&io->sh->spin[0]},
	    {io, thread_spin, (void *)&io->sh->spin[1]},
	};
	char cmd;

	for (int i = 0; i < 5; i++) {
		pthread_t th;

		if (pthread_create(&th, NULL, thread_tid, &s[i]) != 0)
			_exit(2);
		while (!__atomic_load_n(&s[i].ready, __ATOMIC_SEQ_CST))
			;
	}
	report(io, REP_TIDS, 0, 0, s[0].tid, s[1].tid, s[2].tid);
	while (read(io->cmd, &cmd, 1) == 1) {
		if (cmd == CMD_SPIN)
			report(io, REP_SPIN, 0, 0, io->sh->spin[0], io->sh->spin[1], 0);
		if (cmd == CMD_QUIT)
			_exit(0);
	}
	_exit(4);
}

/* ---- checks ---- */

static int wake_futex(struct child *c)
{
	__atomic_store_n(&c->sh->futex_word, 1, __ATOMIC_SEQ_CST);
	return syscall(SYS_futex, &c->sh->futex_word, FUTEX_WAKE, 1, NULL, NULL, 0) < 0 ? -errno
											: 0;
}

static const struct target_thread *find_thread(const struct target *t, pid_t tid)
{
	for (size_t i = 0; i < target_nthreads(t); i++)
		if (target_thread_at(t, i)->tid == tid)
			return target_thread_at(t, i);
	return NULL;
}

/* Every task /proc lists is one we hold, in a tracing stop; and registers look right. */
static int check_all_held(const struct target *t, pid_t pid)
{
	char path[64];
	size_t listed = 0;
	struct dirent *de;
	DIR *dir;

	test_proc_path(path, sizeof(path), pid, "task");
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((de = readdir(dir))) {
		pid_t tid = (pid_t)strtol(de->d_name, NULL, 10);
		const struct target_thread *th;

		if (tid <= 0)
			continue;
		listed++;
		th = find_thread(t, tid);
		CHECK(th, "thread %d of pid %d is not held", tid, pid);
		CHECK(task_state(pid, tid) == 't', "thread %d is in state %c", tid,
		      task_state(pid, tid));
		CHECK(in_mapping(pid, th->regs.rip, 'x'), "rip %llx of %d not executable",
		      th->regs.rip, tid);
		CHECK(in_mapping(pid, th->regs.rsp, 'w'), "rsp %llx of %d not writable",
		      th->regs.rsp, tid);
		CHECK(th->fp.len >= 512, "fp state of %d is %zu bytes", tid, th->fp.len);
	}
	closedir(dir);
	CHECK(listed == target_nthreads(t), "/proc lists %zu threads, we hold %zu", listed,
	      target_nthreads(t));
	return 0;
fail:
	closedir(dir);
	return -1;
}

static int check_blocked_thread(const struct target *t, pid_t tid, long nr, long code)
{
	const struct target_thread *th = find_thread(t, tid);

	CHECK(th, "thread %d not held", tid);
	CHECK(th->in_syscall && (long)th->regs.orig_rax == nr, "thread %d: orig_rax %lld", tid,
	      (long long)th->regs.orig_rax);
	CHECK((long)th->regs.rax == -code, "thread %d: rax %lld, want %ld", tid,
	      (long long)th->regs.rax, -code);
	CHECK(th->restart && th->resume_regs.rip == th->regs.rip - 2, "thread %d: no restart", tid);
	return 0;
fail:
	return -1;
}

static int check_json(const struct target *t)
{
	json_t *a = NULL, *o, *rip, *sig;
	const struct target_thread *th = target_thread_at(t, 0);
	unsigned int eax, ebx, ecx, edx;
	size_t size = target_regs_json_size(t);
	char want[32], *text = malloc(size), *end;
	json_error_t jerr;

	CHECK(text, "malloc");
	end = target_regs_json_put(t, text);
	CHECK((size_t)(end - text) < size && !*end, "%zu bytes written, %zu allowed",
	      (size_t)(end - text) + 1, size);
	a = json_loads(text, 0, &jerr);
	CHECK(a, "not JSON: %s", jerr.text);
	CHECK(json_array_size(a) == target_nthreads(t), "%zu entries", json_array_size(a));
	o = json_array_get(a, 0);
	CHECK(json_integer_value(json_object_get(o, "tid")) == th->tid, "tid");
	rip = json_object_get(json_object_get(o, "regs"), "rip");
	snprintf(want, sizeof(want), "0x%llx", th->resume_regs.rip);
	CHECK(rip && !strcmp(json_string_value(rip), want), "rip %s != %s", json_string_value(rip),
	      want);
	CHECK(json_is_boolean(json_object_get(o, "in_syscall")), "in_syscall");
	CHECK(strlen(json_string_value(json_object_get(o, "fpstate"))) >= 512 * 4 / 3,
	      "fpstate too short");
	/* A CPU with XSAVE gets the whole extended state, not the legacy FXSAVE fallback. */
	if (__get_cpuid_count(0xd, 0, &eax, &ebx, &ecx, &edx) && ecx > 512)
		CHECK(!strcmp(json_string_value(json_object_get(o, "fpstate_format")) ?: "",
			      "xsave") &&
			  th->fp.xstate && th->fp.len > 512,
		      "fpstate: %s, %zu bytes (CPUID says %u)",
		      json_string_value(json_object_get(o, "fpstate_format")), th->fp.len, ecx);
	sig = json_object_get(o, "signals");
	CHECK(json_is_string(json_object_get(sig, "pending")) &&
		  json_is_string(json_object_get(sig, "blocked")),
	      "signals");
	json_decref(a);
	free(text);
	return 0;
fail:
	json_decref(a);
	free(text);
	return -1;
}

/* After detach: no early return within QUIET_MS, then each completes the right way. */
static int check_released(struct child *c, int nsleep, int nfutex, int nread)
{
	long payload = 0x216461656c796150L; /* "Payload!" */
	struct report r;
	int seen_sleep = 0;

	while (report_read(c, QUIET_MS, &r) == 0) {
		CHECK(r.what == REP_SLEEP, "report %d (ret %ld errno %d) before it was woken",
		      r.what, r.ret, r.err);
		CHECK(r.ret == 0 && r.v[0] >= r.v[1], "nanosleep: ret %ld, slept %ld of %ld ns",
		      r.ret, r.v[0], r.v[1]);
		seen_sleep++;
	}
	if (nread) {
		CHECK(write(c->data, &payload, sizeof(payload)) == sizeof(payload), "write");
		CHECK(report_read(c, REPORT_TIMEOUT_MS, &r) == 0 && r.what == REP_READ, "no read");
		CHECK(r.ret == sizeof(payload) && r.v[0] == payload, "read: ret %ld errno %d",
		      r.ret, r.err);
	}
	if (nfutex) {
		CHECK(wake_futex(c) == 0, "FUTEX_WAKE");
		CHECK(report_read(c, REPORT_TIMEOUT_MS, &r) == 0 && r.what == REP_FUTEX, "futex");
		CHECK(r.ret == 0 && r.v[0] == 1, "futex: ret %ld errno %d word %ld", r.ret, r.err,
		      r.v[0]);
	}
	if (nsleep && !seen_sleep) {
		CHECK(report_read(c, REPORT_TIMEOUT_MS, &r) == 0 && r.what == REP_SLEEP, "sleep");
		CHECK(r.ret == 0 && r.v[0] >= r.v[1], "nanosleep: ret %ld, slept %ld of %ld ns",
		      r.ret, r.v[0], r.v[1]);
	}
	return 0;
fail:
	return -1;
}

static int spin_counts(struct child *c, long ret[2])
{
	struct report r;

	if (send_cmd(c, CMD_SPIN) < 0 || report_read(c, REPORT_TIMEOUT_MS, &r) < 0 ||
	    r.what != REP_SPIN)
		return -1;
	ret[0] = r.v[0];
	ret[1] = r.v[1];
	return 0;
}

/* Both spinners make progress (a busy machine may not schedule one for a while). */
static int spinners_run(struct child *c)
{
	long before[2], now[2];

	if (spin_counts(c, before) < 0)
		return -1;
	for (int i = 0; i < REPORT_TIMEOUT_MS / 10; i++) {
		usleep(10000);
		if (spin_counts(c, now) < 0)
			return -1;
		if (now[0] > before[0] && now[1] > before[1])
			return 0;
	}
	return -1;
}

static int test_multithread(void)
{
	struct target *t = NULL;
	struct target_error err;
	struct child c;
	struct report r;
	long result;
	const long args[6] = {0};
	pid_t tids[3];

	CHECK(child_start(&c, child_multithread) == 0, "fork");
	CHECK(report_read(&c, REPORT_TIMEOUT_MS, &r) == 0 && r.what == REP_TIDS, "no tids");
	for (int i = 0; i < 3; i++)
		tids[i] = (pid_t)r.v[i];
	CHECK(wait_in_syscall(c.pid, tids[0], SYS_clock_nanosleep) == 0, "sleeper not asleep");
	CHECK(wait_in_syscall(c.pid, tids[1], SYS_futex) == 0, "waiter not waiting");
	CHECK(wait_in_syscall(c.pid, tids[2], SYS_read) == 0, "reader not reading");
	CHECK(wait_in_syscall(c.pid, c.pid, SYS_read) == 0, "main thread not reading");

	CHECK(target_attach(tids[1], &t, &err) == -EINVAL && err.kind == TARGET_ERR_THREAD,
	      "attach to a thread id: %s", err.msg);
	CHECK(target_attach(c.pid, &t, &err) == 0, "attach: %s", err.msg);
	CHECK(target_nthreads(t) == 6, "%zu threads", target_nthreads(t));
	CHECK(target_regs_capture_state(t, true) == 0, "FP state"); /* the holder's, for an image */
	CHECK(check_all_held(t, c.pid) == 0, "not all held");
	CHECK(check_blocked_thread(t, tids[0], SYS_clock_nanosleep, ERESTART_RESTARTBLOCK) == 0,
	      "sleeper");
	CHECK(check_blocked_thread(t, tids[1], SYS_futex, ERESTARTSYS) == 0, "futex waiter");
	CHECK(check_blocked_thread(t, tids[2], SYS_read, ERESTARTSYS) == 0, "reader");
	CHECK(target_inject_syscall(t, SYS_getpid, args, &result) == 0 && result == c.pid,
	      "getpid in target: %ld", result);
	CHECK(!t->threads[t->inject_thread].in_syscall, "injected on a thread in a syscall");
	CHECK(check_json(t) == 0, "json");
	CHECK(target_detach(t) == 0, "detach");
	CHECK(tracer_of(c.pid) == 0, "still traced");
	target_free(t);
	t = NULL;

	CHECK(check_released(&c, 1, 1, 1) == 0, "blocked threads");
	CHECK(spinners_run(&c) == 0, "spinners stopped");
	CHECK(send_cmd(&c, CMD_QUIT) == 0, "quit");
	CHECK(child_reap(&c, false) == 0, "child did not exit cleanly");
	printf("PASS multithread: 6 threads held, blocked syscalls completed after detach\n");
	return 0;
fail:
	target_free(t);
	child_reap(&c, true);
	return -1;
}

static void child_sleep(const struct child_io *io)
{
	report(io, REP_READY, 0, 0, 0, 0, 0);
	do_sleep(io);
}

static void child_futex(const struct child_io *io)
{
	report(io, REP_READY, 0, 0, 0, 0, 0);
	do_futex(io);
}

static void child_read(const struct child_io *io)
{
	report(io, REP_READY, 0, 0, 0, 0, 0);
	do_read(io);
}

/* A single-threaded child blocked in a syscall: injection must run on that very thread. */
static int test_blocked_injected(const char *what, child_fn fn, long nr, long code, bool poke)
{
	uint8_t text_before[16], text_after[16];
	const long args[6] = {0};
	struct target *t = NULL;
	struct target_error err;
	uint64_t text;
	struct child c;
	struct report r;
	long result;

	CHECK(child_start(&c, fn) == 0, "fork");
	CHECK(report_read(&c, REPORT_TIMEOUT_MS, &r) == 0 && r.what == REP_READY, "not ready");
	CHECK(wait_in_syscall(c.pid, c.pid, nr) == 0, "%s: not blocked", what);
	CHECK(target_attach(c.pid, &t, &err) == 0, "attach: %s", err.msg);
	CHECK(check_blocked_thread(t, c.pid, nr, code) == 0, "%s", what);
	if (poke) {
		/* No vdso to use: the `syscall` is poked over the word at rip, then put back. */
		t->syscall_insn_probed = true;
		t->syscall_insn = 0;
	}
	text = t->threads[0].regs.rip & ~7ULL;
	CHECK(target_mem_read(t, text, text_before, sizeof(text_before)) == 0, "read text");
	CHECK(target_inject_syscall(t, SYS_getpid, args, &result) == 0 && result == c.pid,
	      "getpid: %ld", result);
	CHECK(target_inject_syscall(t, SYS_getppid, args, &result) == 0 && result == getpid(),
	      "getppid: %ld", result);
	CHECK(target_mem_read(t, text, text_after, sizeof(text_after)) == 0, "read text");
	CHECK(!memcmp(text_before, text_after, sizeof(text_before)), "text changed");
	CHECK(target_detach(t) == 0, "detach");
	target_free(t);
	t = NULL;
	CHECK(check_released(&c, fn == child_sleep, fn == child_futex, fn == child_read) == 0,
	      "%s after injection", what);
	CHECK(child_reap(&c, false) == 0, "child did not exit cleanly");
	printf("PASS blocked-%s%s: injected on the blocked thread, its syscall completed\n", what,
	       poke ? " (poked syscall)" : "");
	return 0;
fail:
	target_free(t);
	child_reap(&c, true);
	return -1;
}

static struct shared *sig_shared;

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == SIGUSR1) {
		sig_shared->sig_code = si->si_code;
		sig_shared->sig_value = si->si_value.sival_int;
	}
	sig_shared->sig_count[sig == SIGUSR1 ? 0 : 1]++;
}

static void child_signals(const struct child_io *io)
{
	struct sigaction sa = {.sa_sigaction = on_signal, .sa_flags = SA_SIGINFO | SA_RESTART};
	long spins = 0;

	sig_shared = io->sh;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	report(io, REP_READY, 0, 0, 0, 0, 0);
	/* Spin in user mode, so the injection runs on a thread outside any syscall. */
	while (!io->sh->sig_count[0] || !io->sh->sig_count[1])
		spins++;
	usleep(QUIET_MS * 1000); /* time for a duplicate to arrive */
	report(io, REP_SIGNALS, 0, 0, io->sh->sig_count[0], io->sh->sig_count[1], io->sh->sig_code);
}

/* Signals that arrive while the thread is held are dequeued by the injection: each must be
 * delivered exactly once after detach, sigqueue()'s value intact. */
static int test_signal_during_injection(void)
{
	union sigval value = {.sival_int = 4242};
	const long args[6] = {0};
	struct target *t = NULL;
	struct target_error err;
	struct child c;
	struct report r;
	long result;

	CHECK(child_start(&c, child_signals) == 0, "fork");
	CHECK(report_read(&c, REPORT_TIMEOUT_MS, &r) == 0 && r.what == REP_READY, "not ready");
	CHECK(target_attach(c.pid, &t, &err) == 0, "attach: %s", err.msg);
	CHECK(sigqueue(c.pid, SIGUSR1, value) == 0, "sigqueue");
	CHECK(kill(c.pid, SIGUSR2) == 0, "kill");
	CHECK(target_inject_syscall(t, SYS_getpid, args, &result) == 0 && result == c.pid,
	      "getpid: %ld", result);
	CHECK(t->threads[0].nstashed == 2, "%u signals stashed", t->threads[0].nstashed);
	CHECK(target_detach(t) == 0, "detach");
	target_free(t);
	t = NULL;
	CHECK(report_read(&c, REPORT_TIMEOUT_MS, &r) == 0 && r.what == REP_SIGNALS, "no report");
	CHECK(r.v[0] == 1 && r.v[1] == 1, "SIGUSR1 x%ld, SIGUSR2 x%ld", r.v[0], r.v[1]);
	CHECK(r.v[2] == SI_QUEUE && c.sh->sig_value == 4242, "si_code %ld value %d", r.v[2],
	      c.sh->sig_value);
	CHECK(child_reap(&c, false) == 0, "child did not exit cleanly");
	printf("PASS signal-during-injection: each delivered once after detach\n");
	return 0;
fail:
	target_free(t);
	child_reap(&c, true);
	return -1;
}

static void *churn_worker(void *arg)
{
	__atomic_add_fetch((long *)arg, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *churn_creator(void *arg)
{
	for (;;) {
		pthread_t th;

		if (pthread_create(&th, NULL, churn_worker, arg) == 0)
			pthread_join(th, NULL);
	}
	return NULL;
}

static void child_churn(const struct child_io *io)
{
	char cmd;

	for (int i = 0; i < 2; i++) {
		pthread_t th;

		if (pthread_create(&th, NULL, churn_creator, (void *)&io->sh->churn) != 0)
			_exit(2);
	}
	report(io, REP_READY, 0, 0, 0, 0, 0);
	while (read(io->cmd, &cmd, 1) == 1)
		if (cmd == CMD_QUIT)
			_exit(0);
	_exit(4);
}

/* Threads born while we attach (auto-attached through PTRACE_O_TRACECLONE) are held too. */
static int test_churn(void)
{
	struct target *t = NULL;
	struct target_error err;
	struct child c;
	struct report r;
	size_t born = 0;
	long before;
	int i;

	CHECK(child_start(&c, child_churn) == 0, "fork");
	CHECK(report_read(&c, REPORT_TIMEOUT_MS, &r) == 0 && r.what == REP_READY, "not ready");
	/* Keep going until some attach caught a thread being born, the case this test is for. */
	for (i = 0; i < CHURN_ROUNDS || (born == 0 && i < CHURN_MAX_ROUNDS); i++) {
		before = __atomic_load_n(&c.sh->churn, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&c.sh->churn, __ATOMIC_SEQ_CST) < before + 100)
			usleep(100);
		CHECK(target_attach(c.pid, &t, &err) == 0, "round %d: attach: %s", i, err.msg);
		CHECK(target_regs_capture_state(t, true) == 0, "round %d: FP state", i);
		CHECK(check_all_held(t, c.pid) == 0, "round %d", i);
		before = __atomic_load_n(&c.sh->churn, __ATOMIC_SEQ_CST);
		usleep(1000);
		CHECK(__atomic_load_n(&c.sh->churn, __ATOMIC_SEQ_CST) == before,
		      "round %d: threads ran while held", i);
		born += t->nborn;
		CHECK(target_detach(t) == 0, "round %d: detach", i);
		target_free(t);
		t = NULL;
	}
	CHECK(born > 0, "no thread was born during %d attaches: the case was not exercised", i);
	CHECK(send_cmd(&c, CMD_QUIT) == 0, "quit");
	CHECK(child_reap(&c, false) == 0, "child did not exit cleanly");
	printf("PASS churn: %d attaches during thread churn (%zu threads held from birth), "
	       "every thread held each time\n",
	       i, born);
	return 0;
fail:
	target_free(t);
	child_reap(&c, true);
	return -1;
}

int main(void)
{
	int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("SKIP: needs root (CAP_SYS_PTRACE) to attach to children it setresuid()s\n");
		return 77;
	}
	failed |= test_multithread();
	failed |= test_blocked_injected("nanosleep", child_sleep, SYS_clock_nanosleep,
					ERESTART_RESTARTBLOCK, false);
	failed |= test_blocked_injected("futex", child_futex, SYS_futex, ERESTARTSYS, false);
	failed |= test_blocked_injected("read", child_read, SYS_read, ERESTARTSYS, false);
	failed |= test_blocked_injected("read", child_read, SYS_read, ERESTARTSYS, true);
	failed |= test_signal_during_injection();
	failed |= test_churn();
	return failed ? 1 : 0;
}
