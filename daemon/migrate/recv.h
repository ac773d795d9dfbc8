/* SPDX-License-Identifier: MIT */
/*
 * A migration receiver (recv.c): takes ONE stream (proto/STREAM.md, a sender with the HELLO
 * flag MIGRATE), checks its guest against the destination QEMU, writes its RAM into that
 * QEMU's backend files, starts QEMU's incoming migration and tells the sender where it
 * listens (INCOMING), acknowledges the whole image once every page is written and synced,
 * then waits until the guest runs at the destination. It never logs: opts->log gets lines.
 */
#pragma once

#include <stdint.h>

#include "migrate/dest.h"
#include "stream/auth.h"

struct mrecv_opts {
	int listen_fd; /* a listening TCP socket (stays the caller's) */
	int stop_fd;   /* readable (signalfd) means: stop, failing the migration */
	const struct stream_key *key;
	const char *incoming;	      /* QEMU's listening HOST:PORT; NULL: the stream's own
				       * local address, a port QEMU picks */
	unsigned resume_timeout_s;    /* a dropped sender must resume within (default 60) */
	unsigned handshake_timeout_s; /* a peer must authenticate within (default 10) */
	unsigned idle_timeout_s;      /* no bytes this long: the connection is dropped (60) */
	void (*log)(void *ctx, const char *msg);
	void *log_ctx;
};

struct mrecv_stats {
	uint64_t bytes;		/* image bytes received */
	uint64_t pages_written; /* PAGES written (a page rewritten counts again) */
	uint64_t pages_zeroed;
	uint64_t reconnects;
	uint64_t elapsed_ns;	     /* first byte -> the guest runs */
	int64_t stopped_realtime_ns; /* the source's vCPUs stopped (its image says) */
	int64_t resumed_realtime_ns; /* the guest ran here (QEMU's RESUME event) */
	char uri[128];
	char sender[64];
};

/* Runs one migration into d. 0 once the guest runs here; -errno with msg. */
int mrecv_run(const struct mrecv_opts *o, struct mdest *d, struct mrecv_stats *st, char *msg,
	      size_t len);
