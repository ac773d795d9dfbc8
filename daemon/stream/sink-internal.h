/* SPDX-License-Identifier: MIT */
/* Internal to the sender: stream/sink.c (the sink, the data kept) and stream/send.c (thread). */
#pragma once

#include <netdb.h>
#include <pthread.h>

#include "stream/auth.h"
#include "stream/sink.h"

#define SINK_CHUNK   (1u << 20)	  /* memory is kept in chunks of this size */
#define SINK_SENDBUF (256u << 10) /* spooled bytes are read into this buffer to be sent */

/* A run of the image, [start, start + len), in memory or in the spool file. */
struct sink_chunk {
	struct sink_chunk *next;
	uint64_t start;
	uint32_t len, cap; /* cap: bytes allocated (memory chunks) */
	uint8_t *mem;	   /* NULL: spooled */
	uint64_t spool_off;
};

struct ssink {
	struct img_sink base;
	struct stream_opts o;
	struct stream_key key;
	struct addrinfo *addrs;
	char host_port[256];
	char name[64];
	uint8_t session[16];

	pthread_mutex_t lock; /* everything below */
	pthread_cond_t cond;  /* flush waits for complete/failed */
	struct sink_chunk *head, *tail;
	uint8_t *spare; /* memory chunks' buffers to reuse, linked through their first bytes */
	uint64_t accepted, sent, acked;
	uint64_t spool_end; /* next free offset in the spool file */
	int spool_fd;
	bool thread_idle; /* the thread waits on wake_fd for more data */
	bool stop, complete;
	char incoming[STREAM_URI_SIZE]; /* a migration: the destination QEMU's URI, once known */
	int error; /* first fatal error (negative errno); then err says why */
	struct stream_error err;
	struct stream_counters c;

	int wake_fd; /* eventfd: more data, or stop */
	int fail_fd; /* eventfd: readable once the stream failed (stream_sink_fail_fd()) */
	int fd;	     /* the connection, owned by the thread after new() */
	uint64_t start_ns;
	pthread_t thread;
	bool thread_started;
};

/* Records the first fatal error; wakes flush(). Called with the lock held. */
void sink_fail_locked(struct ssink *k, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Drops chunks the receiver holds durably (lock held). */
void sink_release_locked(struct ssink *k);
/* The chunk holding offset, or NULL (lock held). */
struct sink_chunk *sink_find_locked(struct ssink *k, uint64_t offset);

/* Connects and does the handshake (STREAM.md). resume: continue the session. On success k->fd
 * is the connection and *ret_offset where to send from. msg gets the reason on failure;
 * -EACCES for authentication failures and refusals that retrying cannot fix. */
int send_connect(struct ssink *k, bool resume, uint64_t *ret_offset, char *msg, size_t len);
void *send_thread_main(void *arg);
