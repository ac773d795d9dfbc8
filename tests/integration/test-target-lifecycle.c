/* SPDX-License-Identifier: MIT */
/*
 * The target's own life around an attach: a process stopped by job control (SIGSTOP) stays
 * stopped across attach, injection and detach and runs again on SIGCONT; a process killed
 * while held can be reaped by its parent once the target is freed; a thread that cannot stop
 * fails the attach without leaving the target stuck.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target/attach.h"
#include "target/inject.h"
#include "test-check.h"
#include "test-proc.h"

#define TIMEOUT_MS 20000
#define QUIET_MS   200
#define NTHREADS   3


static void *spin(void *arg)
{
	for (;;)
		__atomic_add_fetch((long *)arg, 1, __ATOMIC_RELAXED);
	return NULL;
}

/* NTHREADS threads (main included) incrementing *counter. */
static pid_t start_spinner(long *counter)
{
	pid_t pid = fork();

	if (pid == 0) {
		for (int i = 1; i < NTHREADS; i++) {
			pthread_t th;

			if (pthread_create(&th, NULL, spin, counter) != 0)
				_exit(2);
		}
		spin(counter);
	}
	return pid;
}

static long counter_now(long *counter)
{
	return __atomic_load_n(counter, __ATOMIC_SEQ_CST);
}

/* Do all NTHREADS threads of pid exist and show state 'want' (0: any) in /proc? */
static bool all_in_state(pid_t pid, char want)
{
	char path[64];
	struct dirent *de;
	int n = 0, ok = 0;
	DIR *dir;

	test_proc_path(path, sizeof(path), pid, "task");
	dir = opendir(path);
	if (!dir)
		return false;
	while ((de = readdir(dir))) {
		char stat[320];
		int state;

		if (de->d_name[0] == '.')
			continue;
		n++;
		snprintf(stat, sizeof(stat), "task/%s/stat", de->d_name);
		state = test_proc_state(pid, stat);
		ok += state > 0 && state != '?' && (!want || state == want);
	}
	closedir(dir);
	return n == NTHREADS && ok == n;
}

static bool wait_all_in_state(pid_t pid, char want)
{
	for (int i = 0; i < TIMEOUT_MS; i++) {
		if (all_in_state(pid, want))
			return true;
		usleep(1000);
	}
	return false;
}

static bool counter_moves(long *counter)
{
	long before = counter_now(counter);

	for (int i = 0; i < TIMEOUT_MS; i++) {
		if (counter_now(counter) != before)
			return true;
		usleep(1000);
	}
	return false;
}

static int test_stopped_stays_stopped(long *counter)
{
	const long args[6] = {0};
	struct target *t = NULL;
	struct target_error err;
	long result, held;
	pid_t pid;

	pid = start_spinner(counter);
	/*
	 * All threads must exist before SIGSTOP: the counter moves as soon as the first spinner
	 * runs, and a stop that lands while main is still creating threads leaves fewer of them.
	 */
	CHECK(pid > 0 && counter_moves(counter) && wait_all_in_state(pid, 0), "spinner");
	CHECK(kill(pid, SIGSTOP) == 0 && wait_all_in_state(pid, 'T'), "SIGSTOP");
	held = counter_now(counter);
	CHECK(target_attach(pid, &t, &err) == 0, "attach: %s", err.msg);
	for (size_t i = 0; i < target_nthreads(t); i++)
		CHECK(target_thread_at(t, i)->group_stop, "thread %zu not in group stop", i);
	CHECK(target_inject_syscall(t, SYS_getpid, args, &result) == 0 && result == pid,
	      "getpid: %ld", result);
	CHECK(target_detach(t) == 0, "detach");
	target_free(t);
	t = NULL;
	CHECK(wait_all_in_state(pid, 'T'), "not stopped again after detach");
	usleep(QUIET_MS * 1000);
	CHECK(counter_now(counter) == held, "ran while stopped by job control");
	CHECK(kill(pid, SIGCONT) == 0 && counter_moves(counter), "SIGCONT did not resume it");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	printf("PASS stopped-stays-stopped: SIGSTOPped across attach/inject/detach, "
	       "resumed by SIGCONT\n");
	return 0;
fail:
	target_free(t);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, __WALL);
	}
	return -1;
}

/* The target's parent is a process of its own (not us, the tracer): it must get the exit. */
static pid_t start_parent(long *counter, int rep)
{
	pid_t parent = fork();

	if (parent == 0) {
		int status = -1;
		pid_t pid = start_spinner(counter);

		if (write(rep, &pid, sizeof(pid)) != sizeof(pid))
			_exit(2);
		waitpid(pid, &status, 0);
		_exit(write(rep, &status, sizeof(status)) == sizeof(status) ? 0 : 2);
	}
	return parent;
}

