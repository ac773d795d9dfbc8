/* SPDX-License-Identifier: MIT */
/*
 * The receiver (proto/STREAM.md): one io_uring event loop serving every sender at once. Each
 * authenticated stream is written as DIR/<name>-<session>.img.partial, checked as it arrives and
 * renamed to .img when complete. It never logs: what a user should see goes to opts->log.
 */
#pragma once

#include <stdint.h>

#include "stream-auth.h"

enum recv_log_level {
	RECV_LOG_INFO = 0,
	RECV_LOG_WARN = 1,
};

struct recv_opts {
	int listen_fd; /* a listening TCP socket (stays the caller's) */
	int dir_fd;    /* the directory images go to (stays the caller's) */
	int stop_fd;   /* readable (signalfd, eventfd) means: stop */
	const struct stream_key *key;
	unsigned resume_timeout_s;    /* keep a detached session this long (default 60) */
	unsigned handshake_timeout_s; /* a peer must authenticate within (default 10) */
	unsigned idle_timeout_s;      /* a stream with no bytes for this long is detached (60) */
	unsigned progress_interval_s; /* per-stream progress lines (default 5; 0: default) */
	unsigned max_conns;	      /* connections at once (default 64) */
	void (*log)(void *ctx, enum recv_log_level level, const char *msg);
	void *log_ctx;
};

/* Runs until stop_fd becomes readable. -errno if the loop itself cannot run. */
int recv_run(const struct recv_opts *opts);
