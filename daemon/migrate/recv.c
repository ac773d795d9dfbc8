/* SPDX-License-Identifier: MIT */
/*
 * The migration receiver (recv.h): one sender, one image, one destination QEMU, so one thread
 * that polls the listening socket, the connection, QEMU's QMP socket and the stop signal. The
 * handshake is the stream's (proto/STREAM.md), lock-step and blocking with a timeout. Bytes
 * are checked (stream/check.c) and written into the backends (apply.c) as they arrive, so
 * everything received is applied: the durable offset a resume starts from is all of it, once
 * the backend files are synced.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate/recv.h"
#include "stream/check.h"
#include "stream/msgio.h"
#include "stream/wire.h"
#include "sys/clock.h"

#define RECV_BUF   (256u << 10)
#define SYNC_BYTES (4ull << 20)	 /* sync and ACK at least this often (STREAM.md) */
#define ACK_NS	   1000000000ull /* and at least every second */
#define TICK_MS	   200
#define TICK_NS	   (TICK_MS * 1000000ull)
#define NS_PER_S   1000000000ull

struct mr {
	const struct mrecv_opts *o;
	struct mdest *d;
	struct mrecv_stats *st;
	struct stream_check *check;
	struct apply ap;
	uint8_t session[STREAM_SESSION_SIZE];
	bool have_session, complete;
	int conn;
	uint64_t received, acked, last_ack_ns, last_data_ns, detached_ns, start_ns;
	char local[INET6_ADDRSTRLEN]; /* our address on the sender's connection */
	char uri[STREAM_URI_SIZE];    /* where the destination QEMU listens, once it does */
	uint8_t *buf;
	char *msg;
	size_t len;
};

static void note(struct mr *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct mr *r, const char *fmt, ...)
{
	char line[640];
	va_list ap;

	if (!r->o->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->o->log(r->o->log_ctx, line);
}

static int failf(struct mr *r, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(struct mr *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->msg, r->len, fmt, ap);
	va_end(ap);
	return err;
}

static int send_raw(int fd, uint8_t *out, size_t n)
{
	return stream_io_exact(fd, out, n, true);
}

static void send_error(int fd, uint32_t code, const char *text)
{
	uint8_t out[STREAM_MSG_MAX_SIZE];

	send_raw(fd, out, stream_error_encode(code, text, out));
}

static int send_ack(struct mr *r, bool complete)
{
	struct stream_ack a = {.offset = r->received,
			       .flags = complete ? STREAM_ACK_F_COMPLETE : 0};
	uint8_t out[STREAM_MSG_MAX_SIZE];

	r->last_ack_ns = sys_now_ns();
	r->acked = r->received;
	return send_raw(r->conn, out, stream_ack_encode(&a, out));
}

static int send_incoming(struct mr *r, int fd)
{
	struct stream_incoming in;
	uint8_t out[STREAM_MSG_MAX_SIZE];

	snprintf(in.uri, sizeof(in.uri), "%s", r->uri);
	return send_raw(fd, out, stream_incoming_encode(&in, out));
}

/* Our own address on connection fd, as text (an IPv4-mapped one as IPv4). */
static void local_host(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const char *p;

	out[0] = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, len);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, len);
	p = !strncmp(out, "::ffff:", 7) && strchr(out, '.') ? out + 7 : NULL;
	if (p)
		memmove(out, p, strlen(p) + 1);
}

