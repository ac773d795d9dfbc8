/* SPDX-License-Identifier: MIT */
/*
 * The sender: an img_sink that streams an image to a receiver (proto/STREAM.md). writev() never
 * waits for the network: it copies into memory (at most opts->mem_limit bytes of image data)
 * and beyond that appends to a spool file; a thread sends from there through io_uring, keeps
 * what the receiver has not acknowledged, and reconnects and resumes when the connection drops.
 * flush() (called by img_writer_finish) waits until the receiver says the image is complete.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "stream/auth.h"
#include "uffsnap/image.h"

/*
 * A snapshot streamed to a receiver holds image data in two places: the fault path's
 * write-behind queue (the copies of pages the target writes, on their way to the image
 * writer) and the stream's memory (what the receiver has not acknowledged). `--mem-limit` (a
 * job's "mem-limit") bounds the two together, STREAM_SNAP_MEM_DEFAULT unless given: half is
 * the queue's, half the stream's (stream_snap_mem_split()). Issue 19: uffsnapd's extra memory
 * at most 64 MiB by default, 15-20 MiB of it the program's own (its libraries, the hold's
 * queue, the copier's buffers). bench-mem, 2 GiB rewritten by one writer, streamed on
 * loopback: the sender's VmHWM 42-60 MiB. A smaller queue lets more write faults wait for it
 * while the spool's disk lags (a quarter of 48 MiB: 11-311 waits, up to 12.8 ms, in 2 runs);
 * the stream's memory only keeps bytes out of the spool. A migration has no fault queue (it
 * never write-protects): --mem-limit is all the stream's, STREAM_MEM_LIMIT_DEFAULT unless given.
 */
#define STREAM_SNAP_MEM_DEFAULT	 (44ull << 20)
#define STREAM_MEM_LIMIT_DEFAULT (STREAM_SNAP_MEM_DEFAULT / 2)
#define STREAM_MEM_LIMIT_MIN	 (1ull << 20)

/*
 * The stream's share and the fault queue's of limit bytes (0: STREAM_SNAP_MEM_DEFAULT). The
 * stream gets at least STREAM_MEM_LIMIT_MIN, so below 2 MiB the two add up to a little more.
 */
void stream_snap_mem_split(uint64_t limit, uint64_t *stream_bytes, uint64_t *queue_bytes);

struct stream_opts {
	uint64_t mem_limit; /* image bytes held in memory; 0: STREAM_MEM_LIMIT_DEFAULT; >= 1 MiB */
	const char *spool_dir;	     /* NULL: $TMPDIR, else /var/tmp (an O_TMPFILE there) */
	unsigned resume_timeout_s;   /* give up reconnecting after this long (0: 60) */
	unsigned liveness_timeout_s; /* nothing from the receiver this long: reconnect (0: 10) */
	unsigned connect_timeout_s;  /* one connection attempt and handshake (0: 10) */
	const char *name;	     /* our name on the receiver; NULL: the host name */
	bool migrate; /* a guest's RAM for a migration receiver (STREAM.md "Migrations") */
};

struct stream_error {
	char msg[512];
};

/* What the one-shot CLI shows; consistent snapshot of the counters at one moment. */
struct stream_counters {
	uint64_t accepted;   /* image bytes the writer gave the sink */
	uint64_t sent;	     /* bytes sent (the furthest offset; resends not counted twice) */
	uint64_t resent;     /* bytes sent again after a resume */
	uint64_t acked;	     /* bytes the receiver holds durably */
	uint64_t spooled;    /* bytes that went to the spool file */
	uint64_t mem_used;   /* image bytes in memory now */
	uint64_t mem_peak;   /* the most ever */
	uint64_t reconnects; /* successful resumes */
	uint64_t elapsed_ns; /* since stream_sink_new */
	bool complete;	     /* the receiver verified the whole image */
};

/*
 * Connects to host_port, authenticates both ways with the key in key_file and opens a session;
 * on success *ret is a sink for img_writer_new(), to be freed with img_sink_free(). Errors
 * (unreachable, wrong key, bad key file) are reported here, before any snapshot starts.
 */
int stream_sink_new(const char *host_port, const char *key_file, const struct stream_opts *opts,
		    struct img_sink **ret, struct stream_error *err);
/* The same with a key already loaded (service mode: the daemon's own key; copied). */
int stream_sink_new_key(const char *host_port, const struct stream_key *key,
			const struct stream_opts *opts, struct img_sink **ret,
			struct stream_error *err);
/* From any thread: the stream fails now (-ECANCELED, why as its error); flush() and writev()
 * return that. Sending stops within a connection attempt at most. */
void stream_sink_abort(struct img_sink *s, const char *why);
/* Only for sinks made by stream_sink_new(). */
void stream_sink_counters(struct img_sink *s, struct stream_counters *ret);
/*
 * A migration (opts->migrate): waits until the receiver said where the destination QEMU
 * listens (INCOMING; it does once it checked the image's first META) and copies that URI into
 * uri. -errno if the stream fails first (its error says why).
 */
int stream_sink_incoming(struct img_sink *s, char *uri, size_t len);
/* An fd that becomes readable once the stream failed (to end other waits then); the sink's. */
int stream_sink_fail_fd(struct img_sink *s);
/* Why writev/flush failed (empty if they did not). */
void stream_sink_error(struct img_sink *s, struct stream_error *ret);
/*
 * Appends se's message to msg (a NUL-ended string in len bytes) after ": ", unless it is empty,
 * already there, or would not fit whole: what the network did, after what failed.
 */
void stream_error_append(char *msg, size_t len, const struct stream_error *se);
