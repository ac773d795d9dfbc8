/* SPDX-License-Identifier: MIT */
/*
 * The process events connector, for real: the fork, exec and exit of a child are seen with the
 * right pids and exit code; still seen after svc_caps_drop() (to nobody) on a socket subscribed
 * before; a new subscription after the drop fails with -EPERM (or, on Linux >= 6.6, works);
 * and lost events are reported as -ENOBUFS, after which reading goes on.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/proc-events.h"
#include "sys/caps.h"

/* A hang guard for events that should arrive at once (never a measurement). */
#define EVENT_WAIT_MS 30000
/* Forks with nobody reading: far more events than the shrunk receive buffer holds. */
#define FLOOD_FORKS 1000
/* The socket's buffer for the overflow test (the kernel doubles it, to at least 4.5 KiB). */
#define FLOOD_RCVBUF 4096
#define CHILD_EXIT   3

struct seen {
	pid_t parent, child;
	bool fork, exec, exit;
	int exit_code;
};

static void on_event(void *ctx, const struct procev_event *e)
{
	struct seen *s = ctx;

	if (e->type == PROCEV_FORK && e->tgid == s->parent && e->child_tgid == s->child &&
	    e->child_pid == s->child)
		s->fork = true;
	if (e->type == PROCEV_EXEC && e->tgid == s->child && e->pid == s->child)
		s->exec = true;
	if (e->type == PROCEV_EXIT && e->tgid == s->child && e->pid == s->child) {
		s->exit = true;
		s->exit_code = e->exit_code;
	}
}

/* Forks a child that execs sh -c 'exit 3'; waits until its three events are read. */
static int see_child(struct procev *p, const char *when)
{
	struct seen s = {.parent = getpid()};
	struct pollfd pfd = {.fd = procev_fd(p), .events = POLLIN};
	int st;

	s.child = fork();
	if (s.child == 0) {
		execl("/bin/sh", "sh", "-c", "exit 3", (char *)NULL);
		_exit(127);
	}
	waitpid(s.child, &st, 0);
	while (!(s.fork && s.exec && s.exit)) {
		int r = poll(&pfd, 1, EVENT_WAIT_MS);

		if (r <= 0) {
			fprintf(stderr,
				"FAIL %s: events of child %d missing (fork %d exec %d exit %d)\n",
				when, s.child, s.fork, s.exec, s.exit);
			return -1;
		}
		r = procev_read(p, on_event, &s);
		if (r < 0 && r != -ENOBUFS) {
			fprintf(stderr, "FAIL %s: procev_read: %s\n", when, strerror(-r));
			return -1;
		}
	}
	if (s.exit_code != st || !WIFEXITED(st) || WEXITSTATUS(st) != CHILD_EXIT) {
		fprintf(stderr, "FAIL %s: exit code %#x, wait status %#x\n", when, s.exit_code, st);
		return -1;
	}
	printf("ok %s: fork, exec, exit of %d seen\n", when, s.child);
	return 0;
}

static void ignore(void *ctx, const struct procev_event *e)
{
	(*(long *)ctx)++;
}

/* Overflows the socket: procev_read() must say -ENOBUFS once, and keep working after it. */
static int overflow(struct procev *p)
{
	long n = 0;
	int r, nobufs = 0, size = FLOOD_RCVBUF;

	if (setsockopt(procev_fd(p), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) < 0)
		return fprintf(stderr, "FAIL overflow: SO_RCVBUF: %m\n"), -1;
	for (int i = 0; i < FLOOD_FORKS; i++) {
		pid_t c = fork();

		if (c == 0)
			_exit(0);
		if (c > 0)
			waitpid(c, NULL, 0);
	}
	/* Until drained: other processes' events may go on arriving, hence the bound. */
	for (int i = 0; i < FLOOD_FORKS && (r = procev_read(p, ignore, &n)) != 0; i++)
		if (r == -ENOBUFS)
			nobufs++;
		else if (r < 0)
			return fprintf(stderr, "FAIL overflow: %s\n", strerror(-r)), -1;
	if (!nobufs)
		return fprintf(stderr, "FAIL overflow: %d forks, no -ENOBUFS\n", FLOOD_FORKS), -1;
	printf("ok overflow: -ENOBUFS reported (%ld events read)\n", n);
	/* Room again, so that other processes' events cannot crowd out the child's. */
	size = 4 << 20;
	if (setsockopt(procev_fd(p), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		return fprintf(stderr, "FAIL overflow: SO_RCVBUFFORCE: %m\n"), -1;
	return see_child(p, "after the overflow");
}

/* In a child (the drop is for good): subscribe, drop to nobody, still see events. */
static int after_drop(void)
{
	struct svc_caps_error err = {{0}};
	struct procev *p = NULL, *late = NULL;
	int r = procev_open(&p), rc = 1;

	if (r < 0)
		return fprintf(stderr, "FAIL: procev_open: %s\n", strerror(-r)), 1;
	if (svc_caps_drop("nobody", &err) < 0) {
		fprintf(stderr, "FAIL: svc_caps_drop: %s\n", err.msg);
		goto out;
	}
	if (see_child(p, "after the drop to nobody") < 0)
		goto out;
	/*
	 * Linux 6.6 lets anyone subscribe (drivers/connector: NL_CFG_F_NONROOT_RECV, "Allow
	 * non-root users access"); before it, EPERM. Either way the answer must be clean.
	 */
	r = procev_open(&late);
	if (r == 0 && see_child(late, "subscribed after the drop (Linux >= 6.6)") < 0)
		goto out;
	if (r < 0 && r != -EPERM) {
		fprintf(stderr, "FAIL: subscribing without CAP_NET_ADMIN: %s\n", strerror(-r));
		goto out;
	}
	if (r < 0)
		printf("ok a new subscription after the drop: %s\n", strerror(-r));
	rc = 0;
out:
	procev_free(late);
	procev_free(p);
	return rc;
}

int main(void)
{
	struct procev *p = NULL;
	int r, failed = 0, st;
	pid_t c;

	if (getuid() != 0) {
		printf("SKIP: subscribing to process events needs CAP_NET_ADMIN (run as root)\n");
		return 77;
	}
	r = procev_open(&p);
	if (r < 0) {
		fprintf(stderr, "FAIL: procev_open as root: %s\n", strerror(-r));
		return 1;
	}
	failed += see_child(p, "as root") < 0;
	failed += overflow(p) < 0;
	procev_free(p);
	fflush(stdout);
	c = fork();
	if (c == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		r = after_drop();
		fflush(stdout);
		_exit(r);
	}
	failed += waitpid(c, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	printf("%d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
	return failed ? 1 : 0;
}