/* The session part of the handshake, after both proofs: ACCEPT, or an ERROR. */
static int accept_session(struct mr *r, int fd, const struct stream_hello *h)
{
	struct stream_accept a = {0};
	uint8_t out[STREAM_MSG_MAX_SIZE];
	bool resume = h->flags & STREAM_HELLO_F_RESUME;
	int k;

	if (!(h->flags & STREAM_HELLO_F_MIGRATE))
		return send_error(fd, STREAM_ERR_MISMATCH,
				  "this receiver migrates a guest into QEMU; a snapshot goes to "
				  "'uffsnapd --receive --dir'"),
		       -EPROTO;
	if (resume && (!r->have_session || memcmp(r->session, h->session, sizeof(r->session))))
		return send_error(fd, STREAM_ERR_NO_SESSION, "no such session"), -EPROTO;
	if (!resume && r->have_session)
		return send_error(fd, STREAM_ERR_BUSY,
				  "this receiver takes one migration and "
				  "has one"),
		       -EBUSY;
	if (resume && (k = mdest_sync(r->d)) < 0)
		return send_error(fd, STREAM_ERR_IO, "cannot sync the guest RAM"), k;
	memcpy(r->session, h->session, sizeof(r->session));
	r->have_session = true;
	a.offset = r->received;
	a.flags = resume ? STREAM_ACCEPT_F_RESUMED : 0;
	k = send_raw(fd, out, stream_accept_encode(&a, out));
	if (k >= 0 && r->uri[0])
		k = send_incoming(r, fd);
	return k;
}

/* HELLO, CHALLENGE, AUTH, ACCEPT: lock-step, each read bounded by the handshake timeout. */
static int handshake(struct mr *r, int fd, char *name, size_t nlen)
{
	struct stream_challenge ch = {.major = STREAM_PROTO_MAJOR, .minor = STREAM_PROTO_MINOR};
	uint8_t out[STREAM_MSG_MAX_SIZE], raw[STREAM_HELLO_SIZE];
	struct stream_msg m;
	struct stream_hello h;
	int k;

	stream_sock_timeouts(fd, r->o->handshake_timeout_s);
	k = stream_msg_recv(fd, &m);
	if (k == -EPROTONOSUPPORT)
		send_error(fd, STREAM_ERR_VERSION, "unsupported protocol version");
	if (k >= 0 && m.type != STREAM_MSG_HELLO)
		k = -EPROTO, send_error(fd, STREAM_ERR_PROTOCOL, "expected HELLO");
	if (k < 0)
		return k;
	h = m.hello;
	memcpy(raw, m.hello_raw, sizeof(raw));
	snprintf(name, nlen, "%s", h.name);
	k = stream_random(ch.nonce, sizeof(ch.nonce));
	if (k >= 0)
		k = stream_proof(r->o->key, 'R', raw, ch.nonce, ch.proof);
	if (k >= 0)
		k = send_raw(fd, out, stream_challenge_encode(&ch, out));
	if (k >= 0)
		k = stream_msg_recv(fd, &m);
	if (k >= 0 && m.type != STREAM_MSG_AUTH)
		k = -EPROTO, send_error(fd, STREAM_ERR_PROTOCOL, "expected AUTH");
	if (k >= 0 && !stream_proof_ok(r->o->key, 'S', raw, ch.nonce, m.auth.proof))
		k = -EACCES, send_error(fd, STREAM_ERR_AUTH,
					"authentication failed: the sender's key is not ours");
	if (k >= 0)
		k = accept_session(r, fd, &h);
	stream_sock_timeouts(fd, r->o->idle_timeout_s); /* sends only: reads are polled */
	return k;
}

static void detach(struct mr *r, const char *why)
{
	if (r->conn < 0)
		return;
	close(r->conn);
	r->conn = -1;
	r->detached_ns = sys_now_ns();
	if (!r->complete)
		note(r,
		     "the connection from %s dropped (%s) at %" PRIu64 " bytes; waiting %u s "
		     "for it to resume",
		     r->st->sender, why, r->received, r->o->resume_timeout_s);
}

