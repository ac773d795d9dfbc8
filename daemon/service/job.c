/* SPDX-License-Identifier: MIT */
/*
 * Snapshot jobs: one thread each, running the engine. The thread touches only its job's
 * atomics (progress, finished) and its result fields; the main thread learns of its end
 * through the shared eventfd, joins it, and tells the clients.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "sys/proc-events.h"
#include "service/service.h"
#include "uffsnap/image.h"

static const char *const state_names[] = {
    [SVC_JOB_RUNNING] = "running",
    [SVC_JOB_COMPLETED] = "completed",
    [SVC_JOB_FAILED] = "failed",
    [SVC_JOB_CANCELLED] = "cancelled",
};

bool svc_job_visible(const struct svc_job *j, const struct svc_peer *p)
{
	return p->uid == 0 || p->uid == j->owner;
}

void svc_job_event(struct svc *svc, const struct svc_job *j, const char *event, json_t *data)
{
	char *line = ctl_line_event(event, data, svc_now_us());

	for (struct svc_client *c = svc->clients; c; c = c->next)
		if (!c->dead && !c->close_when_flushed && svc_job_visible(j, &c->peer))
			svc_client_send(c, line ? strdup(line) : NULL);
	free(line);
}

struct svc_job *svc_job_find(struct svc *svc, uint64_t id)
{
	for (struct svc_job *j = svc->jobs; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

unsigned svc_jobs_of(const struct svc *svc, uid_t uid)
{
	unsigned n = 0;

	for (const struct svc_job *j = svc->jobs; j; j = j->next)
		n += j->state == SVC_JOB_RUNNING && j->owner == uid;
	return n;
}

struct svc_job *svc_job_running_on(struct svc *svc, pid_t pid)
{
	for (struct svc_job *j = svc->jobs; j; j = j->next)
		if (j->state == SVC_JOB_RUNNING && j->pid == pid)
			return j;
	return NULL;
}

/* The error class of a failed job: the target went away, or what the engine's -errno says. */
static const char *job_error_class(const struct svc_job *j)
{
	if (j->gone)
		return CTL_E_TARGET;
	switch (j->result) {
	case -ESRCH:
	case -EPERM:
	case -EACCES:
	case -EDEADLK:
	case -ECHILD:
	case -EBUSY:
		return CTL_E_TARGET;
	default:
		return CTL_E_GENERIC;
	}
}

static json_t *job_error_json(const struct svc_job *j)
{
	if (j->state == SVC_JOB_CANCELLED)
		return json_pack("{s:s, s:s}", "class", CTL_E_GENERIC, "desc",
				 "cancelled; the image is incomplete");
	return json_pack("{s:s, s:s}", "class", job_error_class(j), "desc",
			 j->err.msg[0] ? j->err.msg : strerror(-j->result));
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
static struct stream_counters job_stream(struct svc_job *j)
{
	struct stream_counters c;

	pthread_mutex_lock(&j->lock);
	if (j->sink)
		stream_sink_counters(j->sink, &j->stream);
	c = j->stream;
	pthread_mutex_unlock(&j->lock);
	return c;
}

static json_t *job_output_json(const struct svc_job *j)
{
	if (j->to)
		return json_pack("{s:s}", "to", j->to);
	if (j->file)
		return json_pack("{s:s}", "file", j->file);
	return json_pack("{s:s}", "fd", j->fdname);
}

json_t *svc_job_json(struct svc_job *j)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:I, s:{s:I, s:I}}", "id", (json_int_t)j->id, "type",
			      j->kind == SVC_JOB_RECEIVE ? "receive" : "snapshot", "state",
			      state_names[j->state], "owner", (json_int_t)j->owner, "created",
			      "seconds", (json_int_t)(j->created_us / 1000000), "microseconds",
			      (json_int_t)(j->created_us % 1000000));
	json_t *s = NULL, *forks = json_array();

	if (!o || !forks) {
		json_decref(forks);
		return json_decref(o), NULL;
	}
	if (j->kind == SVC_JOB_RECEIVE) {
		json_decref(forks);
		svc_recv_job_json(j, o);
	} else {
		json_object_set_new(o, "pid", json_integer(j->pid));
		json_object_set_new(o, "done",
				    json_integer(__atomic_load_n(&j->done, __ATOMIC_RELAXED)));
		json_object_set_new(o, "total",
				    json_integer(__atomic_load_n(&j->total, __ATOMIC_RELAXED)));
		for (unsigned i = 0; i < j->nforks; i++)
			json_array_append_new(forks, json_integer(j->forks[i]));
		json_object_set_new(o, "forks", forks);
		json_object_set_new(o, "output", job_output_json(j));
	}
	if (j->to) {
		struct stream_counters c = job_stream(j);

		json_object_set_new(o, "stream", svc_stream_json(&c));
	}
	if (j->state == SVC_JOB_COMPLETED && snapshot_stats_to_json(&j->stats, &s) >= 0)
		json_object_set_new(o, "stats", s);
	if (j->state == SVC_JOB_FAILED || j->state == SVC_JOB_CANCELLED)
		json_object_set_new(o, "error", job_error_json(j));
	return o;
}

