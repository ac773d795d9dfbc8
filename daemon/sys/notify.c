/* SPDX-License-Identifier: MIT */
/*
 * sd_notify(3) and sd_listen_fds(3) without libsystemd: both protocols are a few lines of
 * environment and one datagram (systemd's docs/... "sd_notify" and "socket activation").
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sys/notify.h"

/* sd_listen_fds(3): passed descriptors start right after stdin, stdout and stderr. */
#define SVC_LISTEN_FDS_START 3
/* One notification: systemd reads at most a page-sized datagram per message. */
#define SVC_NOTIFY_MAX 4096

/* Fills addr from $NOTIFY_SOCKET: a path, or "@name" for the abstract namespace. */
static int notify_addr(const char *e, struct sockaddr_un *addr, socklen_t *ret_len)
{
	size_t n = strlen(e);

	if ((e[0] != '/' && e[0] != '@') || n < 2 || n >= sizeof(addr->sun_path))
		return -EINVAL;
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	memcpy(addr->sun_path, e, n);
	if (e[0] == '@')
		addr->sun_path[0] = '\0';
	/* An abstract name's length is exact: no trailing NUL counted. */
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (e[0] == '/'));
	return 0;
}

static int notify_send(const char *e, const char *text, size_t len)
{
	struct sockaddr_un addr;
	socklen_t alen;
	int fd, r = notify_addr(e, &addr, &alen);

	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = sendto(fd, text, len, MSG_NOSIGNAL, (struct sockaddr *)&addr, alen) < 0 ? -errno : 0;
	close(fd);
	return r;
}

int svc_notify(const char *fmt, ...)
{
	const char *e = getenv("NOTIFY_SOCKET");
	char text[SVC_NOTIFY_MAX];
	va_list ap;
	int n;

	if (!e || !*e)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(text))
		return -EMSGSIZE;
	return notify_send(e, text, (size_t)n);
}

/* A decimal in [min, max], nothing else. */
static int parse_long(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static void unset_listen_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int svc_listen_fds(void)
{
	long pid, n;
	int r;

	if (!getenv("LISTEN_PID")) {
		unset_listen_env();
		return 0;
	}
	r = parse_long(getenv("LISTEN_PID"), 1, INT_MAX, &pid);
	if (r >= 0 && pid != getpid()) {
		/* Meant for another process (our parent, say): not ours, and not our children's. */
		unset_listen_env();
		return 0;
	}
	if (r >= 0)
		r = parse_long(getenv("LISTEN_FDS"), 0, INT_MAX - SVC_LISTEN_FDS_START, &n);
	unset_listen_env();
	if (r < 0)
		return r;
	for (int fd = SVC_LISTEN_FDS_START; fd < SVC_LISTEN_FDS_START + n; fd++) {
		int fl = fcntl(fd, F_GETFD);

		if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
			return -errno;
	}
	return (int)n;
}
