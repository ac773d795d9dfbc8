/* SPDX-License-Identifier: MIT */
/*
 * Receiver sessions: one image being received. Bytes are checked as they arrive, written at
 * their offsets through the loop's io_uring, synced and acknowledged (proto/STREAM.md
 * "Durability, interruption and resumption"); once the trailer checks out, a thread verifies
 * the whole file, renames it to .img and the sender gets ACK COMPLETE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stream/recv-internal.h"

#define NS_PER_S 1000000000ull

static struct rsess *sess_find(struct recv_loop *l, const uint8_t *id)
{
	for (struct rsess *s = l->sessions; s; s = s->next)
		if (!memcmp(s->id, id, STREAM_SESSION_SIZE))
			return s;
	return NULL;
}

/* Tells recv_opts.stream (if any) where s stands. */
static void sess_report(struct recv_loop *l, const struct rsess *s, enum recv_stream_state st)
{
	struct recv_stream_info i = {
	    .file = s->file,
	    .peer = s->peer,
	    .state = st,
	    .bytes = s->received,
	    .rate = st == RECV_STREAM_RECEIVING ? s->rate : 0,
	    .elapsed_ns = l->now - s->start_ns,
	    .why = s->why,
	};

	if (l->o->stream)
		l->o->stream(l->o->log_ctx, &i);
}

static void partial_name(const struct rsess *s, char *out, size_t len)
{
	snprintf(out, len, "%s.partial", s->file);
}

