/* SPDX-License-Identifier: MIT */
/*
 * Jobs, whatever their kind: one thread each, which touches only its job's atomics (cancel,
 * finished), its result fields and what its kind shares under the job's lock; the main
 * thread learns of its end through the shared eventfd, joins it, and tells the clients.
 * What differs between kinds goes through j->ops (job.h), and nothing else.
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

#include "sys/clock.h"
#include "sys/proc-events.h"
#include "service/client.h"
#include "service/job.h"

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

void svc_job_send_queued(struct svc *svc, struct svc_job *j, json_t **pending)
{
	json_t *queued, *ev;
	size_t i;

	pthread_mutex_lock(&j->lock);
	queued = *pending;
	*pending = NULL;
	pthread_mutex_unlock(&j->lock);
	json_array_foreach(queued, i, ev)
	{
		svc_job_event(svc, j, json_string_value(json_object_get(ev, "event")),
			      json_incref(json_object_get(ev, "data")));
	}
	json_decref(queued);
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
	const char *desc = j->ops->cancelled ? j->ops->cancelled(j) : NULL;

	if (j->state == SVC_JOB_CANCELLED)
		return json_pack("{s:s, s:s}", "class", CTL_E_GENERIC, "desc",
				 desc ? desc : "cancelled; the image is incomplete");
	return json_pack("{s:s, s:s}", "class", job_error_class(j), "desc",
			 j->err.msg[0] ? j->err.msg : strerror(-j->result));
}

json_t *svc_job_json(struct svc_job *j)
{
	json_t *o =
	    json_pack("{s:I, s:s, s:s, s:I, s:{s:I, s:I}}", "id", (json_int_t)j->id, "type",
		      j->ops->name, "state", state_names[j->state], "owner", (json_int_t)j->owner,
		      "created", "seconds", (json_int_t)(j->created_us / 1000000), "microseconds",
		      (json_int_t)(j->created_us % 1000000));

	if (!o)
		return NULL;
	j->ops->describe(j, o);
	if (j->state == SVC_JOB_FAILED || j->state == SVC_JOB_CANCELLED)
		json_object_set_new(o, "error", job_error_json(j));
	return o;
}

void svc_job_thread_done(struct svc_job *j)
{
	j->end_ns = sys_now_ns();
	__atomic_store_n(&j->finished, 1, __ATOMIC_RELEASE);
	eventfd_write(j->svc->jobsfd, 1);
}

struct svc_job *svc_job_new(const struct svc_job_ops *ops, uid_t owner)
{
	struct svc_job *j = calloc(1, ops->size);

	if (!j)
		return NULL;
	j->ops = ops;
	j->owner = owner;
	j->stop_fd = j->pidfd = -EBADF;
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
	if (j->ops->free)
		j->ops->free(j);
	close_fd(j->pidfd);
	close_fd(j->stop_fd);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

int svc_job_start(struct svc *svc, struct svc_job *j)
{
	int r;

	j->svc = svc;
	j->id = ++svc->next_job;
	j->created_us = svc_now_us();
	j->start_ns = sys_now_ns();
	r = -pthread_create(&j->thread, NULL, j->ops->main, j);
	if (r < 0) {
		svc_job_free(j);
		return r;
	}
	j->started = true;
	j->next = svc->jobs;
	svc->jobs = j;
	svc->running++;
	j->ops->log_start(j);
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

static void job_completed(struct svc *svc, struct svc_job *j, const char *what, double secs)
{
	j->state = SVC_JOB_COMPLETED;
	if (j->ops->completed)
		return j->ops->completed(svc, j, secs);
	svc_log("job %" PRIu64 ": %s complete in %.3f s", j->id, what, secs);
	svc_job_event(svc, j, "JOB_COMPLETED", json_pack("{s:I}", "id", (json_int_t)j->id));
}

static void job_finish(struct svc *svc, struct svc_job *j)
{
	int cancel;
	double secs;
	char what[32];
	json_t *data;

	pthread_join(j->thread, NULL);
	cancel = __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE);
	secs = (j->end_ns - j->start_ns) / 1e9;
	close_fd(j->pidfd);
	j->pidfd = -EBADF;
	svc->running--;
	j->ops->ended(svc, j, what, sizeof(what));
	if (j->result >= 0)
		return job_completed(svc, j, what, secs);
	j->state = cancel == -ECANCELED ? SVC_JOB_CANCELLED : SVC_JOB_FAILED;
	if (j->state == SVC_JOB_FAILED)
		job_explain_gone(j);
	svc_log("job %" PRIu64 ": %s %s after %.3f s: %s", j->id, what, state_names[j->state], secs,
		j->err.msg[0] ? j->err.msg : strerror(-j->result));
	if (j->state == SVC_JOB_CANCELLED)
		data = json_pack("{s:I}", "id", (json_int_t)j->id);
	else
		data = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)j->id, "class",
				 job_error_class(j), "desc",
				 j->err.msg[0] ? j->err.msg : strerror(-j->result));
	if (data && j->ops->outcome)
		j->ops->outcome(j, data);
	svc_job_event(svc, j, j->state == SVC_JOB_CANCELLED ? "JOB_CANCELLED" : "JOB_FAILED", data);
}

void svc_jobs_reap(struct svc *svc)
{
	eventfd_t v;

	eventfd_read(svc->jobsfd, &v);
	for (struct svc_job *j = svc->jobs; j; j = j->next) {
		if (j->state != SVC_JOB_RUNNING)
			continue;
		if (j->ops->poll)
			j->ops->poll(svc, j);
		if (__atomic_load_n(&j->finished, __ATOMIC_ACQUIRE))
			job_finish(svc, j);
	}
	jobs_trim(svc);
	svc_update_timer(svc);
}

void svc_jobs_progress(struct svc *svc)
{
	uint64_t expirations;

	if (read(svc->timerfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		return;
	for (struct svc_job *j = svc->jobs; j; j = j->next)
		if (j->state == SVC_JOB_RUNNING && j->ops->progress)
			j->ops->progress(svc, j);
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
	j->ops->stop(j, why);
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