static void job_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct svc_job *j = ctx;

	__atomic_store_n(&j->total, total, __ATOMIC_RELAXED);
	__atomic_store_n(&j->done, done, __ATOMIC_RELAXED);
}

/* The image's way out: the fd, or a stream to the receiver (connected here, off the loop). */
static int job_sink(struct svc_job *j, struct img_sink **ret)
{
	struct stream_error se = {{0}};
	int r;

	if (!j->to) {
		r = img_sink_fd_new(j->out_fd, ret);
		if (r >= 0)
			img_sink_fd_set_cancel(*ret, j->stop_fd);
		if (r < 0)
			snprintf(j->err.msg, sizeof(j->err.msg), "cannot set up the output: %s",
				 strerror(-r));
		return r;
	}
	r = stream_sink_new_key(j->to, &j->svc->key, NULL, ret, &se);
	if (r < 0) {
		snprintf(j->err.msg, sizeof(j->err.msg), "cannot stream to %.64s: %.400s", j->to,
			 se.msg[0] ? se.msg : strerror(-r));
		return r;
	}
	pthread_mutex_lock(&j->lock);
	j->sink = *ret;
	pthread_mutex_unlock(&j->lock);
	return 0;
}

/* Keeps the stream's last counters and says what the network did, then frees the sink. */
static void job_sink_free(struct svc_job *j, struct img_sink *sink, int r)
{
	struct stream_error se = {{0}};
	size_t n = strlen(j->err.msg);

	if (j->to && sink) {
		pthread_mutex_lock(&j->lock);
		stream_sink_counters(sink, &j->stream);
		stream_sink_error(sink, &se);
		j->sink = NULL;
		pthread_mutex_unlock(&j->lock);
		if (r < 0 && se.msg[0] && !strstr(j->err.msg, se.msg) &&
		    n + 2 + strlen(se.msg) < sizeof(j->err.msg))
			snprintf(j->err.msg + n, sizeof(j->err.msg) - n, "%s%s", n ? ": " : "",
				 se.msg);
	}
	img_sink_free(sink);
}

static void *job_main(void *arg)
{
	struct svc_job *j = arg;
	struct snap_opts o = {
	    .strict = j->strict,
	    .window_pages = j->window,
	    .devuffd_fd = j->svc->devuffd,
	    .progress = job_progress,
	    .progress_ctx = j,
	    .cancel = &j->cancel,
	    .pidfd = j->pidfd,
	    .test_pause = j->svc->o.test_pause,
	};
	struct img_sink *sink = NULL;
	int r = job_sink(j, &sink);

	if (r >= 0) /* it sees a cancel that came while the stream connected */
		r = snapshot_take(j->pid, &o, sink, &j->stats, &j->err);
	job_sink_free(j, sink, r);
	if (r >= 0 && j->file)
		r = svc_output_finish(j);
	j->result = r;
	j->end_ns = snap_now_ns();
	__atomic_store_n(&j->finished, 1, __ATOMIC_RELEASE);
	eventfd_write(j->svc->jobsfd, 1);
	return NULL;
}

