/* SPDX-License-Identifier: MIT */
/*
 * The shell tests' helper (not part of any product):
 *   systest-tool notify-listen NAME   bind a datagram socket at NAME (path or @abstract), print
 *                                     "listening", then every datagram as one line
 *   systest-tool connect PATH         connect to a stream socket, print the first line read
 *   systest-tool listen-probe         as a socket-activated service: svc_listen_fds(), then
 *                                     answer one connection on fd 3 with what it found, and
 *                                     svc_notify("READY=1")
 *   systest-tool caps-kept            print svc_caps_kept()
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sys/caps.h"
#include "sys/notify.h"
#include "sys-test-util.h"

/* Hang guards (never measurements). */
#define CONNECT_MS     30000
#define LINE_MS	       30000
#define LISTEN_IDLE_MS 300000

static int notify_listen(const char *name)
{
	char buf[4200];
	int fd = systest_dgram_bind(name), n;

	if (fd < 0) {
		fprintf(stderr, "systest-tool: cannot bind %s: %s\n", name, strerror(-fd));
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	while ((n = systest_dgram_recv(fd, buf, sizeof(buf), LISTEN_IDLE_MS)) >= 0) {
		/* One notification may hold several lines (VAR=value\n...): print each. */
		printf("%s\n", buf);
		fflush(stdout);
	}
	return n == -ETIMEDOUT ? 0 : 1;
}

static int connect_line(const char *path)
{
	char line[4096];
	int fd = systest_stream_connect(path, CONNECT_MS), n;

	if (fd < 0) {
		fprintf(stderr, "systest-tool: cannot connect to %s: %s\n", path, strerror(-fd));
		return 1;
	}
	n = systest_read_line(fd, line, sizeof(line), LINE_MS);
	close(fd);
	if (n < 0) {
		fprintf(stderr, "systest-tool: no line from %s: %s\n", path, strerror(-n));
		return 1;
	}
	printf("%s\n", line);
	return 0;
}

static int listen_probe(void)
{
	int n = svc_listen_fds(), c, cloexec;
	bool env = getenv("LISTEN_PID") || getenv("LISTEN_FDS") || getenv("LISTEN_FDNAMES");

	if (n != 1) {
		fprintf(stderr, "systest-tool: svc_listen_fds() = %d, expected 1\n", n);
		return 1;
	}
	cloexec = (fcntl(3, F_GETFD) & FD_CLOEXEC) != 0;
	c = accept4(3, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0) {
		fprintf(stderr, "systest-tool: accept on fd 3: %m\n");
		return 1;
	}
	dprintf(c, "n=%d cloexec=%d env=%s\n", n, cloexec, env ? "set" : "unset");
	close(c);
	n = svc_notify("READY=1");
	if (n < 0)
		fprintf(stderr, "systest-tool: svc_notify: %s\n", strerror(-n));
	return n < 0;
}

int main(int argc, char **argv)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (argc == 3 && !strcmp(argv[1], "notify-listen"))
		return notify_listen(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "connect"))
		return connect_line(argv[2]);
	if (argc == 2 && !strcmp(argv[1], "listen-probe"))
		return listen_probe();
	if (argc == 2 && !strcmp(argv[1], "caps-kept"))
		return printf("%s\n", svc_caps_kept()) < 0;
	fprintf(stderr, "usage: %s notify-listen NAME | connect PATH | listen-probe | caps-kept\n",
		argv[0]);
	return 2;
}
