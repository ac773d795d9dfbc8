/* SPDX-License-Identifier: MIT */
/*
 * Snapshot jobs: one thread each, running the engine into a file, an fd or a stream to a
 * receiver, on a process or on a QEMU guest (guest_snapshot() over the QMP connection the
 * client passed). The thread touches only its job's atomics (progress) and result fields, and
 * the sink under the job's lock; the generic job code (job.c) does the rest.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "qmp.h"
#include "service/job-snapshot.h"
#include "service/output.h"

/*
 * QEMU sends its QMP greeting as it accepts a connection: the client passes the socket before
 * reading anything from it (proto/CONTROL.md). No greeting by then: the client read it, or
 * QEMU serves another QMP client (one at a time per socket) and has not accepted this one.
 */
#define SVC_QMP_GREETING_MS 10000
/* Each later wait for QEMU's answer (as uffsnapd --qemu). */
#define SVC_QMP_TIMEOUT_MS 30000

static struct svc_snap_job *snap(const struct svc_job *j)
{
	return container_of(j, struct svc_snap_job, job);
}

json_t *svc_stream_json(const struct stream_counters *c)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "accepted",
			 (json_int_t)c->accepted, "sent", (json_int_t)c->sent, "resent",
			 (json_int_t)c->resent, "acked", (json_int_t)c->acked, "spooled",
			 (json_int_t)c->spooled, "mem_used", (json_int_t)c->mem_used, "mem_peak",
			 (json_int_t)c->mem_peak, "reconnects", (json_int_t)c->reconnects,
			 "elapsed_ns", (json_int_t)c->elapsed_ns, "complete", c->complete);
}

/* The stream's counters now (from the sink while the job thread has it). */
static struct stream_counters snap_stream(struct svc_snap_job *s)
{
	struct stream_counters c;

	pthread_mutex_lock(&s->job.lock);
	if (s->sink)
		stream_sink_counters(s->sink, &s->stream);
	c = s->stream;
	pthread_mutex_unlock(&s->job.lock);
	return c;
}

static json_t *output_json(const struct svc_snap_job *s)
{
	if (s->to)
		return json_pack("{s:s}", "to", s->to);
	if (s->file)
		return json_pack("{s:s}", "file", s->file);
	return json_pack("{s:s}", "fd", s->fdname);
}

static void snap_describe(struct svc_job *j, json_t *o)
{
	struct svc_snap_job *s = snap(j);
	json_t *forks = json_array(), *stats = NULL;

	json_object_set_new(o, "pid", json_integer(j->pid));
	json_object_set_new(o, "done", json_integer(__atomic_load_n(&s->done, __ATOMIC_RELAXED)));
	json_object_set_new(o, "total", json_integer(__atomic_load_n(&s->total, __ATOMIC_RELAXED)));
	for (unsigned i = 0; forks && i < j->nforks; i++)
		json_array_append_new(forks, json_integer(j->forks[i]));
	json_object_set_new(o, "forks", forks);
	json_object_set_new(o, "output", output_json(s));
	if (s->to) {
		struct stream_counters c = snap_stream(s);

		json_object_set_new(o, "stream", svc_stream_json(&c));
	}
	if (j->state == SVC_JOB_COMPLETED && snapshot_stats_to_json(&s->stats, &stats) >= 0)
		json_object_set_new(o, "stats", stats);
	if (s->chain.prefix)
		json_object_set_new(o, "chain", svc_chain_json(j, &s->chain));
	if (s->qemu)
		json_object_set_new(o, "qemu", json_string(s->qemu));
	/* the thread wrote it before it ended; pid 0: it never spoke to QEMU */
	if (s->qemu && j->state != SVC_JOB_RUNNING && s->guest.pid)
		json_object_set_new(o, "guest", guest_stats_json(&s->guest));
}

static void snap_created(const struct svc_job *j, json_t *data)
{
	json_object_set_new(data, "pid", json_integer(j->pid));
	if (snap(j)->qemu)
		json_object_set_new(data, "qemu", json_string(snap(j)->qemu));
}

static void snap_progress_cb(void *ctx, uint64_t done, uint64_t total)
{
	struct svc_snap_job *s = ctx;

	__atomic_store_n(&s->total, total, __ATOMIC_RELAXED);
	__atomic_store_n(&s->done, done, __ATOMIC_RELAXED);
}

/*
 * The image's way out: the fd, or a stream to the receiver (connected here, off the loop)
 * keeping up to stream_bytes in memory (0: its default).
 */
