/* SPDX-License-Identifier: MIT */
/*
 * The receiver's event loop: accepting, the handshake (proto/STREAM.md), receiving into a pool
 * of buffers and sending ACKs, all through one io_uring. Sessions (the image files) live in
 * stream/recv-session.c. One peer can only ever fail its own connection and session.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sys/clock.h"
#include "stream/recv-internal.h"

#define RECV_RING_ENTRIES 256

void recv_log(struct recv_loop *l, enum recv_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!l->o->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->o->log(l->o->log_ctx, level, msg);
}

struct rop *recv_op_new(enum rop_kind kind, struct rconn *c, struct rsess *s)
{
	struct rop *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->kind = kind;
	op->conn = c;
	op->sess = s;
	if (c)
		c->ops++;
	if (s)
		s->ops++;
	return op;
}

/* An SQE for op; submits to make room when the queue is full. */
struct io_uring_sqe *recv_sqe(struct recv_loop *l, struct rop *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	if (sqe) {
		io_uring_sqe_set_data(sqe, op);
		l->inflight += op != NULL;
	}
	return sqe;
}

uint8_t *recv_buf_get(struct recv_loop *l)
{
	return l->nfree ? l->free_bufs[--l->nfree] : NULL;
}

void recv_buf_put(struct recv_loop *l, uint8_t *buf)
{
	if (buf)
		l->free_bufs[l->nfree++] = buf;
}

bool recv_conn_queue(struct rconn *c, const uint8_t *msg, size_t len)
{
	if (c->out_len)
		return false;
	memcpy(c->out, msg, len);
	c->out_len = len;
	c->out_sent = 0;
	return true;
}

void recv_conn_close(struct recv_loop *l, struct rconn *c)
{
	if (c->state == RC_CLOSING)
		return;
	c->state = RC_CLOSING;
	shutdown(c->fd, SHUT_RDWR); /* completes its pending receive */
	if (c->sess) {
		struct rsess *s = c->sess;

		c->sess = NULL;
		if (s->conn == c)
			recv_sess_detach(l, s, "connection closed");
	}
}

void recv_conn_fail(struct recv_loop *l, struct rconn *c, uint32_t code, const char *msg)
{
	uint8_t m[STREAM_MSG_MAX_SIZE];

	if (c->state == RC_CLOSING || c->state == RC_ERROR)
		return;
	c->state = RC_ERROR;
	c->out_len = 0; /* an unsent ACK or CHALLENGE no longer matters */
	if (c->send_posted) {
		/* the ERROR would interleave with a send in flight: just close */
		recv_conn_close(l, c);
		return;
	}
	recv_conn_queue(c, m, stream_error_encode(code, msg, m));
	c->close_after_send = true;
}