static int test_killed_while_held(long *counter)
{
	struct pollfd p = {.events = POLLIN};
	struct target *t = NULL;
	struct target_error err;
	int rep[2], status = 0;
	pid_t parent, pid = -1;

	CHECK(pipe2(rep, O_CLOEXEC) == 0, "pipe");
	parent = start_parent(counter, rep[1]);
	CHECK(parent > 0 && read(rep[0], &pid, sizeof(pid)) == sizeof(pid), "fork");
	CHECK(counter_moves(counter), "spinner");
	CHECK(target_attach(pid, &t, &err) == 0, "attach: %s", err.msg);
	CHECK(kill(pid, SIGKILL) == 0, "kill");
	target_detach(t); /* fails with ESRCH: they are dead */
	target_free(t);
	t = NULL;
	p.fd = rep[0];
	CHECK(poll(&p, 1, TIMEOUT_MS) == 1 &&
		  read(rep[0], &status, sizeof(status)) == sizeof(status),
	      "its parent could not reap the killed target");
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %#x", status);
	CHECK(waitpid(parent, &status, 0) == parent && WIFEXITED(status) &&
		  WEXITSTATUS(status) == 0,
	      "parent failed");
	close(rep[0]);
	close(rep[1]);
	printf("PASS killed-while-held: reaped by its parent after target_free()\n");
	return 0;
fail:
	target_free(t);
	if (pid > 0)
		kill(pid, SIGKILL);
	return -1;
}

static char proc_state(pid_t pid)
{
	int state = test_proc_state(pid, "stat");

	return state < 0 ? '?' : (char)state;
}

struct stuck_attach {
	pid_t pid;
	int r;
	struct target_error err;
};

/* From a thread of its own: when it exits, the kernel detaches whatever it still traces. */
static void *attach_thread(void *arg)
{
	struct stuck_attach *a = arg;
	struct target *t = NULL;

	a->r = target_attach(a->pid, &t, &a->err);
	target_free(t);
	return NULL;
}

/*
 * A thread that cannot stop (vfork() parent waiting, TASK_KILLABLE: PTRACE_INTERRUPT does not
 * wake it) makes the attach fail with -ETIMEDOUT. Done from a thread that then exits, the
 * target is let go by the kernel and runs on when the vfork child exits.
 */
static int test_unstoppable(void)
{
	struct stuck_attach a = {0};
	struct pollfd p = {.events = POLLIN};
	int hold[2], rep[2], status;
	pthread_t th;
	char c = 0;

	CHECK(pipe2(hold, O_CLOEXEC) == 0 && pipe2(rep, O_CLOEXEC) == 0, "pipe");
	a.pid = fork();
	if (a.pid == 0) {
		if (vfork() == 0) {
			if (read(hold[0], &c, 1) < 0)
				_exit(1);
			_exit(0);
		}
		_exit(write(rep[1], "v", 1) == 1 ? 0 : 2);
	}
	CHECK(a.pid > 0, "fork");
	for (int i = 0; i < TIMEOUT_MS && proc_state(a.pid) != 'D'; i++)
		usleep(1000);
	CHECK(proc_state(a.pid) == 'D', "not waiting in vfork()");
	CHECK(pthread_create(&th, NULL, attach_thread, &a) == 0 && pthread_join(th, NULL) == 0,
	      "attach thread");
	CHECK(a.r == -ETIMEDOUT && a.err.kind == TARGET_ERR_TIMEOUT, "r=%d kind=%d %s", a.r,
	      a.err.kind, a.err.msg);
	CHECK(write(hold[1], "x", 1) == 1, "release the vfork child");
	p.fd = rep[0];
	CHECK(poll(&p, 1, TIMEOUT_MS) == 1 && read(rep[0], &c, 1) == 1 && c == 'v',
	      "target stuck after the failed attach (state %c)", proc_state(a.pid));
	CHECK(waitpid(a.pid, &status, 0) == a.pid && WIFEXITED(status) && !WEXITSTATUS(status),
	      "target status %#x", status);
	printf("PASS unstoppable: %s; the target ran on\n", a.err.msg);
	return 0;
fail:
	if (a.pid > 0) {
		kill(a.pid, SIGKILL);
		waitpid(a.pid, NULL, __WALL);
	}
	return -1;
}

int main(void)
{
	long *counter;
	int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("SKIP: needs root (CAP_SYS_PTRACE)\n");
		return 77;
	}
	counter =
	    mmap(NULL, sizeof(*counter), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counter == MAP_FAILED)
		return 1;
	failed |= test_stopped_stays_stopped(counter);
	failed |= test_killed_while_held(counter);
	failed |= test_unstoppable();
	return failed ? 1 : 0;
}
