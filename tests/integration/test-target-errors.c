/* SPDX-License-Identifier: MIT */
/*
 * target_attach() refusals: no such process, zombie, kernel thread, ourselves (process and
 * thread), not permitted (an unprivileged attacher against a root child), already traced.
 * Each gives its own error kind and errno, and leaves the target as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target/attach.h"
#include "test-check.h"
#include "test-proc.h"

#define NOBODY	   65534
#define TIMEOUT_MS 20000


/* A child that echoes each byte it reads back, and exits 0 on 'Q'. */
struct echo {
	pid_t pid;
	int cmd, rep;
};

static int echo_start(struct echo *e)
{
	int cmd[2], rep[2];

	if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0)
		return -errno;
	e->pid = fork();
	if (e->pid < 0)
		return -errno;
	if (e->pid == 0) {
		char c;

		while (read(cmd[0], &c, 1) == 1) {
			if (write(rep[1], &c, 1) != 1)
				_exit(3);
			if (c == 'Q')
				_exit(0);
		}
		_exit(4);
	}
	close(cmd[0]);
	close(rep[1]);
	e->cmd = cmd[1];
	e->rep = rep[0];
	return 0;
}

/* The child still works: it echoes, exits 0 when told, and nobody traces it. */
static bool echo_unharmed(struct echo *e)
{
	struct pollfd p = {.fd = e->rep, .events = POLLIN};
	char c = 'Q', back = 0;
	int status = -1;

	if (write(e->cmd, &c, 1) != 1 || poll(&p, 1, TIMEOUT_MS) != 1 ||
	    read(e->rep, &back, 1) != 1 || back != 'Q')
		return false;
	if (waitpid(e->pid, &status, 0) != e->pid)
		return false;
	e->pid = -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void echo_stop(struct echo *e)
{
	if (e->pid > 0) {
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
	}
	close(e->cmd);
	close(e->rep);
}

static pid_t tracer_of(pid_t pid)
{
	char buf[4096], *p;

	if (test_proc_read(pid, "status", buf, sizeof(buf)) <= 0)
		return -1;
	p = strstr(buf, "TracerPid:");
	return p ? (pid_t)strtol(p + 10, NULL, 10) : -1;
}

static int expect_refusal(pid_t pid, int want_r, enum target_error_kind want_kind, const char *name)
{
	struct target *t = NULL;
	struct target_error err;
	int r = target_attach(pid, &t, &err);

	CHECK(r == want_r && err.kind == want_kind, "%s: r=%d kind=%d msg=\"%s\"", name, r,
	      err.kind, err.msg);
	CHECK(t == NULL, "%s: a target was returned", name);
	CHECK(err.msg[0], "%s: no message", name);
	printf("PASS %s: %s (%s)\n", name, err.msg, strerror(-r));
	return 0;
fail:
	target_free(t);
	return -1;
}

static int test_noproc(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	CHECK(pid > 0 && waitpid(pid, NULL, 0) == pid, "fork");
	return expect_refusal(pid, -ESRCH, TARGET_ERR_NOPROC, "no-such-process");
fail:
	return -1;
}

static int test_zombie(void)
{
	siginfo_t si = {0};
	int status = 0;
	pid_t pid = fork();

	if (pid == 0)
		_exit(7);
	CHECK(pid > 0, "fork");
	/* WNOWAIT: wait until it has exited, but leave it a zombie. */
	CHECK(waitid(P_PID, pid, &si, WEXITED | WNOWAIT) == 0, "waitid");
	CHECK(expect_refusal(pid, -EOWNERDEAD, TARGET_ERR_ZOMBIE, "zombie") == 0, "zombie");
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7,
	      "zombie's exit status lost: %#x", status);
	return 0;
fail:
	return -1;
}

static int test_kthread(void)
{
	char comm[32];

	if (test_proc_read(2, "comm", comm, sizeof(comm)) <= 0 ||
	    strncmp(comm, "kthreadd", 8) != 0) {
		printf("SKIP kernel-thread: pid 2 is not kthreadd here (a pid namespace?)\n");
		return 0;
	}
	CHECK(expect_refusal(2, -EINVAL, TARGET_ERR_KTHREAD, "kernel-thread") == 0, "kthread");
	CHECK(tracer_of(2) == 0, "kthreadd is traced");
	return 0;
fail:
	return -1;
}

