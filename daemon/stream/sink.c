/* SPDX-License-Identifier: MIT */
/*
 * The stream sink (stream/sink.h): the image bytes not yet acknowledged by the receiver, kept
 * in memory chunks up to the configured bound and in a spool file beyond it. writev() runs in
 * the snapshot's fault handler and copier, with the image writer's lock held: it copies or
 * appends to the spool and returns; it never waits for the network.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "sys/clock.h"
#include "stream/addr.h"
#include "stream/sink-internal.h"

void sink_fail_locked(struct ssink *k, int error, const char *fmt, ...)
{
	va_list ap;

	if (k->error)
		return;
	k->error = error < 0 ? error : -EIO;
	va_start(ap, fmt);
	vsnprintf(k->err.msg, sizeof(k->err.msg), fmt, ap);
	va_end(ap);
	pthread_cond_broadcast(&k->cond);
	if (k->fail_fd >= 0)
		eventfd_write(k->fail_fd, 1);
}

/*
 * Memory chunks are kept for reuse, never freed before the sink: allocated by whichever
 * thread writes (copier, fault emitter) and released by the sending thread, freed buffers
 * would gather in each writer's malloc arena, and the process grew to about twice its bound.
 * So memory used plus spare never exceeds the bound.
 */
static void spare_put(struct ssink *k, uint8_t *mem)
{
	*(uint8_t **)mem = k->spare;
	k->spare = mem;
}

static uint8_t *spare_get(struct ssink *k)
{
	uint8_t *mem = k->spare;

	if (mem)
		k->spare = *(uint8_t **)mem;
	return mem ? mem : malloc(SINK_CHUNK);
}

static void chunk_free(struct ssink *k, struct sink_chunk *ch)
{
	if (ch->mem) {
		k->c.mem_used -= ch->cap;
		spare_put(k, ch->mem);
	} else if (k->spool_fd >= 0) {
		/* give the disk space back; the file keeps its offsets */
		fallocate(k->spool_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, ch->spool_off,
			  ch->len);
	}
	free(ch);
}

void sink_release_locked(struct ssink *k)
{
	while (k->head && k->head->start + k->head->len <= k->acked && k->head != k->tail) {
		struct sink_chunk *ch = k->head;

		k->head = ch->next;
		chunk_free(k, ch);
	}
	/* The tail is kept as the place to append; a fully acked memory tail is emptied. */
}

struct sink_chunk *sink_find_locked(struct ssink *k, uint64_t offset)
{
	for (struct sink_chunk *ch = k->head; ch; ch = ch->next)
		if (offset >= ch->start && offset < ch->start + ch->len)
			return ch;
	return NULL;
}

static struct sink_chunk *chunk_append(struct ssink *k, bool mem)
{
	struct sink_chunk *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	ch->start = k->accepted;
	if (mem) {
		ch->mem = spare_get(k);
		if (!ch->mem)
			return free(ch), NULL;
		ch->cap = SINK_CHUNK;
		k->c.mem_used += SINK_CHUNK;
		if (k->c.mem_used > k->c.mem_peak)
			k->c.mem_peak = k->c.mem_used;
	} else {
		ch->spool_off = k->spool_end;
	}
	if (k->tail)
		k->tail->next = ch;
	else
		k->head = ch;
	k->tail = ch;
	return ch;
}

