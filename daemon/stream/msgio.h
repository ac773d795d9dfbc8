/* SPDX-License-Identifier: MIT */
/*
 * Blocking I/O of the stream's control messages (proto/STREAM.md), for the handshakes, which
 * are lock-step: the sender's (send.c) and a migration receiver's (daemon/migrate/).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/wire.h"

/* SO_RCVTIMEO and SO_SNDTIMEO of secs seconds. */
void stream_sock_timeouts(int fd, unsigned secs);
/* Sends (out) or receives exactly n bytes: -ETIMEDOUT, -ECONNRESET (closed), -errno. */
int stream_io_exact(int fd, uint8_t *p, size_t n, bool out);
/* One whole message; -EBADMSG if it does not check out, -EPROTONOSUPPORT, or as above. */
int stream_msg_recv(int fd, struct stream_msg *m);
