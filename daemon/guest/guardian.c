/* SPDX-License-Identifier: MIT */
/*
 * The guardian (guardian.h). It blocks reading a pipe whose write end only we hold: each byte
 * is a state ('S' the guest is stopped by us, 'C' a migration's switch-over may be under way,
 * 'R' it runs or is not ours to resume, 'D' done), or 'U' followed by a
 * newline-ended QMP command to send when undoing; end of file without 'D' means we died. QEMU
 * serves the QMP connection, not a process: the guardian's dup of our socket is the same
 * connection, already past qmp_capabilities, so it can speak on it at once. Replies meant for us
 * may still be in the socket; it reads and drops everything until its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/guardian.h"
#include "target/holder.h"

struct guardian {
	int wfd;
	pid_t pid;
};

static void say(int fd, const char *line)
{
	size_t n = strlen(line);

	if (write(fd, line, n) < 0) {
		/* QEMU gone: nothing left to resume */
	}
}

/* Reads and drops what QEMU sends until a reply carrying our id, or 5 s of QEMU's silence. */
static void drain_until(int fd, const char *id)
{
	char buf[4096 + 64];
	size_t kept = 0; /* the end of the last read, where an id may have been cut */

	for (int quiet = 0; quiet < 50;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 100) <= 0) {
			quiet++;
			continue;
		}
		n = read(fd, buf + kept, 4096);
		if (n <= 0)
			return;
		buf[kept + n] = 0;
		if (strstr(buf, id))
			return;
		kept = kept + n > 63 ? 63 : kept + n;
		memmove(buf, buf + strlen(buf) - kept, kept);
	}
}

static void resume_guest(int qmp)
{
	/* A migration of the device state may still be running; `cont` is refused meanwhile, and
	 * once after it completes ("Migration is not finalized yet"): ask a few times. */
	say(qmp, "{\"execute\":\"migrate_cancel\",\"id\":\"guardian-0\"}\n");
	drain_until(qmp, "guardian-0");
	for (int i = 1; i <= 20; i++) {
		char line[96], id[32];

		snprintf(id, sizeof(id), "\"guardian-%d\"", i);
		snprintf(line, sizeof(line), "{\"execute\":\"cont\",\"id\":%s}\n", id);
		say(qmp, line);
		drain_until(qmp, id);
		usleep(50000);
	}
}

/*
 * Whether QEMU still waits before its switch-over: our migrate-continue, if we sent it, came
 * before this query on the same connection, so QEMU has acted on it. Only then is resuming
 * the source safe; after it, the guest may run at the destination.
 */
static bool before_switchover(int fd)
{
	char buf[16384];
	size_t have = 0;

	say(fd, "{\"execute\":\"query-migrate\",\"id\":\"guardian-q\"}\n");
	for (int quiet = 0; quiet < 50 && have < sizeof(buf) - 1;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char *line, *end;
		ssize_t n;

		if (poll(&p, 1, 100) <= 0) {
			quiet++;
			continue;
		}
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			return false;
		have += n;
		buf[have] = 0;
		line = strstr(buf, "\"guardian-q\"");
		if (!line || !(end = strchr(line, '\n')))
			continue;
		*end = 0;
		while (line > buf && line[-1] != '\n') /* back to the reply's own line */
			line--;
		return strstr(line, "pre-switchover") != NULL;
	}
	return false;
}

static void guardian_child(int rfd, int qmp)
{
	char state = 'R', c, undo[4096] = "";
	size_t nundo = 0;
	bool in_undo = false;
	ssize_t n;

	holder_isolate();
	prctl(PR_SET_NAME, "uffsnapd-guard");
	while ((n = read(rfd, &c, 1)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (in_undo) {
			if (nundo < sizeof(undo) - 1)
				undo[nundo++] = c;
			in_undo = c != '\n';
			continue;
		}
		if (c == 'U') {
			in_undo = true;
			nundo = 0;
			continue;
		}
		state = c;
		if (c == 'D')
			_exit(0);
	}
	if (state == 'S' || (state == 'C' && before_switchover(qmp)))
		resume_guest(qmp);
	if (nundo && !in_undo) {
		undo[nundo] = 0;
		say(qmp, undo);
		drain_until(qmp, "guardian-undo");
	}
	_exit(0);
}

int guardian_start(int qmp_fd, struct guardian **ret)
{
	struct guardian *g = calloc(1, sizeof(*g));
	int p[2];

	if (!g)
		return -ENOMEM;
	if (pipe2(p, O_CLOEXEC) < 0) {
		free(g);
		return -errno;
	}
	g->pid = fork();
	if (g->pid < 0) {
		int e = errno;

		close(p[0]);
		close(p[1]);
		free(g);
		return -e;
	}
	if (g->pid == 0) {
		int lo = p[0] < qmp_fd ? p[0] : qmp_fd, hi = p[0] < qmp_fd ? qmp_fd : p[0];

		/* Only the pipe and the QMP socket matter; other fds (outputs, clients' sockets,
		 * the holder's) must not be kept open by us after the daemon is gone. */
		close(p[1]);
		if (lo > 3)
			syscall(SYS_close_range, 3, lo - 1, 0);
		if (hi > lo + 1)
			syscall(SYS_close_range, lo + 1, hi - 1, 0);
		syscall(SYS_close_range, hi + 1, ~0U, 0);
		guardian_child(p[0], qmp_fd);
	}
	close(p[0]);
	g->wfd = p[1];
	*ret = g;
	return 0;
}

static void tell(struct guardian *g, char c)
{
	if (g && write(g->wfd, &c, 1) < 0) {
		/* the guardian is gone: it cannot help, nor harm */
	}
}

void guardian_undo(struct guardian *g, const char *qmp_line)
{
	size_t n = strlen(qmp_line);

	if (!g || n >= 4000 || n == 0 || qmp_line[n - 1] != '\n')
		return;
	tell(g, 'U');
	if (write(g->wfd, qmp_line, n) < 0) {
		/* the guardian is gone */
	}
}

void guardian_stopping(struct guardian *g)
{
	tell(g, 'S');
}

void guardian_switching(struct guardian *g)
{
	tell(g, 'C');
}

void guardian_resumed(struct guardian *g)
{
	tell(g, 'R');
}

void guardian_free(struct guardian *g)
{
	if (!g)
		return;
	tell(g, 'D');
	close(g->wfd);
	waitpid(g->pid, NULL, 0);
	free(g);
}