struct svc_job *svc_job_new(enum svc_job_kind kind, uid_t owner)
{
	struct svc_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->kind = kind;
	j->owner = owner;
	j->out_fd = j->listen_fd = j->dir_fd = j->stop_fd = j->pidfd = -EBADF;
	/* A snapshot's output watches it: a pipe the client stopped reading must not keep a
	 * cancelled job (or the daemon's stop) waiting. A receive job makes its own. */
	if (kind != SVC_JOB_RECEIVE)
		j->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (kind != SVC_JOB_RECEIVE && j->stop_fd < 0) {
		free(j);
		return NULL;
	}
	pthread_mutex_init(&j->lock, NULL);
	return j;
}

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

void svc_job_free(struct svc_job *j)
{
	if (!j)
		return;
	close_fd(j->out_fd);
	close_fd(j->pidfd);
	close_fd(j->listen_fd);
	close_fd(j->dir_fd);
	close_fd(j->stop_fd);
	json_decref(j->pending);
	pthread_mutex_destroy(&j->lock);
	free(j->file);
	free(j->fdname);
	free(j->to);
	free(j->listen);
	free(j);
}

static void job_log_start(const struct svc_job *j)
{
	if (j->kind == SVC_JOB_RECEIVE)
		svc_log("job %" PRIu64 ": receiving on %s into %s/" SVC_RECV_DIR " for uid %u",
			j->id, j->listen, j->svc->o.snapdir, j->owner);
	else if (j->to)
		svc_log("job %" PRIu64 ": snapshot of pid %d for uid %u to the receiver at %s "
			"started",
			j->id, j->pid, j->owner, j->to);
	else
		svc_log("job %" PRIu64 ": snapshot of pid %d for uid %u to %s '%s' started", j->id,
			j->pid, j->owner, j->file ? "file" : "fd", j->file ? j->file : j->fdname);
}

int svc_job_start(struct svc *svc, struct svc_job *j)
{
	int r;

	j->svc = svc;
	j->id = ++svc->next_job;
	j->created_us = svc_now_us();
	j->start_ns = snap_now_ns();
	r = -pthread_create(&j->thread, NULL,
			    j->kind == SVC_JOB_RECEIVE ? svc_recv_job_main : job_main, j);
	if (r < 0) {
		svc_job_free(j);
		return r;
	}
	j->started = true;
	j->next = svc->jobs;
	svc->jobs = j;
	svc->running++;
	job_log_start(j);
	svc_update_timer(svc);
	return 0;
}

/* Drops the oldest finished jobs beyond SVC_HISTORY. */
static void jobs_trim(struct svc *svc)
{
	unsigned kept = 0;

	for (struct svc_job **pj = &svc->jobs; *pj;) {
		struct svc_job *j = *pj;

		if (j->state != SVC_JOB_RUNNING && ++kept > SVC_HISTORY) {
			*pj = j->next;
			svc_job_free(j);
			continue;
		}
		pj = &j->next;
	}
}

/*
 * The engine says what failed in its terms ("cannot copy memory of pid N: No such process");
 * when the target went away, say that first. Process events tell exit from exec; without
 * them (or before they arrive), a target that no longer exists has exited.
 */
static void job_explain_gone(struct svc_job *j)
{
	char msg[sizeof(j->err.msg)];

	if (!j->gone && j->result == -ESRCH && kill(j->pid, 0) < 0 && errno == ESRCH)
		j->gone = "exited";
	if (!j->gone || strstr(j->err.msg, j->gone))
		return;
	snprintf(msg, sizeof(msg),
		 "pid %d %s during the snapshot; the image is incomplete (%.400s)", j->pid, j->gone,
		 j->err.msg[0] ? j->err.msg : strerror(-j->result));
	memcpy(j->err.msg, msg, sizeof(msg));
}