static int sess_new(struct recv_loop *l, const struct stream_hello *h, struct rsess **ret)
{
	struct rsess *s = calloc(1, sizeof(*s));
	char hex[2 * STREAM_SESSION_SIZE + 1], partial[sizeof(s->file) + 16];
	int r;

	if (!s)
		return -ENOMEM;
	for (int i = 0; i < STREAM_SESSION_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", h->session[i]);
	memcpy(s->id, h->session, STREAM_SESSION_SIZE);
	snprintf(s->name, sizeof(s->name), "%s", h->name);
	/* "." and ".." are valid names (STREAM.md): prefixed, so that no file is hidden, and
	 * no name starts with '-' (an option to the next command that sees it) */
	snprintf(s->file, sizeof(s->file), "%s%s-%s.img",
		 h->name[0] == '.' || h->name[0] == '-' ? "_" : "", h->name, hex);
	partial_name(s, partial, sizeof(partial));
	s->dir_fd = l->o->dir_fd;
	s->fd = openat(s->dir_fd, partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		r = -errno;
		free(s);
		return r;
	}
	r = stream_check_new(&s->check);
	if (r < 0) {
		unlinkat(s->dir_fd, partial, 0);
		close(s->fd);
		free(s);
		return r;
	}
	s->start_ns = s->last_sync_ns = s->last_log_ns = s->rate_ns = l->now;
	s->next = l->sessions;
	l->sessions = s;
	*ret = s;
	return 0;
}

static void attach_new(struct recv_loop *l, struct rconn *c)
{
	struct stream_accept a = {0};
	uint8_t m[STREAM_MSG_MAX_SIZE];
	char msg[200];
	struct rsess *s = NULL;
	int r = sess_new(l, &c->hello, &s);

	if (r < 0) {
		snprintf(msg, sizeof(msg), "receiver cannot create the image file: %s",
			 strerror(-r));
		recv_log(l, RECV_LOG_WARN, "refused %s (name '%s'): %s", c->peer, c->hello.name,
			 msg);
		return recv_conn_fail(l, c, STREAM_ERR_IO, msg);
	}
	s->conn = c;
	c->sess = s;
	c->state = RC_DATA;
	c->last_data_ns = c->last_ack_ns = l->now;
	recv_conn_queue(c, m, stream_accept_encode(&a, m));
	snprintf(s->peer, sizeof(s->peer), "%s", c->peer);
	recv_log(l, RECV_LOG_INFO, "%s: receiving from %s", s->file, c->peer);
	sess_report(l, s, RECV_STREAM_RECEIVING);
}

static void attach_resume(struct recv_loop *l, struct rconn *c, struct rsess *s)
{
	if (!s || strcmp(s->name, c->hello.name) || s->failed || s->expired) {
		recv_log(l, RECV_LOG_WARN, "refused %s (name '%s'): no such session to resume",
			 c->peer, c->hello.name);
		return recv_conn_fail(l, c, STREAM_ERR_NO_SESSION,
				      "no such session to resume (expired, failed or unknown)");
	}
	if (s->conn) {
		recv_log(l, RECV_LOG_INFO, "%s: %s replaces the connection from %s", s->file,
			 c->peer, s->conn->peer);
		recv_conn_close(l, s->conn);
	}
	s->conn = c;
	c->sess = s;
	c->state = RC_RESUME_WAIT;
	recv_log(l, RECV_LOG_INFO, "%s: %s resumes", s->file, c->peer);
}

void recv_sess_attach(struct recv_loop *l, struct rconn *c)
{
	struct rsess *s = sess_find(l, c->hello.session);

	if (c->hello.flags & STREAM_HELLO_F_RESUME)
		return attach_resume(l, c, s);
	if (s) {
		recv_log(l, RECV_LOG_WARN, "refused %s: session of '%s' already exists", c->peer,
			 s->file);
		return recv_conn_fail(l, c, STREAM_ERR_PROTOCOL, "session already exists");
	}
	attach_new(l, c);
}

void recv_sess_detach(struct recv_loop *l, struct rsess *s, const char *why)
{
	s->conn = NULL;
	s->detached_ns = l->now;
	if (s->done || s->failed)
		return;
	recv_log(l, RECV_LOG_INFO,
		 "%s: %s at offset %llu; waiting up to %u s for the sender to resume", s->file, why,
		 (unsigned long long)s->received, l->o->resume_timeout_s);
	sess_report(l, s, RECV_STREAM_WAITING);
}

static void sess_fail(struct recv_loop *l, struct rsess *s, uint32_t code, const char *msg)
{
	bool first = !s->failed;

	s->failed = true;
	recv_log(l, RECV_LOG_WARN, "%s: %s; left as %s.partial", s->file, msg, s->file);
	if (first) {
		snprintf(s->why, sizeof(s->why), "%s", msg);
		sess_report(l, s, RECV_STREAM_FAILED);
	}
	if (s->conn)
		recv_conn_fail(l, s->conn, code, msg);
}

static void post_write(struct recv_loop *l, struct rsess *s, uint8_t *buf, size_t n)
{
	unsigned slot = (s->whead + s->wcount) % RECV_SESS_INFLIGHT;
	struct rop *op = recv_op_new(ROP_WRITE, NULL, s);
	struct io_uring_sqe *sqe = op ? recv_sqe(l, op) : NULL;

	if (!sqe) {
		if (op)
			s->ops--;
		free(op);
		recv_buf_put(l, buf);
		return sess_fail(l, s, STREAM_ERR_IO, "receiver out of memory");
	}
	op->buf = buf;
	op->off = s->received;
	op->len = n;
	op->slot = slot;
	s->w[slot] = (struct wslot){.start = s->received, .end = s->received + n};
	s->wcount++;
	io_uring_prep_write(sqe, s->fd, buf, n, op->off);
}

void recv_sess_data(struct recv_loop *l, struct rsess *s, uint8_t *buf, size_t n)
{
	struct img_error err = {0};
	char msg[300];
	int r;

	if (!s || s->failed)
		return recv_buf_put(l, buf);
	r = stream_check_feed(s->check, buf, n, &err);
	if (r < 0) {
		recv_buf_put(l, buf);
		snprintf(msg, sizeof(msg), "image corrupt at offset %llu: %s",
			 (unsigned long long)err.offset, err.msg);
		return sess_fail(l, s, STREAM_ERR_CORRUPT, msg);
	}
	post_write(l, s, buf, n);
	s->received += n;
	if (r == 1)
		s->trailer_seen = true;
}

void recv_sess_write_done(struct recv_loop *l, struct rop *op, int res)
{
	struct rsess *s = op->sess;
	char msg[200];

	if (res > 0 && op->done + (uint32_t)res < op->len && !s->failed) {
		struct io_uring_sqe *sqe = recv_sqe(l, op);

		op->done += res;
		if (sqe) {
			io_uring_prep_write(sqe, s->fd, op->buf + op->done, op->len - op->done,
					    op->off + op->done);
			op->requeued = true;
			return;
		}
		res = -ENOMEM;
	}
	recv_buf_put(l, op->buf);
	s->w[op->slot].done = true;
	while (s->wcount && s->w[s->whead].done) {
		s->written = s->w[s->whead].end;
		s->whead = (s->whead + 1) % RECV_SESS_INFLIGHT;
		s->wcount--;
	}
	if (res <= 0 && !s->failed) {
		snprintf(msg, sizeof(msg), "cannot write the image: %s",
			 res ? strerror(-res) : "no progress");
		sess_fail(l, s, STREAM_ERR_IO, msg);
	}
}

static void post_fsync(struct recv_loop *l, struct rsess *s)
{
	struct rop *op = recv_op_new(ROP_FSYNC, NULL, s);
	struct io_uring_sqe *sqe = op ? recv_sqe(l, op) : NULL;

	if (!sqe) {
		if (op)
			s->ops--;
		return free(op);
	}
	io_uring_prep_fsync(sqe, s->fd, IORING_FSYNC_DATASYNC);
	s->sync_target = s->written;
	s->fsync_posted = true;
}

void recv_sess_fsync_done(struct recv_loop *l, struct rop *op, int res)
{
	struct rsess *s = op->sess;
	char msg[200];

	s->fsync_posted = false;
	if (res < 0) {
		snprintf(msg, sizeof(msg), "cannot sync the image: %s", strerror(-res));
		return sess_fail(l, s, STREAM_ERR_IO, msg);
	}
	s->synced = s->sync_target;
	s->last_sync_ns = l->now;
	if (s->conn && s->conn->state == RC_DATA)
		s->conn->ack_pending = true;
}

/* The final check, off the loop: it reads the whole file. */
static void *finisher_main(void *arg)
{
	struct rsess *s = arg;
	char partial[sizeof(s->file) + 16];
	struct img_summary sum;
	int fd, r;

	partial_name(s, partial, sizeof(partial));
	fd = openat(s->dir_fd, partial, O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? -errno : img_verify_fd(fd, &sum, NULL);
	if (fd >= 0)
		close(fd);
	if (r < 0)
		snprintf(s->finish_msg, sizeof(s->finish_msg), "cannot read it back: %s",
			 strerror(-r));
	else if (sum.status != IMG_COMPLETE)
		r = -EBADMSG, snprintf(s->finish_msg, sizeof(s->finish_msg),
				       "image does not verify: %s at offset %llu", sum.error.msg,
				       (unsigned long long)sum.error.offset);
	if (r >= 0 &&
	    (renameat(s->dir_fd, partial, s->dir_fd, s->file) < 0 || fsync(s->dir_fd) < 0))
		r = -errno, snprintf(s->finish_msg, sizeof(s->finish_msg),
				     "cannot rename it to its final name: %m");
	s->finish_result = r;
	__atomic_store_n(&s->finish_state, 2, __ATOMIC_RELEASE);
	return NULL;
}

static void finish_reap(struct recv_loop *l, struct rsess *s)
{
	double secs = (l->now - s->start_ns) / 1e9;

	pthread_join(s->finisher, NULL);
	s->finish_state = 3;
	if (s->finish_result < 0)
		return sess_fail(l, s, STREAM_ERR_CORRUPT, s->finish_msg);
	s->done = true;
	recv_log(l, RECV_LOG_INFO, "%s: complete and verified, %llu bytes in %.1f s (%.1f MiB/s)",
		 s->file, (unsigned long long)s->received, secs,
		 secs > 0 ? s->received / 1048576.0 / secs : 0.0);
	sess_report(l, s, RECV_STREAM_COMPLETE);
	if (s->conn && s->conn->state == RC_DATA) {
		s->conn->ack_complete = true;
		s->conn->ack_pending = true;
	}
}

/* The finisher thread stores 2 into it while this thread reads. */
static int finishing(const struct rsess *s)
{
	int st = __atomic_load_n(&s->finish_state, __ATOMIC_ACQUIRE);

	return st == 1 || st == 2;
}

static bool settled(const struct rsess *s)
{
	return s->wcount == 0 && !s->fsync_posted && s->synced == s->received;
}

static void answer_resume(struct recv_loop *l, struct rsess *s, struct rconn *c)
{
	struct stream_accept a = {.offset = s->received, .flags = STREAM_ACCEPT_F_RESUMED};
	uint8_t m[STREAM_MSG_MAX_SIZE];

	if (!s->done && !settled(s))
		return;
	if (finishing(s))
		return; /* verifying: answer when that is over */
	if (!recv_conn_queue(c, m, stream_accept_encode(&a, m)))
		return;
	c->state = RC_DATA;
	c->last_data_ns = c->last_ack_ns = l->now;
	if (s->done)
		c->ack_complete = c->ack_pending = true;
	snprintf(s->peer, sizeof(s->peer), "%s", c->peer);
	recv_log(l, RECV_LOG_INFO, "%s: resumed at offset %llu", s->file,
		 (unsigned long long)s->received);
	if (!s->done)
		sess_report(l, s, RECV_STREAM_RECEIVING);
}

void recv_sess_pump(struct recv_loop *l, struct rsess *s)
{
	bool waiting = s->conn && s->conn->state == RC_RESUME_WAIT;

	if (__atomic_load_n(&s->finish_state, __ATOMIC_ACQUIRE) == 2)
		finish_reap(l, s);
	if (s->failed)
		return;
	if (waiting)
		answer_resume(l, s, s->conn);
	if (!s->fsync_posted && s->written > s->synced &&
	    (s->written - s->synced >= RECV_SYNC_BYTES || l->now - s->last_sync_ns >= NS_PER_S ||
	     s->trailer_seen || (waiting && s->wcount == 0)))
		post_fsync(l, s);
	if (s->trailer_seen && __atomic_load_n(&s->finish_state, __ATOMIC_ACQUIRE) == 0 &&
	    settled(s)) {
		s->finish_state = 1;
		if (pthread_create(&s->finisher, NULL, finisher_main, s) != 0) {
			s->finish_state = 0;
			sess_fail(l, s, STREAM_ERR_IO, "cannot start the final verification");
		}
	}
}

static void sess_expire(struct recv_loop *l, struct rsess *s)
{
	s->expired = true;
	if (s->done || s->failed)
		return;
	if (s->received)
		snprintf(s->why, sizeof(s->why),
			 "not resumed within %u s; left incomplete as %s.partial",
			 l->o->resume_timeout_s, s->file);
	else /* recv_sess_free() removes the empty file */
		snprintf(s->why, sizeof(s->why), "not resumed within %u s; nothing was received",
			 l->o->resume_timeout_s);
	recv_log(l, RECV_LOG_WARN, "%s: %s (%llu bytes)", s->file, s->why,
		 (unsigned long long)s->received);
	sess_report(l, s, RECV_STREAM_EXPIRED);
}

/* Throughput over the last second, reported to recv_opts.stream. */
static void sess_rate(struct recv_loop *l, struct rsess *s)
{
	uint64_t dt = l->now - s->rate_ns;

	if (dt < NS_PER_S)
		return;
	s->rate = (uint64_t)((s->received - s->rate_bytes) * 1e9 / dt);
	s->rate_ns = l->now;
	s->rate_bytes = s->received;
	sess_report(l, s, RECV_STREAM_RECEIVING);
}

void recv_sess_tick(struct recv_loop *l, struct rsess *s)
{
	uint64_t timeout = (uint64_t)l->o->resume_timeout_s * NS_PER_S;
	uint64_t every =
	    (uint64_t)(l->o->progress_interval_s ? l->o->progress_interval_s : 5) * NS_PER_S;
	bool running = s->conn && s->conn->state == RC_DATA && !s->done && !s->failed;

	if (!s->conn && !s->expired && l->now - s->detached_ns > timeout)
		sess_expire(l, s);
	if (running)
		sess_rate(l, s);
	if (running && l->now - s->last_log_ns >= every) {
		double secs = (l->now - s->last_log_ns) / 1e9;

		recv_log(l, RECV_LOG_INFO, "%s: %.1f MiB received, %.1f MiB/s", s->file,
			 s->received / 1048576.0,
			 (s->received - s->last_log_bytes) / 1048576.0 / secs);
		s->last_log_ns = l->now;
		s->last_log_bytes = s->received;
	}
}

bool recv_sess_reapable(const struct recv_loop *l, const struct rsess *s)
{
	if (s->conn || s->ops || finishing(s))
		return false;
	return s->failed || s->expired;
}

bool recv_sess_can_recv(const struct rsess *s)
{
	return !s->failed && !s->trailer_seen && s->wcount < RECV_SESS_INFLIGHT;
}

void recv_sess_free(struct rsess *s)
{
	if (!s)
		return;
	stream_check_free(s->check);
	if (s->fd >= 0)
		close(s->fd);
	/* an authenticated sender that sent nothing (a corrupt image stays, as STREAM.md says) */
	if (!s->received && !s->done && !s->failed) {
		char partial[sizeof(s->file) + 16];

		partial_name(s, partial, sizeof(partial));
		unlinkat(s->dir_fd, partial, 0);
	}
	free(s);
}