static int snap_sink(struct svc_snap_job *s, uint64_t stream_bytes, struct img_sink **ret)
{
	struct svc_job *j = &s->job;
	struct stream_error se = {{0}};
	struct stream_opts so = {.mem_limit = stream_bytes};
	int r;

	if (!s->to) {
		r = img_sink_fd_new(s->out_fd, ret);
		if (r >= 0)
			img_sink_fd_set_cancel(*ret, j->stop_fd);
		if (r < 0)
			snprintf(j->err.msg, sizeof(j->err.msg), "cannot set up the output: %s",
				 strerror(-r));
		return r;
	}
	r = stream_sink_new_key(s->to, &j->svc->key, &so, ret, &se);
	if (r < 0) {
		snprintf(j->err.msg, sizeof(j->err.msg), "cannot stream to %.64s: %.400s", s->to,
			 se.msg[0] ? se.msg : strerror(-r));
		return r;
	}
	pthread_mutex_lock(&j->lock);
	s->sink = *ret;
	pthread_mutex_unlock(&j->lock);
	return 0;
}

void svc_stream_end(struct svc_job *j, struct img_sink **shared, struct stream_counters *ret,
		    struct img_sink *sink, int r)
{
	struct stream_error se = {{0}};

	pthread_mutex_lock(&j->lock);
	stream_sink_counters(sink, ret);
	stream_sink_error(sink, &se);
	*shared = NULL;
	pthread_mutex_unlock(&j->lock);
	if (r < 0)
		stream_error_append(j->err.msg, sizeof(j->err.msg), &se);
	img_sink_free(sink);
}

static void snap_sink_free(struct svc_snap_job *s, struct img_sink *sink, int r)
{
	if (s->to && sink)
		svc_stream_end(&s->job, &s->sink, &s->stream, sink, r);
	else
		img_sink_free(sink);
}

int svc_qmp_open(struct svc_job *j, int *qmp_fd, struct qmp **ret)
{
	struct pollfd p[2] = {{.fd = *qmp_fd, .events = POLLIN},
			      {.fd = j->stop_fd, .events = POLLIN}};
	int fd = *qmp_fd, r;

	*qmp_fd = -EBADF; /* qmp_open_fd() takes it, also on failure */
	do
		r = poll(p, 2, SVC_QMP_GREETING_MS);
	while (r < 0 && errno == EINTR);
	if (r > 0 && p[1].revents)
		r = -ECANCELED;
	else if (r == 0)
		r = -EBUSY;
	if (r < 0) {
		close(fd);
		if (r == -EBUSY)
			snprintf(
			    j->err.msg, sizeof(j->err.msg),
			    "no QMP greeting on the socket passed as 'qemu' within %d s: pass "
			    "a socket just connected to QEMU's QMP socket, before reading from "
			    "it (or QEMU is serving another QMP client: it serves one at a time)",
			    SVC_QMP_GREETING_MS / 1000);
		return r;
	}
	r = qmp_open_fd(fd, SVC_QMP_TIMEOUT_MS, ret, j->err.msg, sizeof(j->err.msg));
	if (r >= 0 && qmp_peer_pid(*ret) != j->pid) { /* SO_PEERCRED cannot change: paranoia */
		qmp_close(*ret);
		r = -EPROTO;
		snprintf(j->err.msg, sizeof(j->err.msg), "the QMP socket's peer changed");
	}
	return r;
}

/* A guest: its RAM through the engine, its device state through QMP (guest_snapshot()). */
static int snap_guest(struct svc_snap_job *s, const struct snap_opts *o, struct img_sink *sink)
{
	struct svc_job *j = &s->job;
	struct qmp *q = NULL;
	int r = svc_qmp_open(j, &s->qmp_fd, &q);

	if (r >= 0)
		r = guest_snapshot(q, o, j->stop_fd, sink, &s->guest, &s->stats, &j->err);
	qmp_close(q);
	return r;
}

