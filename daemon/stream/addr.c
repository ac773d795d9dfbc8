/* SPDX-License-Identifier: MIT */
/* HOST:PORT parsing and resolution (see stream/addr.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream/addr.h"

/* 0..65535 in decimal: getaddrinfo() would take 65537 as 1, and a service name as a port. */
static bool port_valid(const char *p)
{
	unsigned long v = 0;

	if (!*p || strlen(p) > 5)
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	return v <= 65535;
}

/* Splits "host:port" or "[v6]:port" into host and port; -EINVAL if malformed. */
static int split(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon, *h = s;
	size_t n;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		n = close - h;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', colon - s))
			return -EINVAL;
		n = colon - s;
	}
	if (n >= hlen || strlen(colon + 1) >= plen || !port_valid(colon + 1))
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

int stream_addr_check(const char *host_port, char *msg, size_t len)
{
	char host[256], port[32];

	if (split(host_port, host, sizeof(host), port, sizeof(port)) == 0)
		return 0;
	snprintf(msg, len, "'%s' is not HOST:PORT with a port from 0 to 65535 (use [ADDR]:PORT for "
		 "IPv6)", host_port);
	return -EINVAL;
}

int stream_addr_resolve(const char *host_port, bool passive, struct addrinfo **ret, char *msg,
			size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
	char host[256], port[32];
	int r;

	r = stream_addr_check(host_port, msg, len);
	if (r < 0)
		return r;
	split(host_port, host, sizeof(host), port, sizeof(port));
	if (passive)
		hints.ai_flags = AI_PASSIVE;
	r = getaddrinfo(host[0] ? host : NULL, port, &hints, ret);
	if (r) {
		snprintf(msg, len, "cannot resolve '%s': %s", host_port, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	return 0;
}

int stream_listen(const char *host_port, char *msg, size_t len)
{
	struct addrinfo *ai;
	int fd = -EBADF, one = 1, r;

	r = stream_addr_resolve(host_port, true, &ai, msg, len);
	if (r < 0)
		return r;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		r = -errno;
		snprintf(msg, len, "cannot create a socket: %s", strerror(-r));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		snprintf(msg, len, "cannot listen on '%s': %s", host_port, strerror(-r));
		close(fd);
		goto out;
	}
	r = fd;
out:
	freeaddrinfo(ai);
	return r;
}

void stream_sockname(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(out, len, "?");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(a->sin_port));
	}
}
