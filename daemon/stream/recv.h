/* SPDX-License-Identifier: MIT */
/*
 * The receiver (proto/STREAM.md): one io_uring event loop serving every sender at once. Each
 * authenticated stream is written as DIR/<name>-<session>.img.partial, checked as it arrives and
 * renamed to .img when complete. It never logs: what a user should see goes to opts->log.
 */
#pragma once

#include <stdint.h>

#include "stream/auth.h"

enum recv_log_level {
	RECV_LOG_INFO = 0,
	RECV_LOG_WARN = 1,
};

/* One incoming image, as the service's query-jobs shows it (stream/recv-session.c). */
enum recv_stream_state {
	RECV_STREAM_RECEIVING = 0,
	RECV_STREAM_WAITING = 1,  /* the connection dropped: waiting for the sender to resume */
	RECV_STREAM_COMPLETE = 2, /* verified and renamed to .img */
	RECV_STREAM_FAILED = 3,	  /* corrupt or I/O error: left as .partial */
	RECV_STREAM_EXPIRED = 4,  /* not resumed in time: left as .partial */
};

struct recv_stream_info {
	const char *file; /* NAME-SESSION.img (without .partial) */
	const char *peer; /* the address of its last connection */
	enum recv_stream_state state;
	uint64_t bytes;	     /* received */
	uint64_t rate;	     /* bytes per second over the last second or so */
	uint64_t elapsed_ns; /* since the stream started */
	const char *why;     /* FAILED, EXPIRED: what happened */
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
	/* Optional: each stream's state, when it changes and about every second while it runs;
	 * called from recv_run()'s thread, with log_ctx. */
	void (*stream)(void *ctx, const struct recv_stream_info *info);
};

/* Runs until stop_fd becomes readable. -errno if the loop itself cannot run. */
int recv_run(const struct recv_opts *opts);