static void *snap_main(void *arg)
{
	struct svc_snap_job *s = arg;
	struct svc_job *j = &s->job;
	uint64_t stream_bytes = 0;
	struct snap_opts o = {
	    .strict = s->strict,
	    .window_pages = s->window,
	    .copy_threads = s->copy_threads,
	    .precopy = s->precopy,
	    .downtime_ms = s->downtime_ms,
	    .max_rounds = s->max_rounds,
	    .strict_downtime = s->strict_downtime,
	    .devuffd_fd = j->svc->devuffd,
	    .progress = snap_progress_cb,
	    .progress_ctx = s,
	    .cancel = &j->cancel,
	    .pidfd = j->pidfd,
	    .test_pause = j->svc->o.test_pause,
	};
	struct img_sink *sink = NULL;
	int r;

	/* mem_limit bounds the fault queue; with to, the queue and the stream together */
	if (s->to)
		stream_snap_mem_split(s->mem_limit, &stream_bytes, &o.fault_queue_bytes);
	else
		o.fault_queue_bytes = s->mem_limit;
	if (s->chain.prefix) { /* its own file per image */
		j->result = svc_chain_run(j, &s->chain, &o, &s->stats);
		svc_job_thread_done(j);
		return NULL;
	}
	r = snap_sink(s, stream_bytes, &sink);
	if (r >= 0 && s->qemu)
		r = snap_guest(s, &o, sink);
	else if (r >= 0) /* it sees a cancel that came while the stream connected */
		r = snapshot_take(j->pid, &o, sink, &s->stats, &j->err);
	snap_sink_free(s, sink, r);
	if (r >= 0 && s->file)
		r = svc_output_finish(j, s->out_fd, s->file);
	j->result = r;
	svc_job_thread_done(j);
	return NULL;
}

static void snap_log_start(const struct svc_job *j)
{
	const struct svc_snap_job *s = snap(j);
	const char *what = s->qemu ? "the QEMU guest of " : "";

	if (s->chain.prefix)
		svc_log("job %" PRIu64 ": chain of pid %d for uid %u to files '%s-NNNN.img' every "
			"%u s (%u images%s) started",
			j->id, j->pid, j->owner, s->chain.prefix, s->chain.every_s, s->chain.count,
			s->chain.count ? "" : ": until cancelled");
	else if (s->to)
		svc_log("job %" PRIu64 ": snapshot of %spid %d for uid %u to the receiver at %s "
			"started",
			j->id, what, j->pid, j->owner, s->to);
	else
		svc_log("job %" PRIu64 ": snapshot of %spid %d for uid %u to %s '%s' started",
			j->id, what, j->pid, j->owner, s->file ? "file" : "fd",
			s->file ? s->file : s->fdname);
}

/* An output that is stuck or a stream waiting for its receiver gives up too; not when the
 * target merely went away (-ESRCH): what was saved before still makes a whole image. */
static void snap_stop(struct svc_job *j, int why)
{
	struct svc_snap_job *s = snap(j);

	if (why == -ECANCELED || s->chain.prefix) /* a chain waiting for its next image too */
		eventfd_write(j->stop_fd, 1);
	pthread_mutex_lock(&j->lock);
	if (s->sink && why == -ECANCELED)
		stream_sink_abort(s->sink, "cancelled");
	pthread_mutex_unlock(&j->lock);
}

/* JOB_PROGRESS when pages were saved or, streaming, the receiver acknowledged more. */
static void snap_progress(struct svc *svc, struct svc_job *j)
{
	struct svc_snap_job *s = snap(j);
	uint64_t done = __atomic_load_n(&s->done, __ATOMIC_RELAXED);
	struct stream_counters c = {0};
	json_t *data;
	unsigned image = __atomic_load_n(&s->chain.image, __ATOMIC_RELAXED);

	if (s->to)
		c = snap_stream(s);
	if (done == s->sent_done && c.acked == s->sent_acked && image == s->sent_image)
		return;
	s->sent_done = done;
	s->sent_acked = c.acked;
	s->sent_image = image;
	data = json_pack("{s:I, s:I, s:I}", "id", (json_int_t)j->id, "done", (json_int_t)done,
			 "total", (json_int_t)__atomic_load_n(&s->total, __ATOMIC_RELAXED));
	if (data && s->chain.prefix)
		json_object_set_new(data, "image", json_integer(image));
	if (data && s->to) {
		json_object_set_new(data, "sent", json_integer((json_int_t)c.sent));
		json_object_set_new(data, "acked", json_integer((json_int_t)c.acked));
	}
	svc_job_event(svc, j, "JOB_PROGRESS", data);
}