/* Appends n bytes to the spool (local disk: may wait for it, never for the network). */
static int spool_append(struct ssink *k, const uint8_t *p, size_t n)
{
	struct sink_chunk *ch = k->tail;

	if (!ch || ch->mem || ch->spool_off + ch->len != k->spool_end || ch->len > UINT32_MAX - n)
		ch = chunk_append(k, false);
	if (!ch)
		return -ENOMEM;
	for (size_t done = 0; done < n;) {
		ssize_t w = pwrite(k->spool_fd, p + done, n - done, k->spool_end + done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		done += w;
	}
	k->spool_end += n;
	ch->len += n;
	k->c.spooled += n;
	return 0;
}

/* Appends up to n bytes; returns how many were taken or -errno. */
static ssize_t append(struct ssink *k, const uint8_t *p, size_t n)
{
	struct sink_chunk *ch = k->tail;
	int r;

	if (ch && ch->mem && ch->len < ch->cap) {
		size_t m = n < ch->cap - ch->len ? n : ch->cap - ch->len;

		memcpy(ch->mem + ch->len, p, m);
		ch->len += m;
		return m;
	}
	if (k->c.mem_used + SINK_CHUNK <= k->o.mem_limit && chunk_append(k, true))
		return 0; /* a fresh chunk: the next round copies into it */
	if (n > SINK_CHUNK)
		n = SINK_CHUNK;
	r = spool_append(k, p, n);
	return r < 0 ? r : (ssize_t)n;
}

static int sink_writev(struct img_sink *s, const struct iovec *iov, int iovcnt)
{
	struct ssink *k = (struct ssink *)s;
	uint64_t before;
	int r = 0;

	pthread_mutex_lock(&k->lock);
	before = k->accepted;
	for (int i = 0; i < iovcnt && !k->error; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t n = iov[i].iov_len;

		while (n) {
			ssize_t m = append(k, p, n);

			if (m < 0) {
				sink_fail_locked(k, m, "cannot keep image data for sending: %s",
						 strerror((int)-m));
				break;
			}
			p += m;
			n -= m;
			k->accepted += m;
		}
	}
	r = k->error;
	k->c.accepted = k->accepted;
	if (k->accepted != before && k->thread_idle) {
		k->thread_idle = false;
		eventfd_write(k->wake_fd, 1);
	}
	pthread_mutex_unlock(&k->lock);
	return r;
}

/* The whole image is in: wait until the receiver has verified it, or the stream failed. */
static int sink_flush(struct img_sink *s)
{
	struct ssink *k = (struct ssink *)s;
	int r;

	pthread_mutex_lock(&k->lock);
	eventfd_write(k->wake_fd, 1);
	while (!k->complete && !k->error)
		pthread_cond_wait(&k->cond, &k->lock);
	r = k->complete ? 0 : k->error;
	pthread_mutex_unlock(&k->lock);
	return r;
}

static void sink_free(struct img_sink *s)
{
	struct ssink *k = (struct ssink *)s;

	if (k->thread_started) {
		pthread_mutex_lock(&k->lock);
		k->stop = true;
		pthread_mutex_unlock(&k->lock);
		eventfd_write(k->wake_fd, 1);
		pthread_join(k->thread, NULL);
	}
	while (k->head) {
		struct sink_chunk *ch = k->head;

		k->head = ch->next;
		chunk_free(k, ch);
	}
	while (k->spare) {
		uint8_t *mem = k->spare;

		k->spare = *(uint8_t **)mem;
		free(mem);
	}
	if (k->fd >= 0)
		close(k->fd);
	if (k->spool_fd >= 0)
		close(k->spool_fd);
	if (k->wake_fd >= 0)
		close(k->wake_fd);
	if (k->fail_fd >= 0)
		close(k->fail_fd);
	if (k->addrs)
		freeaddrinfo(k->addrs);
	stream_key_wipe(&k->key);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static const struct img_sink_ops stream_sink_ops = {
    .writev = sink_writev,
    .flush = sink_flush,
    .free = sink_free,
};

void stream_snap_mem_split(uint64_t limit, uint64_t *stream_bytes, uint64_t *queue_bytes)
{
	if (!limit)
		limit = STREAM_SNAP_MEM_DEFAULT;
	*queue_bytes = limit / 2;
	*stream_bytes = limit - *queue_bytes;
	if (*stream_bytes < STREAM_MEM_LIMIT_MIN)
		*stream_bytes = STREAM_MEM_LIMIT_MIN;
}

static int sink_opts(struct ssink *k, const struct stream_opts *opts, struct stream_error *err)
{
	const char *tmp = getenv("TMPDIR");

	if (opts)
		k->o = *opts;
	if (!k->o.mem_limit)
		k->o.mem_limit = STREAM_MEM_LIMIT_DEFAULT;
	if (k->o.mem_limit < STREAM_MEM_LIMIT_MIN)
		return snprintf(err->msg, sizeof(err->msg),
				"memory bound of %llu bytes is too small (at least 1 MiB)",
				(unsigned long long)k->o.mem_limit),
		       -EINVAL;
	if (!k->o.spool_dir)
		k->o.spool_dir = tmp && tmp[0] ? tmp : "/var/tmp";
	if (!k->o.resume_timeout_s)
		k->o.resume_timeout_s = 60;
	if (!k->o.liveness_timeout_s)
		k->o.liveness_timeout_s = 10;
	if (!k->o.connect_timeout_s)
		k->o.connect_timeout_s = 10;
	if (k->o.name)
		snprintf(k->name, sizeof(k->name), "%s", k->o.name);
	else if (gethostname(k->name, sizeof(k->name)) < 0)
		snprintf(k->name, sizeof(k->name), "sender");
	k->name[sizeof(k->name) - 1] = '\0';
	if (!stream_name_valid(k->name))
		return snprintf(err->msg, sizeof(err->msg),
				"sender name '%s' is not 1..63 of [A-Za-z0-9._-]", k->name),
		       -EINVAL;
	k->o.spool_dir = NULL; /* opened below; the caller's string is not kept */
	return 0;
}

static int sink_open(struct ssink *k, const char *host_port, const char *spool_dir,
		     struct stream_error *err)
{
	int r;

	snprintf(k->host_port, sizeof(k->host_port), "%s", host_port);
	r = stream_addr_resolve(host_port, false, &k->addrs, err->msg, sizeof(err->msg));
	if (r < 0)
		return r;
	k->spool_fd = open(spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (k->spool_fd < 0)
		return r = -errno,
		       snprintf(err->msg, sizeof(err->msg),
				"cannot create a spool file in '%s': %s", spool_dir, strerror(-r)),
		       r;
	k->wake_fd = eventfd(0, EFD_CLOEXEC);
	k->fail_fd = eventfd(0, EFD_CLOEXEC);
	if (k->wake_fd < 0 || k->fail_fd < 0)
		return r = -errno,
		       snprintf(err->msg, sizeof(err->msg), "eventfd: %s", strerror(-r)), r;
	return stream_random(k->session, sizeof(k->session));
}

int stream_sink_new_key(const char *host_port, const struct stream_key *key,
			const struct stream_opts *opts, struct img_sink **ret,
			struct stream_error *err)
{
	struct ssink *k = calloc(1, sizeof(*k));
	const char *spool_dir;
	uint64_t offset = 0;
	int r;

	if (!k)
		return -ENOMEM;
	k->base.ops = &stream_sink_ops;
	k->fd = k->spool_fd = k->wake_fd = k->fail_fd = -EBADF;
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->cond, NULL);
	k->start_ns = sys_now_ns();
	k->key = *key;
	err->msg[0] = '\0';
	r = sink_opts(k, opts, err);
	spool_dir = opts && opts->spool_dir ? opts->spool_dir : getenv("TMPDIR");
	if (!spool_dir || !spool_dir[0])
		spool_dir = "/var/tmp";
	if (r >= 0)
		r = sink_open(k, host_port, spool_dir, err);
	if (r >= 0)
		r = send_connect(k, false, &offset, err->msg, sizeof(err->msg));
	if (r >= 0 && offset != 0)
		r = -EPROTO, snprintf(err->msg, sizeof(err->msg),
				      "the receiver at %s answered a new session with offset %llu",
				      host_port, (unsigned long long)offset);
	if (r >= 0) {
		r = -pthread_create(&k->thread, NULL, send_thread_main, k);
		k->thread_started = r == 0;
	}
	if (r < 0) {
		sink_free(&k->base);
		return r;
	}
	*ret = &k->base;
	return 0;
}

int stream_sink_new(const char *host_port, const char *key_file, const struct stream_opts *opts,
		    struct img_sink **ret, struct stream_error *err)
{
	struct stream_key key;
	int r = stream_key_load(key_file, &key, err->msg, sizeof(err->msg));

	if (r < 0)
		return r;
	r = stream_sink_new_key(host_port, &key, opts, ret, err);
	stream_key_wipe(&key);
	return r;
}

void stream_sink_abort(struct img_sink *s, const char *why)
{
	struct ssink *k = (struct ssink *)s;

	pthread_mutex_lock(&k->lock);
	sink_fail_locked(k, -ECANCELED, "%s", why);
	pthread_mutex_unlock(&k->lock);
	eventfd_write(k->wake_fd, 1);
}

void stream_sink_counters(struct img_sink *s, struct stream_counters *ret)
{
	struct ssink *k = (struct ssink *)s;

	pthread_mutex_lock(&k->lock);
	*ret = k->c;
	ret->accepted = k->accepted;
	ret->acked = k->acked;
	ret->complete = k->complete;
	pthread_mutex_unlock(&k->lock);
	ret->elapsed_ns = sys_now_ns() - k->start_ns;
}

int stream_sink_fail_fd(struct img_sink *s)
{
	return ((struct ssink *)s)->fail_fd;
}

int stream_sink_incoming(struct img_sink *s, char *uri, size_t len)
{
	struct ssink *k = (struct ssink *)s;
	int r;

	pthread_mutex_lock(&k->lock);
	while (!k->incoming[0] && !k->error && !k->complete)
		pthread_cond_wait(&k->cond, &k->lock);
	r = k->incoming[0] ? 0 : k->error ? k->error : -EPROTO;
	if (r >= 0)
		snprintf(uri, len, "%s", k->incoming);
	pthread_mutex_unlock(&k->lock);
	return r;
}

void stream_error_append(char *msg, size_t len, const struct stream_error *se)
{
	size_t n = strlen(msg), m = strlen(se->msg);
	char *p = msg + n;

	if (!m || strstr(msg, se->msg) || n + 2 + m >= len)
		return;
	if (n)
		p = mempcpy(p, ": ", 2);
	memcpy(p, se->msg, m + 1);
}

void stream_sink_error(struct img_sink *s, struct stream_error *ret)
{
	struct ssink *k = (struct ssink *)s;

	pthread_mutex_lock(&k->lock);
	*ret = k->err;
	pthread_mutex_unlock(&k->lock);
}
