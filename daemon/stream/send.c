/* SPDX-License-Identifier: MIT */
/*
 * The sender's thread: the handshake (blocking, with timeouts), then the data phase on one
 * io_uring: send what the writer appended (from memory, or read from the spool first), receive
 * ACKs, and on a dead connection reconnect with backoff and resume (proto/STREAM.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include "sys/clock.h"
#include "stream/msgio.h"
#include "stream/sink-internal.h"

#define SEND_MAX	 (1u << 20)
#define BACKOFF_FIRST_MS 200
#define BACKOFF_MAX_MS	 5000
#define NS_PER_MS	 1000000ull

enum send_tag { TAG_SEND = 1, TAG_READ, TAG_RECV, TAG_WAKE, TAG_TICK, TAG_CANCEL };

/* What ended a data phase. */
enum phase_end { PHASE_DONE = 0, PHASE_STOP = 1, PHASE_FATAL = 2 };

struct send_ctx {
	struct ssink *k;
	struct io_uring ring;
	uint8_t *sendbuf;
	uint8_t ackbuf[2 * STREAM_MSG_MAX_SIZE];
	size_t ack_have;
	bool inflight[TAG_CANCEL + 1];
	uint64_t wake_val;
	struct __kernel_timespec tick;
	uint64_t last_msg_ns;
	uint64_t pos;  /* next offset to send */
	char why[256]; /* why the last connection ended */
};

static int connect_one(const struct addrinfo *ai, unsigned timeout_s)
{
	struct pollfd p;
	int fd, e = 0;
	socklen_t el = sizeof(e);

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		e = errno;
		close(fd);
		return -e;
	}
	p = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&p, 1, timeout_s * 1000) != 1)
		e = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		e = errno;
	if (e || fcntl(fd, F_SETFL, 0) < 0) {
		close(fd);
		return -(e ? e : EIO);
	}
	return fd;
}

/* An ERROR from the receiver: the reason, and whether retrying can help (-EBUSY) or not. */
static int refused(const struct ssink *k, const struct stream_errmsg *e, char *msg, size_t len)
{
	snprintf(msg, len, "the receiver at %s refused: %s (%s)", k->host_port, e->msg,
		 stream_error_code_name(e->code));
	return e->code == STREAM_ERR_BUSY ? -EBUSY : -EACCES;
}

static int expect(int fd, uint16_t type, struct stream_msg *m, const struct ssink *k, char *msg,
		  size_t len)
{
	int r = stream_msg_recv(fd, m);

	if (r == -EPROTONOSUPPORT)
		return snprintf(msg, len, "the receiver at %s speaks another protocol version",
				k->host_port),
		       -EACCES;
	if (r < 0)
		return snprintf(msg, len, "handshake with %s failed: %s%s", k->host_port,
				strerror(-r), r == -EBADMSG ? " (not a uffsnap receiver?)" : ""),
		       r == -EBADMSG ? -EACCES : r;
	if (m->type == STREAM_MSG_ERROR)
		return refused(k, &m->error, msg, len);
	if (m->type != type)
		return snprintf(msg, len, "handshake with %s: unexpected message", k->host_port),
		       -EACCES;
	return 0;
}

