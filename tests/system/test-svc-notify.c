/* SPDX-License-Identifier: MIT */
/*
 * svc_notify() against a real AF_UNIX datagram listener as $NOTIFY_SOCKET, by path and in the
 * abstract namespace, and svc_listen_fds() with the environment systemd sets (the real
 * systemd-socket-activate is test-listen-fds.sh's).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sys/notify.h"
#include "sys-test-util.h"

/* A hang guard: a sent datagram is there at once (never a measurement). */
#define RECV_MS 10000

static int failures;

/* Checks go on after a failure: each prints where it was and what. */
#define EXPECT(cond)                                                                               \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("FAIL %s:%d: %s\n", __func__, __LINE__, #cond);                     \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

/* svc_notify() as the caller would, then exactly text must arrive at fd. */
static void expect_msg(int fd, int r, const char *text)
{
	char buf[4200];

	EXPECT(r == 0);
	EXPECT(systest_dgram_recv(fd, buf, sizeof(buf), RECV_MS) == (int)strlen(text));
	EXPECT(!strcmp(buf, text));
}

static void test_notify_path(void)
{
	char dir[] = "/tmp/uffsnap-notify-XXXXXX", path[64];
	int fd;

	EXPECT(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/notify", dir);
	fd = systest_dgram_bind(path);
	EXPECT(fd >= 0);
	setenv("NOTIFY_SOCKET", path, 1);
	expect_msg(fd, svc_notify("READY=1"), "READY=1");
	expect_msg(fd, svc_notify("STATUS=%d jobs running", 2), "STATUS=2 jobs running");
	expect_msg(fd, svc_notify("STOPPING=1"), "STOPPING=1");
	close(fd);
	unlink(path);
	/* Nobody listening any more: the error, not a silent success. */
	EXPECT(svc_notify("READY=1") == -ENOENT);
	rmdir(dir);
}

static void test_notify_abstract(void)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "@uffsnap-test-notify-%d", (int)getpid());
	fd = systest_dgram_bind(name);
	EXPECT(fd >= 0);
	setenv("NOTIFY_SOCKET", name, 1);
	expect_msg(fd, svc_notify("READY=1"), "READY=1");
	expect_msg(fd, svc_notify("STATUS=%s", "listening on /run/uffsnapd/control.sock"),
		   "STATUS=listening on /run/uffsnapd/control.sock");
	close(fd);
}

static void test_notify_edges(void)
{
	char big[5000];

	unsetenv("NOTIFY_SOCKET");
	EXPECT(svc_notify("READY=1") == 0); /* not under systemd */
	setenv("NOTIFY_SOCKET", "", 1);
	EXPECT(svc_notify("READY=1") == 0);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	EXPECT(svc_notify("READY=1") == -EINVAL);
	setenv("NOTIFY_SOCKET", "@x", 1);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	EXPECT(svc_notify("STATUS=%s", big) == -EMSGSIZE);
	unsetenv("NOTIFY_SOCKET");
}

static void set_listen(const char *pid, const char *fds)
{
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", fds, 1);
	setenv("LISTEN_FDNAMES", "control", 1);
}

static bool env_clear(void)
{
	return !getenv("LISTEN_PID") && !getenv("LISTEN_FDS") && !getenv("LISTEN_FDNAMES");
}

static void test_listen_fds(void)
{
	char me[16];
	int sv[2];

	snprintf(me, sizeof(me), "%d", (int)getpid());
	EXPECT(svc_listen_fds() == 0 && env_clear()); /* not socket-activated */
	/* Two sockets where systemd puts them, without FD_CLOEXEC, as they arrive. */
	EXPECT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	EXPECT(dup2(sv[0], 3) == 3 && dup2(sv[1], 4) == 4);
	close(sv[0] == 3 || sv[0] == 4 ? -1 : sv[0]);
	close(sv[1] == 3 || sv[1] == 4 ? -1 : sv[1]);
	set_listen(me, "2");
	EXPECT(svc_listen_fds() == 2 && env_clear());
	EXPECT(fcntl(3, F_GETFD) & FD_CLOEXEC);
	EXPECT(fcntl(4, F_GETFD) & FD_CLOEXEC);
	/* For another process (our parent's): not ours, and gone from our environment. */
	set_listen("1", "2");
	EXPECT(svc_listen_fds() == 0 && env_clear());
	set_listen(me, "two");
	EXPECT(svc_listen_fds() == -EINVAL && env_clear());
	set_listen("-5", "1");
	EXPECT(svc_listen_fds() == -EINVAL && env_clear());
	close(3);
	close(4);
}

int main(void)
{
	test_notify_path();
	test_notify_abstract();
	test_notify_edges();
	test_listen_fds();
	printf("%d passed, %d failed\n", failures ? 0 : 4, failures ? 1 : 0);
	return failures ? 1 : 0;
}
