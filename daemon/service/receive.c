/* SPDX-License-Identifier: MIT */
/*
 * Receive jobs (proto/CONTROL.md "receive"): the stream receiver (stream/recv.h) run in a job
 * thread, writing into the snapshot directory's received/ with the daemon's key. The thread
 * keeps each stream's state and queues IMAGE_* events under the job's lock; the main thread
 * sends them (recv_events) and shows the state (recv_describe). Its struct svc_job_ops is at
 * the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "service/receive.h"

static struct svc_recv_job *recv_job(const struct svc_job *j)
{
	return container_of(j, struct svc_recv_job, job);
}

static const char *const stream_states[] = {
    [RECV_STREAM_RECEIVING] = "receiving", [RECV_STREAM_WAITING] = "waiting",
    [RECV_STREAM_COMPLETE] = "complete",   [RECV_STREAM_FAILED] = "failed",
    [RECV_STREAM_EXPIRED] = "incomplete",
};

static void recv_job_log(void *ctx, enum recv_log_level level, const char *msg)
{
	const struct svc_recv_job *j = ctx;

	svc_log("job %" PRIu64 ": %s%s", j->job.id, level == RECV_LOG_WARN ? "warning: " : "", msg);
}

/* The entry for file: the existing one, else a free one, else the oldest that has ended. */
static struct svc_recv_stream *stream_slot(struct svc_recv_job *j, const char *file)
{
	struct svc_recv_stream *ended = NULL;

	for (unsigned i = 0; i < j->nstreams; i++) {
		if (!strcmp(j->streams[i].file, file))
			return &j->streams[i];
		if (!ended && j->streams[i].state >= RECV_STREAM_COMPLETE)
			ended = &j->streams[i];
	}
	if (j->nstreams < SVC_RECV_STREAMS)
		return &j->streams[j->nstreams++];
	if (ended) /* keep the order: oldest first */
		memmove(ended, ended + 1,
			(char *)&j->streams[SVC_RECV_STREAMS - 1] - (char *)ended);
	return ended ? &j->streams[SVC_RECV_STREAMS - 1] : NULL;
}

/* An IMAGE_RECEIVED or IMAGE_FAILED event for the main thread (lock held). */
static void queue_event(struct svc_recv_job *j, const struct recv_stream_info *i)
{
	json_t *data =
	    json_pack("{s:I, s:s, s:s, s:s, s:I, s:I}", "id", (json_int_t)j->job.id, "file",
		      i->file, "directory", SVC_RECV_DIR, "peer", i->peer, "bytes",
		      (json_int_t)i->bytes, "elapsed_ns", (json_int_t)i->elapsed_ns);
	bool ok = i->state == RECV_STREAM_COMPLETE;

	if (!data)
		return;
	if (!ok)
		json_object_set_new(data, "desc", json_string(i->why));
	if (!j->pending)
		j->pending = json_array();
	json_array_append_new(
	    j->pending,
	    json_pack("{s:s, s:o}", "event", ok ? "IMAGE_RECEIVED" : "IMAGE_FAILED", "data", data));
}

static void recv_job_stream(void *ctx, const struct recv_stream_info *i)
{
	struct svc_recv_job *j = ctx;
	struct svc_recv_stream *s;
	bool ended = i->state >= RECV_STREAM_COMPLETE;

	pthread_mutex_lock(&j->job.lock);
	s = stream_slot(j, i->file);
	if (s) {
		snprintf(s->file, sizeof(s->file), "%s", i->file);
		snprintf(s->peer, sizeof(s->peer), "%s", i->peer);
		snprintf(s->why, sizeof(s->why), "%s", i->why ? i->why : "");
		s->state = i->state;
		s->bytes = i->bytes;
		s->rate = i->rate;
		s->elapsed_ns = i->elapsed_ns;
	}
	if (i->state == RECV_STREAM_COMPLETE) {
		j->images++;
		j->bytes_received += i->bytes;
	} else if (ended) {
		j->failed_images++;
	}
	if (ended)
		queue_event(j, i);
	pthread_mutex_unlock(&j->job.lock);
	if (ended)
		eventfd_write(j->job.svc->jobsfd, 1);
}