static int handshake(struct ssink *k, int fd, bool resume, uint64_t *ret_offset, char *msg,
		     size_t len)
{
	struct stream_hello h = {.major = STREAM_PROTO_MAJOR, .minor = STREAM_PROTO_MINOR};
	struct stream_auth a;
	uint8_t out[STREAM_MSG_MAX_SIZE];
	struct stream_msg m;
	size_t n;
	int r;

	h.flags =
	    (resume ? STREAM_HELLO_F_RESUME : 0) | (k->o.migrate ? STREAM_HELLO_F_MIGRATE : 0);
	memcpy(h.session, k->session, sizeof(h.session));
	snprintf(h.name, sizeof(h.name), "%s", k->name);
	r = stream_random(h.nonce, sizeof(h.nonce));
	if (r < 0)
		return snprintf(msg, len, "no random bytes: %s", strerror(-r)), r;
	n = stream_hello_encode(&h, out);
	r = stream_io_exact(fd, out, n, true);
	if (r >= 0)
		r = expect(fd, STREAM_MSG_CHALLENGE, &m, k, msg, len);
	if (r < 0)
		return r == -ECONNRESET ? (snprintf(msg, len,
						    "%s closed the connection during the "
						    "handshake",
						    k->host_port),
					   r)
					: r;
	if (!stream_proof_ok(&k->key, 'R', out + STREAM_MSG_HEADER_SIZE, m.challenge.nonce,
			     m.challenge.proof))
		return snprintf(msg, len,
				"the receiver at %s did not prove it has our key (different key "
				"files?); nothing was sent",
				k->host_port),
		       -EACCES;
	r = stream_proof(&k->key, 'S', out + STREAM_MSG_HEADER_SIZE, m.challenge.nonce, a.proof);
	if (r >= 0)
		r = stream_io_exact(fd, out, stream_auth_encode(&a, out), true);
	if (r >= 0)
		r = expect(fd, STREAM_MSG_ACCEPT, &m, k, msg, len);
	if (r < 0)
		return r;
	*ret_offset = m.accept.offset;
	return 0;
}

static int connect_once(struct ssink *k, bool resume, uint64_t *ret_offset, char *msg,
			size_t len)
{
	int fd = -ECONNREFUSED, one = 1, r;
	unsigned user_timeout = k->o.liveness_timeout_s * 1000;

	for (struct addrinfo *ai = k->addrs; ai; ai = ai->ai_next) {
		fd = connect_one(ai, k->o.connect_timeout_s);
		if (fd >= 0)
			break;
	}
	if (fd < 0)
		return snprintf(msg, len, "cannot connect to %s: %s", k->host_port, strerror(-fd)),
		       fd;
	stream_sock_timeouts(fd, k->o.connect_timeout_s);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	/* unacknowledged data for this long fails the socket (net/ipv4/tcp_timer.c) */
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
	r = handshake(k, fd, resume, ret_offset, msg, len);
	if (r < 0) {
		close(fd);
		return r;
	}
	stream_sock_timeouts(fd, 0);
	k->fd = fd;
	return 0;
}

/* An SQE tagged tag (the ring is sized so that one of each always fits). */
static struct io_uring_sqe *post(struct send_ctx *x, enum send_tag tag)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&x->ring);

	if (!sqe) {
		io_uring_submit(&x->ring);
		sqe = io_uring_get_sqe(&x->ring);
	}
	if (!sqe)
		return NULL;
	io_uring_sqe_set_data64(sqe, tag);
	x->inflight[tag] = true;
	return sqe;
}

/* Picks what to send next (lock held): from memory directly, or a spool read first. */
static void next_send_locked(struct send_ctx *x)
{
	struct ssink *k = x->k;
	struct sink_chunk *ch = sink_find_locked(k, x->pos);
	struct io_uring_sqe *sqe;
	uint64_t in = ch ? x->pos - ch->start : 0;
	uint64_t n = ch ? ch->len - in : 0;

	if (!ch)
		return;
	if (ch->mem) {
		sqe = post(x, TAG_SEND);
		if (sqe)
			io_uring_prep_send(sqe, k->fd, ch->mem + in, n < SEND_MAX ? n : SEND_MAX,
					   MSG_NOSIGNAL);
		return;
	}
	sqe = post(x, TAG_READ);
	if (sqe)
		io_uring_prep_read(sqe, k->spool_fd, x->sendbuf,
				   n < SINK_SENDBUF ? n : SINK_SENDBUF, ch->spool_off + in);
}

