/* SPDX-License-Identifier: MIT */
/* Internal to the receiver: stream/recv.c (loop, connections, handshake) and stream/recv-session.c
 * (sessions: the image file, its writes, syncs, final verification). */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include "stream/check.h"
#include "stream/recv.h"
#include "stream/wire.h"

#define RECV_BUF_SIZE	   (256u << 10) /* one pool buffer: one recv, then one file write */
#define RECV_POOL_BUFS	   64		/* 16 MiB for every stream together */
#define RECV_SESS_INFLIGHT 8		/* buffers one stream may hold (recv + writes) */
#define RECV_SYNC_BYTES	   (4ull << 20) /* sync (then ACK) at least this often */
#define RECV_TICK_NS	   200000000ull
#define RECV_ACK_NS	   1000000000ull /* heartbeat ACK interval (STREAM.md "ACK") */

enum rop_kind { ROP_ACCEPT, ROP_RECV, ROP_SEND, ROP_WRITE, ROP_FSYNC, ROP_TICK, ROP_STOP };

struct rconn;
struct rsess;

/* One submitted operation; its address is the SQE's user_data. */
struct rop {
	enum rop_kind kind;
	struct rconn *conn;
	struct rsess *sess;
	uint8_t *buf;
	uint64_t off; /* file offset (writes) */
	uint32_t len, done;
	unsigned slot; /* the write's entry in its session's w[] */
	bool requeued; /* resubmitted by its completion handler (short write) */
};

enum rconn_state {
	RC_HELLO,	/* waiting for HELLO */
	RC_AUTH,	/* CHALLENGE sent, waiting for AUTH */
	RC_RESUME_WAIT, /* authenticated RESUME: waiting for the session's writes to settle */
	RC_DATA,	/* image bytes */
	RC_ERROR,	/* sending an ERROR, then closing */
	RC_CLOSING,	/* shut down; freed when its operations are done */
};

struct rconn {
	struct rconn *next;
	int fd;
	enum rconn_state state;
	int ops; /* operations in flight */
	bool recv_posted, send_posted, ack_pending, ack_complete, close_after_send;
	uint8_t ctl[2 * STREAM_MSG_MAX_SIZE];
	size_t ctl_have;
	uint8_t hello_raw[STREAM_HELLO_SIZE];
	uint8_t nonce_r[STREAM_NONCE_SIZE];
	struct stream_hello hello;
	uint8_t out[STREAM_MSG_MAX_SIZE];
	size_t out_len, out_sent;
	struct rsess *sess;
	uint64_t deadline_ns; /* handshake deadline */
	uint64_t last_data_ns, last_ack_ns;
	char peer[64];
};

struct wslot {
	uint64_t start, end;
	bool done;
};

struct rsess {
	struct rsess *next;
	uint8_t id[STREAM_SESSION_SIZE];
	char name[STREAM_NAME_SIZE];
	char file[STREAM_NAME_SIZE + 48]; /* <name>-<session hex>.img */
	int fd, dir_fd;
	struct stream_check *check;
	struct rconn *conn;
	int ops; /* writes and syncs in flight */
	struct wslot w[RECV_SESS_INFLIGHT];
	unsigned whead, wcount;
	uint64_t received, written, synced, sync_target;
	bool fsync_posted, trailer_seen, failed, done, expired;
	uint64_t detached_ns, start_ns, last_sync_ns, last_log_ns, last_log_bytes;
	uint64_t rate, rate_ns, rate_bytes; /* throughput over the last second */
	char peer[64], why[256];	    /* for recv_opts.stream */
	pthread_t finisher;
	int finish_state; /* 0 not started, 1 running, 2 finished (atomic) */
	int finish_result;
	char finish_msg[256];
};

struct recv_loop {
	const struct recv_opts *o;
	struct io_uring ring;
	uint8_t *pool;
	uint8_t *free_bufs[RECV_POOL_BUFS];
	unsigned nfree;
	struct rconn *conns;
	unsigned nconns;
	struct rsess *sessions;
	bool accept_posted, stopping;
	unsigned inflight; /* operations submitted and not completed */
	struct __kernel_timespec tick;
	uint64_t now;
};

void recv_log(struct recv_loop *l, enum recv_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct io_uring_sqe *recv_sqe(struct recv_loop *l, struct rop *op);
struct rop *recv_op_new(enum rop_kind kind, struct rconn *c, struct rsess *s);
uint8_t *recv_buf_get(struct recv_loop *l);
void recv_buf_put(struct recv_loop *l, uint8_t *buf);
void recv_conn_fail(struct recv_loop *l, struct rconn *c, uint32_t code, const char *msg);
void recv_conn_close(struct recv_loop *l, struct rconn *c);
/* Queues a message (the previous one must be sent); false if one is still pending. */
bool recv_conn_queue(struct rconn *c, const uint8_t *msg, size_t len);

/* Sessions (stream/recv-session.c). */
/* Attaches c (authenticated) to a new or resumed session; answers ACCEPT or ERROR itself. */
void recv_sess_attach(struct recv_loop *l, struct rconn *c);
/* n image bytes received in buf (a pool buffer, now the session's). */
void recv_sess_data(struct recv_loop *l, struct rsess *s, uint8_t *buf, size_t n);
void recv_sess_write_done(struct recv_loop *l, struct rop *op, int res);
void recv_sess_fsync_done(struct recv_loop *l, struct rop *op, int res);
/* Posts syncs, answers waiting resumes, starts and reaps final verification. */
void recv_sess_pump(struct recv_loop *l, struct rsess *s);
/* Progress lines, expiry of detached sessions. */
void recv_sess_tick(struct recv_loop *l, struct rsess *s);
void recv_sess_detach(struct recv_loop *l, struct rsess *s, const char *why);
/* True when s holds nothing and may be freed. */
bool recv_sess_reapable(const struct recv_loop *l, const struct rsess *s);
void recv_sess_free(struct rsess *s);
/* A session may take another receive buffer. */
bool recv_sess_can_recv(const struct rsess *s);