static void on_accept(struct mr *r)
{
	char name[STREAM_NAME_SIZE] = "";
	int fd = accept4(r->o->listen_fd, NULL, NULL, SOCK_CLOEXEC), k;

	if (fd < 0)
		return;
	k = handshake(r, fd, name, sizeof(name));
	if (k < 0) {
		note(r, "refused a connection (name '%s'): %s", name, strerror(-k));
		close(fd);
		return;
	}
	if (r->conn >= 0) { /* a RESUME replaces the connection the sender gave up */
		close(r->conn);
		r->st->reconnects++;
	} else if (r->received || r->complete) {
		r->st->reconnects++;
	}
	if (!r->start_ns)
		r->start_ns = sys_now_ns();
	r->conn = fd;
	r->last_data_ns = sys_now_ns();
	snprintf(r->st->sender, sizeof(r->st->sender), "%s", name);
	if (!r->local[0])
		local_host(fd, r->local, sizeof(r->local));
	note(r, "%s stream from '%s' at offset %" PRIu64,
	     r->received ? "resumed the" : "accepted a", name, r->received);
	if (r->complete)
		send_ack(r, true);
}

/* The host part of HOST:PORT ([V6]:PORT), or "" for a wildcard. */
static void host_of(const char *hp, char *out, size_t len)
{
	const char *colon = strrchr(hp, ':');
	size_t n = colon ? (size_t)(colon - hp) : strlen(hp);

	if (n >= 2 && hp[0] == '[')
		hp++, n -= 2;
	snprintf(out, len, "%.*s", (int)n, hp);
	if (!strcmp(out, "0.0.0.0") || !strcmp(out, "::"))
		out[0] = 0;
}

/* The first META checked out: QEMU listens now, and the sender learns where. */
static int start_incoming(struct mr *r)
{
	char bind[128], host[INET6_ADDRSTRLEN + 2] = "";
	int k;

	if (r->o->incoming) { /* ":PORT" is any address */
		snprintf(bind, sizeof(bind), "%s%s", r->o->incoming[0] == ':' ? "0.0.0.0" : "",
			 r->o->incoming);
		host_of(bind, host, sizeof(host));
	} else {
		snprintf(bind, sizeof(bind), strchr(r->local, ':') ? "[%s]:0" : "%s:0", r->local);
	}
	k = mdest_incoming(r->d, bind, host[0] ? host : r->local, r->uri, sizeof(r->uri), r->msg,
			   r->len);
	if (k < 0)
		return k;
	snprintf(r->st->uri, sizeof(r->st->uri), "%s", r->uri);
	note(r, "the guest matches the destination; QEMU listens on %s", r->uri);
	return send_incoming(r, r->conn);
}

static int on_meta(void *ctx, unsigned nth, const char *json, size_t len, char *msg, size_t n)
{
	struct mr *r = ctx;

	(void)len;
	if (nth == 0)
		return mdest_check_meta(r->d, json, &r->ap, msg, n);
	mdest_instant_meta(r->d, json);
	return 0;
}

/* Bytes from the sender: checked, written into the backends, acknowledged. */
static int on_data(struct mr *r)
{
	struct img_error err = {0};
	ssize_t n = recv(r->conn, r->buf, RECV_BUF, 0);
	int c, k;

	if (n <= 0) {
		detach(r, n < 0 ? strerror(errno) : "closed");
		return 0;
	}
	r->last_data_ns = sys_now_ns();
	c = stream_check_feed(r->check, r->buf, (size_t)n, &err);
	if (c < 0) {
		failf(r, c, "the image does not check out at offset %" PRIu64 ": %s", err.offset,
		      err.msg);
		send_error(r->conn, STREAM_ERR_CORRUPT, r->msg);
		return c;
	}
	k = apply_feed(&r->ap, r->buf, (size_t)n, r->msg, r->len);
	if (k < 0) {
		send_error(r->conn, k == -EINVAL ? STREAM_ERR_MISMATCH : STREAM_ERR_IO, r->msg);
		return k;
	}
	r->received += (uint64_t)n;
	if (!r->uri[0] && r->ap.metas && (k = start_incoming(r)) < 0) {
		send_error(r->conn, STREAM_ERR_IO, r->msg);
		return k;
	}
	if (c == 1) { /* the trailer checked out: every page is in the backends */
		k = mdest_sync(r->d);
		if (k < 0)
			return send_error(r->conn, STREAM_ERR_IO, "cannot sync the guest RAM"),
			       failf(r, k, "cannot sync the guest RAM: %s", strerror(-k));
		r->complete = true;
		note(r, "all the guest RAM is here (%" PRIu64 " bytes of stream)", r->received);
		send_ack(r, true);
	}
	return 0;
}