/* Posts what is missing: the next send, the ACK receive, the wake-up read, the tick. */
static void post_all(struct send_ctx *x)
{
	struct ssink *k = x->k;
	struct io_uring_sqe *sqe;

	pthread_mutex_lock(&k->lock);
	if (!x->inflight[TAG_SEND] && !x->inflight[TAG_READ] && x->pos < k->accepted)
		next_send_locked(x);
	k->thread_idle = !x->inflight[TAG_SEND] && !x->inflight[TAG_READ];
	pthread_mutex_unlock(&k->lock);
	if (!x->inflight[TAG_WAKE] && (sqe = post(x, TAG_WAKE)))
		io_uring_prep_read(sqe, k->wake_fd, &x->wake_val, sizeof(x->wake_val), 0);
	if (!x->inflight[TAG_RECV] && (sqe = post(x, TAG_RECV)))
		io_uring_prep_recv(sqe, k->fd, x->ackbuf + x->ack_have,
				   sizeof(x->ackbuf) - x->ack_have, 0);
	if (!x->inflight[TAG_TICK] && (sqe = post(x, TAG_TICK))) {
		x->tick = (struct __kernel_timespec){.tv_sec = 1};
		io_uring_prep_timeout(sqe, &x->tick, 0, 0);
	}
}

static void sent(struct send_ctx *x, uint64_t n)
{
	struct ssink *k = x->k;

	uint64_t fresh;

	pthread_mutex_lock(&k->lock);
	x->pos += n;
	fresh = x->pos > k->sent ? x->pos - k->sent : 0;
	k->c.resent += n - (fresh < n ? fresh : n);
	if (x->pos > k->sent)
		k->sent = x->pos;
	k->c.sent = k->sent;
	pthread_mutex_unlock(&k->lock);
}

/* One message from the receiver. Returns 1 when the image is complete, 0, or -1 (fatal). */
static int on_msg(struct send_ctx *x, const struct stream_msg *m)
{
	struct ssink *k = x->k;
	int r = 0;

	pthread_mutex_lock(&k->lock);
	if (m->type == STREAM_MSG_ERROR) {
		sink_fail_locked(k, -ECONNABORTED, "the receiver at %s stopped the stream: %s (%s)",
				 k->host_port, m->error.msg, stream_error_code_name(m->error.code));
		r = -1;
	} else if (m->type == STREAM_MSG_INCOMING && k->o.migrate) {
		memcpy(k->incoming, m->incoming.uri, sizeof(k->incoming));
		pthread_cond_broadcast(&k->cond);
	} else if (m->type != STREAM_MSG_ACK || m->ack.offset > k->sent ||
		   m->ack.offset < k->acked) {
		sink_fail_locked(k, -EPROTO, "the receiver at %s sent a bad acknowledgement",
				 k->host_port);
		r = -1;
	} else {
		k->acked = m->ack.offset;
		k->c.acked = k->acked;
		sink_release_locked(k);
		/*
		 * COMPLETE means the receiver checked the trailer and the digest: the image ended,
		 * nothing can follow it. It may come before flush() (the trailer went out with the
		 * last writev): waiting for flush() to see it would leave it unread, flush() then
		 * waiting for a second one the image receiver never sends (it closes).
		 */
		if ((m->ack.flags & STREAM_ACK_F_COMPLETE) && k->acked == k->accepted) {
			k->complete = true;
			pthread_cond_broadcast(&k->cond);
			r = 1;
		}
	}
	pthread_mutex_unlock(&k->lock);
	return r;
}

/* Bytes arrived on the connection: act on every whole message. */
static int on_recv(struct send_ctx *x, int res)
{
	struct stream_msg m;
	size_t used;

	if (res <= 0) {
		snprintf(x->why, sizeof(x->why), "%s",
			 res ? strerror(-res) : "closed by the receiver");
		return -ECONNRESET;
	}
	x->ack_have += res;
	x->last_msg_ns = sys_now_ns();
	for (;;) {
		int r = stream_msg_decode(x->ackbuf, x->ack_have, &m, &used);

		if (r == -EAGAIN)
			return 0;
		if (r < 0) {
			pthread_mutex_lock(&x->k->lock);
			sink_fail_locked(x->k, -EPROTO,
					 "the receiver at %s sent a malformed message",
					 x->k->host_port);
			pthread_mutex_unlock(&x->k->lock);
			return -EPROTO;
		}
		memmove(x->ackbuf, x->ackbuf + used, x->ack_have - used);
		x->ack_have -= used;
		r = on_msg(x, &m);
		if (r)
			return r > 0 ? 1 : -EPROTO;
	}
}

