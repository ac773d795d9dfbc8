/* SPDX-License-Identifier: MIT */
/*
 * Migration jobs: one thread each, running migrate_source() (README "Live migration") on the
 * QMP connection the client passed, its RAM streamed with the daemon's key to a migration
 * receiver. A cancel before the switch-over leaves the guest running here (migrate_source()
 * backs out on the stop fd); each pre-copy round is announced with MIGRATION_ROUND.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "qmp.h"
#include "service/job-migrate.h"

/*
 * A dropped stream is resumed for this long. Shorter than a snapshot's 60 s: while the source
 * waits at pre-switchover for a receiver that went away, the guest is paused that long.
 */
#define SVC_MIG_RESUME_S 10

static struct svc_mig_job *mig(const struct svc_job *j)
{
	return container_of(j, struct svc_mig_job, job);
}

static struct stream_counters mig_stream(struct svc_mig_job *m)
{
	struct stream_counters c;

	pthread_mutex_lock(&m->job.lock);
	if (m->sink)
		stream_sink_counters(m->sink, &m->stream);
	c = m->stream;
	pthread_mutex_unlock(&m->job.lock);
	return c;
}

static void mig_progress_cb(void *ctx, uint64_t done, uint64_t total)
{
	struct svc_mig_job *m = ctx;

	__atomic_store_n(&m->total, total, __ATOMIC_RELAXED);
	__atomic_store_n(&m->done, done, __ATOMIC_RELAXED);
}

/* The job's thread, as each pre-copy round ends: MIGRATION_ROUND, sent by the main thread. */
static void mig_round_cb(void *ctx, unsigned index, const struct snap_round *rd)
{
	struct svc_mig_job *m = ctx;
	struct svc_job *j = &m->job;
	json_t *data =
	    json_pack("{s:I, s:i, s:I, s:I}", "id", (json_int_t)j->id, "round", (int)index, "bytes",
		      (json_int_t)rd->bytes, "ns", (json_int_t)rd->ns);

	pthread_mutex_lock(&j->lock);
	m->rounds = index + 1;
	if (!m->pending)
		m->pending = json_array();
	json_array_append_new(m->pending,
			      json_pack("{s:s, s:o*}", "event", "MIGRATION_ROUND", "data", data));
	pthread_mutex_unlock(&j->lock);
	eventfd_write(j->svc->jobsfd, 1);
}

/* The stream to the migration receiver (connected here, off the loop). */
static int mig_sink(struct svc_mig_job *m, struct img_sink **ret)
{
	struct svc_job *j = &m->job;
	struct stream_opts so = {.migrate = true, .resume_timeout_s = SVC_MIG_RESUME_S};
	struct stream_error se = {{0}};
	int r = stream_sink_new_key(m->to, &j->svc->key, &so, ret, &se);

	if (r < 0) {
		snprintf(j->err.msg, sizeof(j->err.msg),
			 "cannot stream to the migration receiver at %.64s: %.400s", m->to,
			 se.msg[0] ? se.msg : strerror(-r));
		return r;
	}
	pthread_mutex_lock(&j->lock);
	m->sink = *ret;
	pthread_mutex_unlock(&j->lock);
	return 0;
}

static void *mig_main(void *arg)
{
	struct svc_mig_job *m = arg;
	struct svc_job *j = &m->job;
	struct snap_opts o = {
	    .downtime_ms = m->downtime_ms,
	    .max_rounds = m->max_rounds,
	    .strict_downtime = m->strict_downtime,
	    .devuffd_fd = j->svc->devuffd,
	    .progress = mig_progress_cb,
	    .round = mig_round_cb,
	    .progress_ctx = m,
	    .cancel = &j->cancel,
	    .pidfd = j->pidfd,
	    .test_pause = j->svc->o.test_pause,
	};
	struct img_sink *sink = NULL;
	struct qmp *q = NULL;
	int r = svc_qmp_open(j, &m->qmp_fd, &q); /* QEMU is asked first, as uffsnapd --migrate */

	if (r >= 0)
		r = mig_sink(m, &sink);
	if (r >= 0)
		r = migrate_source(q, &o, j->stop_fd, sink, &m->mig, &m->stats, &j->err);
	if (sink)
		svc_stream_end(j, &m->sink, &m->stream, sink, r);
	qmp_close(q);
	j->result = r;
	svc_job_thread_done(j);
	return NULL;
}

static void mig_log_start(const struct svc_job *j)
{
	svc_log("job %" PRIu64 ": migration of the QEMU guest of pid %d for uid %u to the "
		"receiver at %s started",
		j->id, j->pid, j->owner, mig(j)->to);
}

static void mig_created(const struct svc_job *j, json_t *data)
{
	json_object_set_new(data, "pid", json_integer(j->pid));
	json_object_set_new(data, "qemu", json_string(mig(j)->qemu));
	json_object_set_new(data, "to", json_string(mig(j)->to));
}

static void mig_describe(struct svc_job *j, json_t *o)
{
	struct svc_mig_job *m = mig(j);
	struct stream_counters c = mig_stream(m);
	json_t *stats = NULL;
	unsigned rounds;

	pthread_mutex_lock(&j->lock);
	rounds = m->rounds;
	pthread_mutex_unlock(&j->lock);
	json_object_set_new(o, "pid", json_integer(j->pid));
	json_object_set_new(o, "qemu", json_string(m->qemu));
	json_object_set_new(o, "to", json_string(m->to));
	json_object_set_new(o, "output", json_pack("{s:s}", "to", m->to));
	json_object_set_new(o, "done", json_integer(__atomic_load_n(&m->done, __ATOMIC_RELAXED)));
	json_object_set_new(o, "total", json_integer(__atomic_load_n(&m->total, __ATOMIC_RELAXED)));
	json_object_set_new(o, "rounds", json_integer(rounds));
	json_object_set_new(o, "stream", svc_stream_json(&c));
	if (j->state == SVC_JOB_COMPLETED && snapshot_stats_to_json(&m->stats, &stats) >= 0)
		json_object_set_new(o, "stats", stats);
	/* the thread wrote it before it ended; pid 0: it never spoke to QEMU */
	if (j->state != SVC_JOB_RUNNING && m->mig.guest.pid)
		json_object_set_new(o, "migration", migrate_stats_json(&m->mig));
}