static void post_accept(struct recv_loop *l)
{
	struct rop *op = recv_op_new(ROP_ACCEPT, NULL, NULL);
	struct io_uring_sqe *sqe = op ? recv_sqe(l, op) : NULL;

	if (!sqe)
		return free(op);
	io_uring_prep_accept(sqe, l->o->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	l->accept_posted = true;
}

static void post_tick(struct recv_loop *l)
{
	struct rop *op = recv_op_new(ROP_TICK, NULL, NULL);
	struct io_uring_sqe *sqe = op ? recv_sqe(l, op) : NULL;

	if (!sqe)
		return free(op);
	l->tick.tv_sec = 0;
	l->tick.tv_nsec = RECV_TICK_NS;
	io_uring_prep_timeout(sqe, &l->tick, 0, 0);
}

static void post_stop_poll(struct recv_loop *l)
{
	struct rop *op = recv_op_new(ROP_STOP, NULL, NULL);
	struct io_uring_sqe *sqe = op ? recv_sqe(l, op) : NULL;

	if (!sqe)
		return free(op);
	io_uring_prep_poll_add(sqe, l->o->stop_fd, POLLIN);
}

static void peer_name(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss = {.ss_family = AF_UNSPEC}; /* getpeername() may fail */
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(out, len, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
}

/*
 * Full: a connection that has not proved the key goes first, the one waiting longest for its
 * HELLO, else for its AUTH (a real sender sends each at once), with ERROR 7 so that a real
 * sender retries. False if every connection is authenticated.
 */
static bool make_room(struct recv_loop *l)
{
	struct rconn *v = NULL;

	for (struct rconn *c = l->conns; c; c = c->next) {
		if (c->state != RC_HELLO && c->state != RC_AUTH)
			continue;
		if (!v || (c->state == RC_HELLO && v->state == RC_AUTH) ||
		    (c->state == v->state && c->deadline_ns < v->deadline_ns))
			v = c;
	}
	if (!v)
		return false;
	recv_log(l, RECV_LOG_WARN, "dropped %s (not authenticated) to make room", v->peer);
	recv_conn_fail(l, v, STREAM_ERR_BUSY, "busy: too many connections; retry later");
	return true;
}

/* Every connection is authenticated: ERROR 7 (busy, retry) on the new one, then close. Its
 * socket buffer is empty, so a non-blocking send of one message goes through. */
static void refuse_busy(struct recv_loop *l, int fd)
{
	uint8_t m[STREAM_MSG_MAX_SIZE];
	size_t n = stream_error_encode(STREAM_ERR_BUSY, "busy: too many connections; retry later", m);

	if (send(fd, m, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		recv_log(l, RECV_LOG_WARN, "cannot tell a refused connection why: %s",
			 strerror(errno));
	close(fd);
	recv_log(l, RECV_LOG_WARN, "refused a connection: too many connections (busy)");
}

static void on_accept(struct recv_loop *l, int res)
{
	struct rconn *c;
	int one = 1;

	l->accept_posted = false;
	if (res < 0) {
		if (res != -EAGAIN && res != -EINTR && res != -ECONNABORTED)
			recv_log(l, RECV_LOG_WARN, "accept failed: %s", strerror(-res));
		return;
	}
	if (l->nconns >= (l->o->max_conns ? l->o->max_conns : 64) && !make_room(l)) {
		refuse_busy(l, res);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(res);
		recv_log(l, RECV_LOG_WARN, "refused a connection: out of memory");
		return;
	}
	c->fd = res;
	c->state = RC_HELLO;
	c->deadline_ns = l->now + (uint64_t)l->o->handshake_timeout_s * 1000000000ull;
	setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	peer_name(res, c->peer, sizeof(c->peer));
	c->next = l->conns;
	l->conns = c;
	l->nconns++;
}

static void on_hello(struct recv_loop *l, struct rconn *c, const struct stream_msg *m)
{
	struct stream_challenge ch = {.major = STREAM_PROTO_MAJOR, .minor = STREAM_PROTO_MINOR};
	uint8_t out[STREAM_MSG_MAX_SIZE];

	c->hello = m->hello;
	memcpy(c->hello_raw, m->hello_raw, STREAM_HELLO_SIZE);
	if (stream_random(c->nonce_r, STREAM_NONCE_SIZE) < 0 ||
	    stream_proof(l->o->key, 'R', c->hello_raw, c->nonce_r, ch.proof) < 0)
		return recv_conn_fail(l, c, STREAM_ERR_IO, "cannot make a challenge");
	memcpy(ch.nonce, c->nonce_r, STREAM_NONCE_SIZE);
	recv_conn_queue(c, out, stream_challenge_encode(&ch, out));
	c->state = RC_AUTH;
}

static void on_auth(struct recv_loop *l, struct rconn *c, const struct stream_msg *m)
{
	if (!stream_proof_ok(l->o->key, 'S', c->hello_raw, c->nonce_r, m->auth.proof)) {
		recv_log(l, RECV_LOG_WARN, "refused %s (name '%s'): wrong key", c->peer,
			 c->hello.name);
		return recv_conn_fail(l, c, STREAM_ERR_AUTH,
				      "authentication failed: the sender's key is not ours");
	}
	if (c->hello.flags & STREAM_HELLO_F_MIGRATE) {
		recv_log(l, RECV_LOG_WARN,
			 "refused %s (name '%s'): a migration, and this receiver "
			 "stores images",
			 c->peer, c->hello.name);
		return recv_conn_fail(
		    l, c, STREAM_ERR_MISMATCH,
		    "a migration needs 'uffsnapd --receive --qemu DEST_QMP' here, "
		    "not a receiver that stores images");
	}
	recv_sess_attach(l, c);
}

static void handshake_bad(struct recv_loop *l, struct rconn *c, int r, const char *what)
{
	recv_log(l, RECV_LOG_WARN, "refused %s: %s", c->peer, what);
	recv_conn_fail(l, c, r == -EPROTONOSUPPORT ? STREAM_ERR_VERSION : STREAM_ERR_PROTOCOL,
		       what);
}

static void on_ctl_recv(struct recv_loop *l, struct rconn *c, int res)
{
	struct stream_msg m;
	size_t used = 0;
	int r;

	c->ctl_have += res;
	r = stream_msg_decode(c->ctl, c->ctl_have, &m, &used);
	if (r == -EAGAIN && c->ctl_have < sizeof(c->ctl))
		return; /* the pump receives more */
	if (r < 0)
		return handshake_bad(l, c, r,
				     r == -EPROTONOSUPPORT ? "unsupported protocol version"
							   : "malformed handshake message");
	if (used != c->ctl_have)
		return handshake_bad(l, c, -EBADMSG, "bytes after a handshake message");
	c->ctl_have = 0;
	if (m.type == STREAM_MSG_ERROR) {
		recv_log(l, RECV_LOG_WARN, "%s gave up: %s", c->peer, m.error.msg);
		return recv_conn_close(l, c);
	}
	if (c->state == RC_HELLO && m.type == STREAM_MSG_HELLO)
		return on_hello(l, c, &m);
	if (c->state == RC_AUTH && m.type == STREAM_MSG_AUTH)
		return on_auth(l, c, &m);
	handshake_bad(l, c, -EBADMSG, "unexpected handshake message");
}

static void on_recv(struct recv_loop *l, struct rop *op, int res)
{
	struct rconn *c = op->conn;

	c->recv_posted = false;
	if (c->state == RC_CLOSING || c->state == RC_ERROR) {
		recv_buf_put(l, op->buf);
		return;
	}
	if (res <= 0) {
		recv_buf_put(l, op->buf);
		if (c->state == RC_DATA && c->sess)
			recv_log(l, RECV_LOG_WARN, "%s: %s from %s at offset %llu", c->sess->file,
				 res ? strerror(-res) : "connection closed", c->peer,
				 (unsigned long long)c->sess->received);
		else if (c->state != RC_RESUME_WAIT)
			recv_log(l, RECV_LOG_WARN, "%s left during the handshake", c->peer);
		return recv_conn_close(l, c);
	}
	if (op->buf) {
		c->last_data_ns = l->now;
		recv_sess_data(l, c->sess, op->buf, res);
		return;
	}
	on_ctl_recv(l, c, res);
}

static void on_send(struct recv_loop *l, struct rop *op, int res)
{
	struct rconn *c = op->conn;

	c->send_posted = false;
	if (res <= 0) {
		c->out_len = 0;
		return recv_conn_close(l, c);
	}
	c->out_sent += res;
	if (c->out_sent < c->out_len)
		return;
	c->out_len = 0;
	if (c->close_after_send)
		recv_conn_close(l, c);
}

static void post_recv(struct recv_loop *l, struct rconn *c)
{
	struct rop *op;
	struct io_uring_sqe *sqe;
	bool data = c->state == RC_DATA;
	uint8_t *buf = NULL;

	if (data && (!c->sess || !recv_sess_can_recv(c->sess) || !(buf = recv_buf_get(l))))
		return;
	op = recv_op_new(ROP_RECV, c, NULL);
	sqe = op ? recv_sqe(l, op) : NULL;
	if (!sqe) {
		recv_buf_put(l, buf);
		if (op)
			c->ops--;
		return free(op);
	}
	op->buf = buf;
	if (data)
		io_uring_prep_recv(sqe, c->fd, buf, RECV_BUF_SIZE, 0);
	else
		io_uring_prep_recv(sqe, c->fd, c->ctl + c->ctl_have, sizeof(c->ctl) - c->ctl_have,
				   0);
	c->recv_posted = true;
}

static void post_send(struct recv_loop *l, struct rconn *c)
{
	struct rop *op = recv_op_new(ROP_SEND, c, NULL);
	struct io_uring_sqe *sqe = op ? recv_sqe(l, op) : NULL;

	if (!sqe) {
		if (op)
			c->ops--;
		return free(op);
	}
	io_uring_prep_send(sqe, c->fd, c->out + c->out_sent, c->out_len - c->out_sent,
			   MSG_NOSIGNAL);
	c->send_posted = true;
}

/* Queues an ACK if one is due and nothing else is waiting to be sent. */
static void maybe_ack(struct recv_loop *l, struct rconn *c)
{
	struct stream_ack a;
	uint8_t m[STREAM_MSG_MAX_SIZE];

	if (c->state != RC_DATA || !c->sess || c->out_len || c->send_posted)
		return;
	if (!c->ack_pending && l->now - c->last_ack_ns < RECV_ACK_NS)
		return;
	a.offset = c->sess->synced;
	a.flags = c->ack_complete ? STREAM_ACK_F_COMPLETE : 0;
	recv_conn_queue(c, m, stream_ack_encode(&a, m));
	c->ack_pending = false;
	c->last_ack_ns = l->now;
	if (c->ack_complete)
		c->close_after_send = true;
}

/* Posts what a connection needs next; frees it once closed and idle. True if freed. */
static bool conn_pump(struct recv_loop *l, struct rconn *c)
{
	if (c->state == RC_CLOSING) {
		if (c->ops)
			return false;
		close(c->fd);
		free(c);
		l->nconns--;
		return true;
	}
	maybe_ack(l, c);
	if (c->out_len && !c->send_posted)
		post_send(l, c);
	/* Nothing is read while a resume waits: image bytes follow only our ACCEPT. */
	if (!c->recv_posted && c->state != RC_ERROR && c->state != RC_RESUME_WAIT &&
	    !(c->state == RC_DATA && c->ack_complete) && c->out_len == 0)
		post_recv(l, c);
	return false;
}

static void conn_tick(struct recv_loop *l, struct rconn *c)
{
	bool hs = c->state == RC_HELLO || c->state == RC_AUTH;
	uint64_t idle = (uint64_t)l->o->idle_timeout_s * 1000000000ull;

	if (hs && l->now > c->deadline_ns) {
		recv_log(l, RECV_LOG_WARN, "refused %s: no handshake within %u s", c->peer,
			 l->o->handshake_timeout_s);
		recv_conn_close(l, c);
	} else if (c->state == RC_DATA && !c->ack_complete && c->sess && !c->sess->trailer_seen &&
		   l->now - c->last_data_ns > idle) {
		recv_log(l, RECV_LOG_WARN, "%s: no data from %s for %u s, dropping the connection",
			 c->sess->file, c->peer, l->o->idle_timeout_s);
		recv_conn_close(l, c);
	}
}

static void on_tick(struct recv_loop *l)
{
	for (struct rconn *c = l->conns; c; c = c->next)
		conn_tick(l, c);
	for (struct rsess *s = l->sessions; s; s = s->next)
		recv_sess_tick(l, s);
	post_tick(l);
}

static void dispatch(struct recv_loop *l, struct rop *op, int res)
{
	switch (op->kind) {
	case ROP_ACCEPT:
		on_accept(l, res);
		break;
	case ROP_RECV:
		on_recv(l, op, res);
		break;
	case ROP_SEND:
		on_send(l, op, res);
		break;
	case ROP_WRITE:
		recv_sess_write_done(l, op, res);
		break;
	case ROP_FSYNC:
		recv_sess_fsync_done(l, op, res);
		break;
	case ROP_TICK:
		on_tick(l);
		break;
	case ROP_STOP:
		l->stopping = true;
		break;
	}
}

static void complete(struct recv_loop *l, struct rop *op, int res)
{
	if (!op)
		return;
	l->inflight--;
	dispatch(l, op, res);
	/* A short write resubmits the same op: then it stays. */
	if (op->requeued) {
		op->requeued = false;
		return;
	}
	if (op->conn)
		op->conn->ops--;
	if (op->sess)
		op->sess->ops--;
	free(op);
}

static void pump(struct recv_loop *l)
{
	for (struct rconn **pc = &l->conns; *pc;) {
		struct rconn *c = *pc, *next = c->next;

		if (conn_pump(l, c))
			*pc = next;
		else
			pc = &c->next;
	}
	for (struct rsess **ps = &l->sessions; *ps;) {
		struct rsess *s = *ps;

		recv_sess_pump(l, s);
		if (recv_sess_reapable(l, s)) {
			*ps = s->next;
			recv_sess_free(s);
		} else {
			ps = &s->next;
		}
	}
	if (!l->accept_posted && !l->stopping)
		post_accept(l);
}

static int loop_init(struct recv_loop *l, const struct recv_opts *o)
{
	int r;

	l->o = o;
	l->pool = aligned_alloc(4096, (size_t)RECV_BUF_SIZE * RECV_POOL_BUFS);
	if (!l->pool)
		return -ENOMEM;
	for (unsigned i = 0; i < RECV_POOL_BUFS; i++)
		l->free_bufs[l->nfree++] = l->pool + (size_t)i * RECV_BUF_SIZE;
	r = io_uring_queue_init(RECV_RING_ENTRIES, &l->ring, 0);
	if (r < 0) {
		free(l->pool);
		return r;
	}
	return 0;
}

/* Cancels everything in flight and frees each operation as it completes. */
static void loop_drain(struct recv_loop *l)
{
	struct io_uring_sqe *sqe = recv_sqe(l, NULL);
	struct __kernel_timespec ts = {.tv_sec = 5};

	if (sqe)
		io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
	io_uring_submit(&l->ring);
	while (l->inflight) {
		struct io_uring_cqe *cqe;
		struct rop *op;

		if (io_uring_wait_cqe_timeout(&l->ring, &cqe, &ts) < 0)
			break;
		op = io_uring_cqe_get_data(cqe);
		io_uring_cqe_seen(&l->ring, cqe);
		if (op) {
			l->inflight--;
			free(op);
		}
	}
}

/* Stops: closes every connection, waits for operations touching files, frees everything. */
static void loop_fini(struct recv_loop *l)
{
	for (struct rconn *c = l->conns; c; c = c->next)
		recv_conn_close(l, c);
	for (struct rsess *s = l->sessions; s; s = s->next)
		if (__atomic_load_n(&s->finish_state, __ATOMIC_ACQUIRE))
			pthread_join(s->finisher, NULL);
	loop_drain(l);
	io_uring_queue_exit(&l->ring);
	while (l->conns) {
		struct rconn *c = l->conns;

		l->conns = c->next;
		close(c->fd);
		free(c);
	}
	while (l->sessions) {
		struct rsess *s = l->sessions;

		l->sessions = s->next;
		recv_sess_free(s);
	}
	free(l->pool);
}

int recv_run(const struct recv_opts *opts)
{
	struct recv_loop l = {0};
	int r = loop_init(&l, opts);

	if (r < 0)
		return r;
	l.now = sys_now_ns();
	post_tick(&l);
	post_stop_poll(&l);
	while (!l.stopping) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		pump(&l);
		r = io_uring_submit_and_wait(&l.ring, 1);
		if (r < 0 && r != -EINTR && r != -EBUSY && r != -EAGAIN)
			break;
		r = 0;
		l.now = sys_now_ns();
		io_uring_for_each_cqe(&l.ring, head, cqe)
		{
			complete(&l, io_uring_cqe_get_data(cqe), cqe->res);
			n++;
		}
		io_uring_cq_advance(&l.ring, n);
	}
	loop_fini(&l);
	return r;
}