static int on_read(struct send_ctx *x, int res)
{
	struct io_uring_sqe *sqe;

	if (res <= 0) {
		pthread_mutex_lock(&x->k->lock);
		sink_fail_locked(x->k, res ? res : -EIO, "cannot read the spool file: %s",
				 strerror(res ? -res : EIO));
		pthread_mutex_unlock(&x->k->lock);
		return -EIO;
	}
	sqe = post(x, TAG_SEND);
	if (!sqe)
		return -ENOMEM;
	io_uring_prep_send(sqe, x->k->fd, x->sendbuf, res, MSG_NOSIGNAL);
	return 0;
}

/* One completion. 0 to go on, 1 complete, -ECONNRESET/-ETIMEDOUT: reconnect; else fatal. */
static int on_cqe(struct send_ctx *x, enum send_tag tag, int res)
{
	x->inflight[tag] = false;
	switch (tag) {
	case TAG_SEND:
		if (res < 0) {
			snprintf(x->why, sizeof(x->why), "send: %s", strerror(-res));
			return -ECONNRESET;
		}
		sent(x, res);
		return 0;
	case TAG_READ:
		return on_read(x, res);
	case TAG_RECV:
		return on_recv(x, res);
	case TAG_TICK:
		if (sys_now_ns() - x->last_msg_ns > x->k->o.liveness_timeout_s * 1000000000ull) {
			snprintf(x->why, sizeof(x->why), "nothing from the receiver for %u s",
				 x->k->o.liveness_timeout_s);
			return -ETIMEDOUT;
		}
		return 0;
	default:
		return 0;
	}
}

static bool stopping(struct ssink *k)
{
	bool stop;

	pthread_mutex_lock(&k->lock);
	stop = k->stop || k->error;
	pthread_mutex_unlock(&k->lock);
	return stop;
}

/* Streams until complete, stopped, failed, or the connection is lost (-ECONNRESET...). */
static int data_phase(struct send_ctx *x)
{
	x->last_msg_ns = sys_now_ns();
	x->ack_have = 0;
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int r = 0;

		if (stopping(x->k))
			return PHASE_STOP;
		post_all(x);
		io_uring_submit_and_wait(&x->ring, 1);
		io_uring_for_each_cqe(&x->ring, head, cqe)
		{
			if (r == 0)
				r = on_cqe(x, io_uring_cqe_get_data64(cqe), cqe->res);
			else
				x->inflight[io_uring_cqe_get_data64(cqe)] = false;
			n++;
		}
		io_uring_cq_advance(&x->ring, n);
		if (r == 1)
			return PHASE_DONE;
		if (r < 0)
			return r == -ECONNRESET || r == -ETIMEDOUT ? r : PHASE_FATAL;
	}
}

/* Cancels everything in flight and waits for it: then buffers and the fd are free to go. */
static void drain(struct send_ctx *x)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&x->ring);
	struct __kernel_timespec ts = {.tv_sec = 5};

	if (sqe) {
		io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
		io_uring_sqe_set_data64(sqe, TAG_CANCEL);
	}
	io_uring_submit(&x->ring);
	for (;;) {
		struct io_uring_cqe *cqe;
		bool busy = false;

		for (int t = TAG_SEND; t < TAG_CANCEL; t++)
			busy |= x->inflight[t];
		if (!busy || io_uring_wait_cqe_timeout(&x->ring, &cqe, &ts) < 0)
			break;
		x->inflight[io_uring_cqe_get_data64(cqe)] = false;
		io_uring_cqe_seen(&x->ring, cqe);
	}
}

/*
 * A busy receiver (ERROR 7: too many connections) asks us to retry "after a while"
 * (STREAM.md): a new session tries again with increasing delays, for up to the resume
 * timeout; a resumed one is retried by reconnect(), within the same bound.
 */