/* A cancel ends the waits for QEMU and the stream; migrate_source() then backs out. */
static void mig_stop(struct svc_job *j, int why)
{
	struct svc_mig_job *m = mig(j);

	eventfd_write(j->stop_fd, 1);
	pthread_mutex_lock(&j->lock);
	if (m->sink && why == -ECANCELED)
		stream_sink_abort(m->sink, "cancelled");
	pthread_mutex_unlock(&j->lock);
}

static void mig_poll(struct svc *svc, struct svc_job *j)
{
	svc_job_send_queued(svc, j, &mig(j)->pending);
}

/* JOB_PROGRESS when pages were copied or the receiver acknowledged more. */
static void mig_progress(struct svc *svc, struct svc_job *j)
{
	struct svc_mig_job *m = mig(j);
	uint64_t done = __atomic_load_n(&m->done, __ATOMIC_RELAXED);
	struct stream_counters c = mig_stream(m);

	if (done == m->sent_done && c.acked == m->sent_acked)
		return;
	m->sent_done = done;
	m->sent_acked = c.acked;
	svc_job_event(svc, j, "JOB_PROGRESS",
		      json_pack("{s:I, s:I, s:I, s:I, s:I}", "id", (json_int_t)j->id, "done",
				(json_int_t)done, "total",
				(json_int_t)__atomic_load_n(&m->total, __ATOMIC_RELAXED), "sent",
				(json_int_t)c.sent, "acked", (json_int_t)c.acked));
}

static const char *mig_cancelled(const struct svc_job *j);

static void mig_ended(struct svc *svc, struct svc_job *j, char *what, size_t len)
{
	struct svc_mig_job *m = mig(j);

	/* the last rounds before the job's end */
	svc_job_send_queued(svc, j, &m->pending);
	/* a job whose thread never took it */
	if (m->qmp_fd >= 0)
		close(m->qmp_fd);
	m->qmp_fd = -EBADF;
	/* The engine's "cancelled; the image is incomplete" is a snapshot's: say the guest's. */
	if (__atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE) == -ECANCELED)
		snprintf(j->err.msg, sizeof(j->err.msg), "%s", mig_cancelled(j));
	snprintf(what, len, "migration of pid %d", j->pid);
}

static void mig_completed(struct svc *svc, struct svc_job *j, double secs)
{
	struct svc_mig_job *m = mig(j);
	json_t *stats = NULL;

	svc_log("job %" PRIu64 ": the QEMU guest of pid %d migrated to %s in %.3f s: %u rounds, "
		"%" PRIu64 " bytes, stopped to completed %.3f ms",
		j->id, j->pid, m->to, secs, m->stats.rounds, m->stats.bytes,
		m->mig.done_realtime_ns && m->mig.stop_realtime_ns
		    ? (m->mig.done_realtime_ns - m->mig.stop_realtime_ns) / 1e6
		    : 0.0);
	snapshot_stats_to_json(&m->stats, &stats);
	svc_job_event(svc, j, "JOB_COMPLETED",
		      json_pack("{s:I, s:o*, s:o*, s:o*}", "id", (json_int_t)j->id, "stats", stats,
				"migration", migrate_stats_json(&m->mig), "stream",
				svc_stream_json(&m->stream)));
}

/* JOB_FAILED and JOB_CANCELLED say how far it got: "switched" tells whose the guest is. */
static void mig_outcome(const struct svc_job *j, json_t *data)
{
	const struct svc_mig_job *m = mig(j);

	if (m->mig.guest.pid)
		json_object_set_new(data, "migration", migrate_stats_json(&m->mig));
	json_object_set_new(data, "stream", svc_stream_json(&m->stream));
}

static const char *mig_cancelled(const struct svc_job *j)
{
	return mig(j)->mig.switched ? "cancelled after the switch-over began: the guest is the "
				      "destination's; the source stays paused"
				    : "cancelled: the migration was cancelled and the guest runs "
				      "here as before";
}

static void mig_free(struct svc_job *j)
{
	struct svc_mig_job *m = mig(j);

	if (m->qmp_fd >= 0)
		close(m->qmp_fd);
	json_decref(m->pending);
	free(m->qemu);
	free(m->to);
}

static const struct svc_job_ops mig_ops = {
    .name = "migrate",
    .size = sizeof(struct svc_mig_job),
    .main = mig_main,
    .log_start = mig_log_start,
    .created = mig_created,
    .describe = mig_describe,
    .stop = mig_stop,
    .poll = mig_poll,
    .progress = mig_progress,
    .ended = mig_ended,
    .completed = mig_completed,
    .outcome = mig_outcome,
    .cancelled = mig_cancelled,
    .free = mig_free,
};

struct svc_mig_job *svc_mig_job_new(uid_t owner)
{
	struct svc_job *j = svc_job_new(&mig_ops, owner);
	struct svc_mig_job *m;

	if (!j)
		return NULL;
	m = mig(j);
	m->qmp_fd = -EBADF;
	j->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->stop_fd < 0) {
		svc_job_free(j);
		return NULL;
	}
	return m;
}