static void job_completed(struct svc *svc, struct svc_job *j, double secs)
{
	json_t *stats = NULL, *data;

	j->state = SVC_JOB_COMPLETED;
	svc_log("job %" PRIu64 ": pid %d complete in %.3f s, %" PRIu64 " bytes, held %.3f ms%s%s",
		j->id, j->pid, secs, j->stats.bytes, j->stats.held_ns / 1e6,
		j->to ? ", verified by the receiver at " : "", j->to ? j->to : "");
	snapshot_stats_to_json(&j->stats, &stats);
	data = json_pack("{s:I, s:o*}", "id", (json_int_t)j->id, "stats", stats);
	if (data && j->to)
		json_object_set_new(data, "stream", svc_stream_json(&j->stream));
	svc_job_event(svc, j, "JOB_COMPLETED", data);
}

static void job_finish(struct svc *svc, struct svc_job *j)
{
	int cancel;
	double secs;
	char what[32];

	pthread_join(j->thread, NULL);
	cancel = __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE);
	secs = (j->end_ns - j->start_ns) / 1e9;
	close_fd(j->out_fd);
	close_fd(j->pidfd);
	j->out_fd = j->pidfd = -EBADF;
	svc->running--;
	if (j->kind == SVC_JOB_RECEIVE) {
		svc_recv_job_events(svc, j);
		if (j->result >= 0) /* a receiver runs until it is stopped */
			j->result = -ECANCELED;
		snprintf(what, sizeof(what), "receiver");
	} else {
		snprintf(what, sizeof(what), "pid %d", j->pid);
	}
	if (j->result >= 0)
		return job_completed(svc, j, secs);
	j->state = cancel == -ECANCELED ? SVC_JOB_CANCELLED : SVC_JOB_FAILED;
	if (j->state == SVC_JOB_FAILED)
		job_explain_gone(j);
	svc_log("job %" PRIu64 ": %s %s after %.3f s: %s", j->id, what, state_names[j->state], secs,
		j->err.msg[0] ? j->err.msg : strerror(-j->result));
	if (j->state == SVC_JOB_CANCELLED)
		svc_job_event(svc, j, "JOB_CANCELLED", json_pack("{s:I}", "id", (json_int_t)j->id));
	else
		svc_job_event(svc, j, "JOB_FAILED",
			      json_pack("{s:I, s:s, s:s}", "id", (json_int_t)j->id, "class",
					job_error_class(j), "desc",
					j->err.msg[0] ? j->err.msg : strerror(-j->result)));
}

void svc_jobs_reap(struct svc *svc)
{
	eventfd_t v;

	eventfd_read(svc->jobsfd, &v);
	for (struct svc_job *j = svc->jobs; j; j = j->next) {
		if (j->state != SVC_JOB_RUNNING)
			continue;
		if (j->kind == SVC_JOB_RECEIVE)
			svc_recv_job_events(svc, j);
		if (__atomic_load_n(&j->finished, __ATOMIC_ACQUIRE))
			job_finish(svc, j);
	}
	jobs_trim(svc);
	svc_update_timer(svc);
}

/* JOB_PROGRESS when pages were saved or, streaming, the receiver acknowledged more. */
static void job_progress_event(struct svc *svc, struct svc_job *j)
{
	uint64_t done = __atomic_load_n(&j->done, __ATOMIC_RELAXED);
	struct stream_counters c = {0};
	json_t *data;

	if (j->to)
		c = job_stream(j);
	if (done == j->sent_done && c.acked == j->sent_acked)
		return;
	j->sent_done = done;
	j->sent_acked = c.acked;
	data = json_pack("{s:I, s:I, s:I}", "id", (json_int_t)j->id, "done", (json_int_t)done,
			 "total", (json_int_t)__atomic_load_n(&j->total, __ATOMIC_RELAXED));
	if (data && j->to) {
		json_object_set_new(data, "sent", json_integer((json_int_t)c.sent));
		json_object_set_new(data, "acked", json_integer((json_int_t)c.acked));
	}
	svc_job_event(svc, j, "JOB_PROGRESS", data);
}