int send_connect(struct ssink *k, bool resume, uint64_t *ret_offset, char *msg, size_t len)
{
	uint64_t deadline = sys_now_ns() + k->o.resume_timeout_s * 1000000000ull;
	unsigned delay = BACKOFF_FIRST_MS;
	int r;

	while ((r = connect_once(k, resume, ret_offset, msg, len)) == -EBUSY && !resume &&
	       sys_now_ns() + delay * NS_PER_MS < deadline) {
		struct pollfd p = {.fd = k->wake_fd, .events = POLLIN};

		if (poll(&p, 1, (int)delay) == 1)
			break; /* stopped */
		delay = delay * 2 < BACKOFF_MAX_MS ? delay * 2 : BACKOFF_MAX_MS;
	}
	return r;
}

/* Waits ms milliseconds, or less if stopped. */
static void backoff(struct send_ctx *x, unsigned ms)
{
	struct pollfd p = {.fd = x->k->wake_fd, .events = POLLIN};

	if (poll(&p, 1, ms) == 1)
		eventfd_read(x->k->wake_fd, &x->wake_val);
}

static int resume_at(struct send_ctx *x, uint64_t offset, char *msg, size_t len)
{
	struct ssink *k = x->k;
	int r = 0;

	pthread_mutex_lock(&k->lock);
	if (offset < k->acked || offset > k->sent)
		r = -EPROTO, snprintf(msg, len,
				      "the receiver resumed at offset %llu, outside "
				      "%llu..%llu",
				      (unsigned long long)offset, (unsigned long long)k->acked,
				      (unsigned long long)k->sent);
	else
		x->pos = offset, k->c.reconnects++;
	pthread_mutex_unlock(&k->lock);
	return r;
}

/* Reconnects with backoff until the resume timeout. 0, or fatal (the sink failed). */
static int reconnect(struct send_ctx *x)
{
	struct ssink *k = x->k;
	uint64_t deadline = sys_now_ns() + k->o.resume_timeout_s * 1000000000ull;
	unsigned delay = BACKOFF_FIRST_MS;
	char msg[sizeof(k->err.msg) - 128] = "";
	uint64_t off;
	int r = -ETIMEDOUT;

	while (!stopping(k) && sys_now_ns() < deadline) {
		uint64_t left = (deadline - sys_now_ns()) / NS_PER_MS;

		backoff(x, delay < left ? delay : left);
		delay = delay * 2 < BACKOFF_MAX_MS ? delay * 2 : BACKOFF_MAX_MS;
		r = send_connect(k, true, &off, msg, sizeof(msg));
		if (r >= 0 && (r = resume_at(x, off, msg, sizeof(msg))) >= 0)
			return 0;
		if (r == -EACCES || r == -EPROTO)
			break;
	}
	pthread_mutex_lock(&k->lock);
	sink_fail_locked(k, r, "lost the connection to %s (%s) and could not resume: %s",
			 k->host_port, x->why, msg[0] ? msg : "stopped");
	pthread_mutex_unlock(&k->lock);
	return r;
}

void *send_thread_main(void *arg)
{
	struct send_ctx x = {.k = arg};
	struct ssink *k = x.k;
	int r;

	x.sendbuf = malloc(SINK_SENDBUF);
	r = x.sendbuf ? io_uring_queue_init(16, &x.ring, 0) : -ENOMEM;
	if (r < 0) {
		pthread_mutex_lock(&k->lock);
		sink_fail_locked(k, r, "cannot start sending: %s", strerror(-r));
		pthread_mutex_unlock(&k->lock);
		free(x.sendbuf);
		return NULL;
	}
	for (;;) {
		r = data_phase(&x);
		drain(&x);
		close(k->fd);
		k->fd = -EBADF;
		if (r >= 0 || reconnect(&x) < 0)
			break;
	}
	pthread_mutex_lock(&k->lock);
	if (!k->complete && !k->stop)
		sink_fail_locked(k, -EIO, "the stream to %s ended early", k->host_port);
	pthread_mutex_unlock(&k->lock);
	io_uring_queue_exit(&x.ring);
	free(x.sendbuf);
	return NULL;
}