static void *idle_thread(void *arg)
{
	int *tid = arg;

	__atomic_store_n(tid, gettid(), __ATOMIC_SEQ_CST);
	pause();
	return NULL;
}

static int test_self(void)
{
	pthread_t th;
	int tid = 0;

	CHECK(expect_refusal(getpid(), -EDEADLK, TARGET_ERR_SELF, "self") == 0, "self");
	CHECK(pthread_create(&th, NULL, idle_thread, &tid) == 0, "pthread_create");
	while (!__atomic_load_n(&tid, __ATOMIC_SEQ_CST))
		usleep(100);
	CHECK(expect_refusal(tid, -EDEADLK, TARGET_ERR_SELF, "self-thread") == 0, "self thread");
	CHECK(tracer_of(getpid()) == 0, "we are traced");
	return 0;
fail:
	return -1;
}

/* The attacher drops to nobody (and loses every capability); the target stays root. */
static int test_not_permitted(void)
{
	struct target_error err = {0};
	struct echo e = {.pid = -1, .cmd = -EBADF, .rep = -EBADF};
	int res[2], r = 0, status;
	pid_t attacher;

	CHECK(echo_start(&e) == 0, "fork target");
	CHECK(pipe2(res, O_CLOEXEC) == 0, "pipe");
	attacher = fork();
	if (attacher == 0) {
		struct target *t = NULL;

		if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
		    setresuid(NOBODY, NOBODY, NOBODY) < 0)
			_exit(2);
		r = target_attach(e.pid, &t, &err);
		target_free(t);
		if (write(res[1], &r, sizeof(r)) != sizeof(r) ||
		    write(res[1], &err, sizeof(err)) != sizeof(err))
			_exit(3);
		_exit(0);
	}
	CHECK(attacher > 0 && waitpid(attacher, &status, 0) == attacher, "fork attacher");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "attacher failed: %#x", status);
	CHECK(read(res[0], &r, sizeof(r)) == sizeof(r) &&
		  read(res[0], &err, sizeof(err)) == sizeof(err),
	      "no result");
	CHECK(r == -EPERM && err.kind == TARGET_ERR_PERM && strstr(err.msg, "CAP_SYS_PTRACE"),
	      "r=%d kind=%d msg=\"%s\"", r, err.kind, err.msg);
	CHECK(tracer_of(e.pid) == 0, "target left traced");
	CHECK(echo_unharmed(&e), "target harmed");
	printf("PASS not-permitted: %s\n", err.msg);
	close(res[0]);
	close(res[1]);
	echo_stop(&e);
	return 0;
fail:
	echo_stop(&e);
	return -1;
}

static int test_already_traced(void)
{
	struct echo e = {.pid = -1, .cmd = -EBADF, .rep = -EBADF};
	struct target *t = NULL;
	struct target_error err;

	CHECK(echo_start(&e) == 0, "fork target");
	CHECK(target_attach(e.pid, &t, &err) == 0, "first attach: %s", err.msg);
	CHECK(expect_refusal(e.pid, -EBUSY, TARGET_ERR_TRACED, "already-traced") == 0, "twice");
	CHECK(target_detach(t) == 0, "detach");
	target_free(t);
	t = NULL;
	CHECK(tracer_of(e.pid) == 0, "target left traced");
	CHECK(echo_unharmed(&e), "target harmed");
	echo_stop(&e);
	return 0;
fail:
	target_free(t);
	echo_stop(&e);
	return -1;
}

int main(void)
{
	int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("SKIP: needs root: the not-permitted case drops from root to nobody\n");
		return 77;
	}
	failed |= test_noproc();
	failed |= test_zombie();
	failed |= test_kthread();
	failed |= test_self();
	failed |= test_not_permitted();
	failed |= test_already_traced();
	return failed ? 1 : 0;
}
