/* SPDX-License-Identifier: MIT */
/* HOST:PORT ([V6ADDR]:PORT) parsing and resolution for the stream's sockets. */
#pragma once

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>

/* -EINVAL (msg says why) unless host_port is HOST:PORT or [V6ADDR]:PORT, PORT 0..65535. */
int stream_addr_check(const char *host_port, char *msg, size_t len);
/* Resolves host_port (TCP). passive: for bind(), an empty HOST meaning any address.
 * -EINVAL for a malformed string, -EHOSTUNREACH if it does not resolve (msg says why). */
int stream_addr_resolve(const char *host_port, bool passive, struct addrinfo **ret, char *msg,
			size_t len);
/* A listening socket (SO_REUSEADDR, CLOEXEC) for host_port; returns the fd or -errno. */
int stream_listen(const char *host_port, char *msg, size_t len);
/* Formats a socket's local address as HOST:PORT. */
void stream_sockname(int fd, char *out, size_t len);