static void snap_ended(struct svc *svc, struct svc_job *j, char *what, size_t len)
{
	struct svc_snap_job *s = snap(j);

	if (s->chain.prefix) /* the last images' events before the job's end */
		svc_job_send_queued(svc, j, &s->chain.pending);
	if (s->out_fd >= 0)
		close(s->out_fd);
	s->out_fd = -EBADF;
	if (s->qmp_fd >= 0) /* a job whose thread never took it */
		close(s->qmp_fd);
	s->qmp_fd = -EBADF;
	snprintf(what, len, "%spid %d", s->qemu ? "QEMU guest of " : "", j->pid);
}

static void snap_completed(struct svc *svc, struct svc_job *j, double secs)
{
	struct svc_snap_job *s = snap(j);
	json_t *stats = NULL, *data;

	if (s->qemu)
		svc_log("job %" PRIu64 ": QEMU guest of pid %d: downtime %.3f ms, device state "
			"%" PRIu64 " bytes in %.3f ms",
			j->id, j->pid, s->guest.downtime_ns / 1e6, s->guest.devstate_bytes,
			s->guest.devstate_ns / 1e6);
	if (s->chain.prefix)
		svc_log("job %" PRIu64 ": chain of pid %d complete: %u images, the last '%s'",
			j->id, j->pid, s->chain.images, s->chain.last ? s->chain.last : "");
	svc_log("job %" PRIu64 ": pid %d complete in %.3f s, %" PRIu64 " bytes, held %.3f ms%s%s",
		j->id, j->pid, secs, s->stats.bytes, s->stats.held_ns / 1e6,
		s->to ? ", verified by the receiver at " : "", s->to ? s->to : "");
	snapshot_stats_to_json(&s->stats, &stats);
	data = json_pack("{s:I, s:o*}", "id", (json_int_t)j->id, "stats", stats);
	if (data && s->to)
		json_object_set_new(data, "stream", svc_stream_json(&s->stream));
	if (data && s->qemu)
		json_object_set_new(data, "guest", guest_stats_json(&s->guest));
	if (data && s->chain.prefix)
		json_object_set_new(data, "images", json_integer(s->chain.images));
	svc_job_event(svc, j, "JOB_COMPLETED", data);
}

static bool snap_writes(const struct svc_job *j, const char *name)
{
	const struct svc_snap_job *s = snap(j);

	if (s->chain.prefix)
		return svc_chain_writes(&s->chain, name);
	return s->file && !strcmp(s->file, name);
}

/* Main thread, on every jobs wake-up: a chain's images named meanwhile. */
static void snap_poll(struct svc *svc, struct svc_job *j)
{
	if (snap(j)->chain.prefix)
		svc_job_send_queued(svc, j, &snap(j)->chain.pending);
}

static const char *snap_cancelled(const struct svc_job *j)
{
	return snap(j)->chain.prefix ? "cancelled; the chain's complete images stay, the image "
				       "in progress was not written"
				     : NULL;
}

static void snap_free(struct svc_job *j)
{
	struct svc_snap_job *s = snap(j);

	if (s->out_fd >= 0)
		close(s->out_fd);
	if (s->qmp_fd >= 0)
		close(s->qmp_fd);
	free(s->qemu);
	free(s->file);
	free(s->fdname);
	free(s->to);
	svc_chain_free(&s->chain);
}

static const struct svc_job_ops snap_ops = {
    .name = "snapshot",
    .size = sizeof(struct svc_snap_job),
    .main = snap_main,
    .log_start = snap_log_start,
    .created = snap_created,
    .describe = snap_describe,
    .stop = snap_stop,
    .poll = snap_poll,
    .progress = snap_progress,
    .ended = snap_ended,
    .completed = snap_completed,
    .writes = snap_writes,
    .cancelled = snap_cancelled,
    .free = snap_free,
};

struct svc_snap_job *svc_snap_job_new(uid_t owner)
{
	struct svc_job *j = svc_job_new(&snap_ops, owner);
	struct svc_snap_job *s;

	if (!j)
		return NULL;
	s = snap(j);
	s->out_fd = s->qmp_fd = -EBADF;
	/* The output watches it: a pipe the client stopped reading must not keep a cancelled
	 * job (or the daemon's stop) waiting. */
	j->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->stop_fd < 0) {
		svc_job_free(j);
		return NULL;
	}
	return s;
}

int svc_snap_job_chain(struct svc_snap_job *s, const char *prefix, uint32_t every_s, uint32_t count)
{
	s->chain.prefix = strdup(prefix);
	s->chain.every_s = every_s;
	s->chain.count = count;
	s->precopy = true;
	return s->chain.prefix ? 0 : -ENOMEM;
}