static void *recv_main(void *arg)
{
	struct svc_recv_job *rj = arg;
	struct svc_job *j = &rj->job;
	struct recv_opts o = {
	    .listen_fd = rj->listen_fd,
	    .dir_fd = rj->dir_fd,
	    .stop_fd = j->stop_fd,
	    .key = &j->svc->key,
	    .resume_timeout_s = 60,
	    .handshake_timeout_s = 10,
	    .idle_timeout_s = 60,
	    .max_conns = 64,
	    .log = recv_job_log,
	    .stream = recv_job_stream,
	    .log_ctx = rj,
	};
	int r = recv_run(&o);

	if (r < 0)
		snprintf(j->err.msg, sizeof(j->err.msg), "the receiver stopped: %s", strerror(-r));
	j->result = r;
	svc_job_thread_done(j);
	return NULL;
}

/* Sends the events the thread queued. */
static void recv_events(struct svc *svc, struct svc_job *j)
{
	svc_job_send_queued(svc, j, &recv_job(j)->pending);
}

static json_t *stream_json(const struct svc_recv_stream *s)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "file", s->file, "peer", s->peer,
			      "state", stream_states[s->state], "bytes", (json_int_t)s->bytes,
			      "rate", (json_int_t)s->rate, "elapsed_ns", (json_int_t)s->elapsed_ns);

	if (o && s->why[0])
		json_object_set_new(o, "desc", json_string(s->why));
	return o;
}

static void recv_describe(struct svc_job *job, json_t *o)
{
	struct svc_recv_job *j = recv_job(job);
	json_t *streams = json_array();

	pthread_mutex_lock(&job->lock);
	for (unsigned i = 0; streams && i < j->nstreams; i++)
		json_array_append_new(streams, stream_json(&j->streams[i]));
	json_object_set_new(o, "images", json_integer((json_int_t)j->images));
	json_object_set_new(o, "failed", json_integer((json_int_t)j->failed_images));
	json_object_set_new(o, "bytes", json_integer((json_int_t)j->bytes_received));
	pthread_mutex_unlock(&job->lock);
	json_object_set_new(o, "listen", json_string(j->listen));
	json_object_set_new(o, "directory", json_string(SVC_RECV_DIR));
	json_object_set_new(o, "streams", streams);
}

static void recv_log_start(const struct svc_job *j)
{
	svc_log("job %" PRIu64 ": receiving on %s into %s/" SVC_RECV_DIR " for uid %u", j->id,
		recv_job(j)->listen, j->svc->o.snapdir, j->owner);
}

static void recv_created(const struct svc_job *j, json_t *data)
{
	json_object_set_new(data, "listen", json_string(recv_job(j)->listen));
}

/* Any cancel stops the receiver: it has no target to outlive. */
static void recv_stop(struct svc_job *j, int why)
{
	eventfd_write(j->stop_fd, 1);
}

static void recv_ended(struct svc *svc, struct svc_job *j, char *what, size_t len)
{
	recv_events(svc, j);
	if (j->result >= 0) /* a receiver runs until it is stopped */
		j->result = -ECANCELED;
	snprintf(what, len, "receiver");
}

static void recv_free(struct svc_job *job)
{
	struct svc_recv_job *j = recv_job(job);

	if (j->listen_fd >= 0)
		close(j->listen_fd);
	if (j->dir_fd >= 0)
		close(j->dir_fd);
	json_decref(j->pending);
	free(j->listen);
}

static const struct svc_job_ops recv_ops = {
    .name = "receive",
    .size = sizeof(struct svc_recv_job),
    .main = recv_main,
    .log_start = recv_log_start,
    .created = recv_created,
    .describe = recv_describe,
    .stop = recv_stop,
    .poll = recv_events,
    .ended = recv_ended,
    .free = recv_free,
};

struct svc_recv_job *svc_recv_job_new(uid_t owner)
{
	struct svc_job *j = svc_job_new(&recv_ops, owner);
	struct svc_recv_job *rj;

	if (!j)
		return NULL;
	rj = recv_job(j);
	rj->listen_fd = rj->dir_fd = -EBADF;
	return rj;
}