void svc_jobs_progress(struct svc *svc)
{
	uint64_t expirations;

	if (read(svc->timerfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		return;
	for (struct svc_job *j = svc->jobs; j; j = j->next)
		if (j->state == SVC_JOB_RUNNING && j->kind == SVC_JOB_SNAPSHOT)
			job_progress_event(svc, j);
}

/* The progress timer runs only while jobs do. */
void svc_update_timer(struct svc *svc)
{
	struct itimerspec its = {0};
	bool want = svc->running > 0;

	if (want == svc->timer_armed)
		return;
	if (want) {
		its.it_value.tv_nsec = SVC_PROGRESS_NS;
		its.it_interval.tv_nsec = SVC_PROGRESS_NS;
	}
	if (timerfd_settime(svc->timerfd, 0, &its, NULL) == 0)
		svc->timer_armed = want;
}

bool svc_job_cancel(struct svc_job *j, int why)
{
	int expect = 0;

	if (!__atomic_compare_exchange_n(&j->cancel, &expect, why, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return false;
	if (j->kind == SVC_JOB_RECEIVE) {
		eventfd_write(j->stop_fd, 1);
		return true;
	}
	/* An output that is stuck or a stream waiting for its receiver gives up too; not when
	 * the target merely went away (-ESRCH): what was saved before still makes a whole image. */
	if (why == -ECANCELED)
		eventfd_write(j->stop_fd, 1);
	pthread_mutex_lock(&j->lock);
	if (j->sink && why == -ECANCELED)
		stream_sink_abort(j->sink, "cancelled");
	pthread_mutex_unlock(&j->lock);
	return true;
}

void svc_jobs_cancel_all(struct svc *svc, int why)
{
	for (struct svc_job *j = svc->jobs; j; j = j->next)
		if (j->state == SVC_JOB_RUNNING)
			svc_job_cancel(j, why);
}

void svc_jobs_wait_all(struct svc *svc)
{
	for (struct svc_job *j = svc->jobs; j; j = j->next)
		if (j->state == SVC_JOB_RUNNING)
			job_finish(svc, j);
	svc_update_timer(svc);
}

void svc_jobs_free(struct svc *svc)
{
	while (svc->jobs) {
		struct svc_job *j = svc->jobs;

		svc->jobs = j->next;
		svc_job_free(j);
	}
}

static void job_target_gone(struct svc_job *j, const char *what)
{
	if (!j->gone)
		j->gone = what;
	if (svc_job_cancel(j, -ESRCH))
		svc_log("job %" PRIu64 ": pid %d %s: stopping the job", j->id, j->pid, what);
}

static void job_target_forked(struct svc *svc, struct svc_job *j, pid_t child)
{
	if (j->nforks < SVC_FORKS_MAX)
		j->forks[j->nforks++] = child;
	svc_job_event(
	    svc, j, "TARGET_FORKED",
	    json_pack("{s:I, s:i, s:i}", "id", (json_int_t)j->id, "pid", j->pid, "child", child));
}

/* fs/exec.c de_thread(): after exec the thread group keeps its tgid, so tgid names it. */
static void on_procev(void *ctx, const struct procev_event *e)
{
	struct svc *svc = ctx;
	struct svc_job *j = svc_job_running_on(svc, e->tgid);

	if (!j)
		return;
	if (e->type == PROCEV_EXIT && e->pid == e->tgid)
		job_target_gone(j, "exited");
	else if (e->type == PROCEV_EXEC)
		job_target_gone(j, "called exec");
	else if (e->type == PROCEV_FORK && e->child_tgid != e->tgid)
		job_target_forked(svc, j, e->child_tgid);
}

void svc_procev_read(struct svc *svc)
{
	int r = procev_read(svc->procev, on_procev, svc);

	if (r != -ENOBUFS)
		return;
	/* Events were lost: look at every target ourselves. */
	for (struct svc_job *j = svc->jobs; j; j = j->next)
		if (j->state == SVC_JOB_RUNNING && kill(j->pid, 0) < 0 && errno == ESRCH)
			job_target_gone(j, "exited");
}