/* ACK what is written, synced first (STREAM.md "ACK"): every 4 MiB and every second. */
static int tick(struct mr *r)
{
	uint64_t now = sys_now_ns();
	int k = 0;

	/* COMPLETE again every tick: a sender that read it before its flush() ignored it. */
	if (r->conn >= 0 && (now - r->last_ack_ns >= (r->complete ? TICK_NS : ACK_NS) ||
			     (!r->complete && r->received - r->acked >= SYNC_BYTES))) {
		k = r->complete ? 0 : mdest_sync(r->d);
		if (k < 0)
			return send_error(r->conn, STREAM_ERR_IO, "cannot sync the guest RAM"),
			       failf(r, k, "cannot sync the guest RAM: %s", strerror(-k));
		if (send_ack(r, r->complete) < 0)
			detach(r, "cannot send");
	}
	if (r->conn >= 0 && now - r->last_data_ns >= r->o->idle_timeout_s * NS_PER_S)
		detach(r, "idle");
	if (r->conn < 0 && r->have_session && !r->complete &&
	    now - r->detached_ns >= r->o->resume_timeout_s * NS_PER_S)
		k = failf(r, -ETIMEDOUT,
			  "the sender did not resume within %u s (%" PRIu64
			  " bytes received); the destination QEMU still waits: stop it",
			  r->o->resume_timeout_s, r->received);
	return k;
}

static int step(struct mr *r)
{
	struct pollfd p[4] = {{.fd = r->o->listen_fd, .events = POLLIN},
			      {.fd = r->o->stop_fd, .events = POLLIN},
			      {.fd = mdest_fd(r->d), .events = POLLIN},
			      {.fd = r->conn, .events = POLLIN}};
	int k = poll(p, r->conn >= 0 ? 4 : 3, TICK_MS);

	if (k < 0)
		return errno == EINTR ? 0 : -errno;
	if (p[1].revents)
		return failf(r, -EINTR, "interrupted");
	if (p[2].revents && (k = mdest_poll(r->d, r->msg, r->len)) < 0) {
		if (r->conn >= 0)
			send_error(r->conn, STREAM_ERR_IO, r->msg);
		return k;
	}
	if (p[0].revents)
		on_accept(r);
	if (r->conn >= 0 && p[3].revents && (k = on_data(r)) < 0)
		return k;
	return tick(r);
}

int mrecv_run(const struct mrecv_opts *o, struct mdest *d, struct mrecv_stats *st, char *msg,
	      size_t len)
{
	struct mr r = {.o = o, .d = d, .st = st, .conn = -1, .msg = msg, .len = len};
	int k = stream_check_new(&r.check);

	*st = (struct mrecv_stats){0};
	r.ap.meta = on_meta;
	r.ap.ctx = &r;
	apply_init(&r.ap);
	r.buf = malloc(RECV_BUF);
	if (k >= 0 && !r.buf)
		k = -ENOMEM;
	while (k >= 0 && !(r.complete && r.conn < 0))
		k = step(&r);
	/* Other failures sent their ERROR where they were found. */
	if ((k == -EINTR || k == -ETIMEDOUT) && r.conn >= 0)
		send_error(r.conn, STREAM_ERR_IO, "the migration receiver was stopped");
	if (r.conn >= 0)
		close(r.conn);
	if (k >= 0)
		k = mdest_wait_running(d, &st->resumed_realtime_ns, &st->stopped_realtime_ns, msg,
				       len);
	st->bytes = r.received;
	st->pages_written = r.ap.pages_written;
	st->pages_zeroed = r.ap.pages_zeroed;
	st->elapsed_ns = r.start_ns ? sys_now_ns() - r.start_ns : 0;
	apply_free(&r.ap);
	stream_check_free(r.check);
	free(r.buf);
	return k;
}
