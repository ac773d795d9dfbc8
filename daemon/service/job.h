/* SPDX-License-Identifier: MIT */
/*
 * Jobs (service/job.c): what every job has, and the generic life cycle (start, progress,
 * cancel, reap, history, process events). What a kind of job does is its struct svc_job_ops,
 * defined in the kind's own file (job-snapshot.c, job-migrate.c, receive.c); job.c calls only through it,
 * so a new kind is a new file, its ops, and the command that creates it.
 *
 * A kind's job embeds struct svc_job as its first member: svc_job_new() allocates ops->size
 * bytes and the kind's ops reach its own fields with container_of().
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "service/service.h"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

enum svc_job_state {
	SVC_JOB_RUNNING,
	SVC_JOB_COMPLETED,
	SVC_JOB_FAILED,
	SVC_JOB_CANCELLED,
};

struct svc_job_ops {
	const char *name; /* "type" in query-job(s) */
	size_t size;	  /* of the kind's struct, which begins with struct svc_job */
	/* The job's thread: sets result (and err) and ends with svc_job_thread_done(). */
	void *(*main)(void *job);
	/* The "... started" log line. */
	void (*log_start)(const struct svc_job *j);
	/* The kind's members of the JOB_CREATED data and of the query-job object. */
	void (*created)(const struct svc_job *j, json_t *data);
	void (*describe)(struct svc_job *j, json_t *o);
	/* After the cancel flag was set: wakes what the thread may be blocked on. */
	void (*stop)(struct svc_job *j, int why);
	/* Optional: on every jobs wake-up while it runs (events its thread queued). */
	void (*poll)(struct svc *svc, struct svc_job *j);
	/* Optional: on every progress tick while it runs (JOB_PROGRESS). */
	void (*progress)(struct svc *svc, struct svc_job *j);
	/* Once its thread is joined: may adjust result; names it in the log ("pid N"). */
	void (*ended)(struct svc *svc, struct svc_job *j, char *what, size_t len);
	/* Optional: logs and sends JOB_COMPLETED (else a bare one). */
	void (*completed)(struct svc *svc, struct svc_job *j, double secs);
	/* Optional: the kind's members of a JOB_FAILED or JOB_CANCELLED event's data. */
	void (*outcome)(const struct svc_job *j, json_t *data);
	/* Optional: does this running job link a file of that name in the snapshot directory? */
	bool (*writes)(const struct svc_job *j, const char *name);
	/* Optional: the "desc" of a cancelled job's error, if not the generic one (NULL). */
	const char *(*cancelled)(const struct svc_job *j);
	/* Optional: frees the kind's own fields (the job itself is freed by svc_job_free()). */
	void (*free)(struct svc_job *j);
};

struct svc_job {
	struct svc_job *next;
	struct svc *svc;
	const struct svc_job_ops *ops;
	uint64_t id;
	uid_t owner;
	gid_t owner_gid;	  /* the client's gid: a --file image is owner:owner_gid */
	enum svc_job_state state; /* main thread only */
	int cancel;		  /* atomic: 0, -ECANCELED or -ESRCH; the thread polls it */
	int finished;		  /* atomic: the thread has returned */
	pthread_t thread;
	bool started;
	int stop_fd; /* an eventfd the thread watches: written on cancel */
	uint64_t created_us, start_ns, end_ns;
	/* The target process, for jobs that have one (pid 0: none). */
	pid_t pid;
	int pidfd;	  /* the process authorized, until the job ends */
	const char *gone; /* "exited" or "called exec", from the process events */
	pid_t forks[SVC_FORKS_MAX];
	unsigned nforks;
	/* Written by the job thread before finished, read by the main thread after. */
	int result;
	struct snap_error err;
	/* The job thread and the main thread share the kind's fields under lock. */
	pthread_mutex_t lock;
};

bool svc_job_visible(const struct svc_job *j, const struct svc_peer *p);
/* Sends an event to every client that may see job j; takes data over. */
void svc_job_event(struct svc *svc, const struct svc_job *j, const char *event, json_t *data);
/*
 * Sends the events a job's thread queued in *pending (under the job's lock: an array of
 * {"event": NAME, "data": {...}}), in order, and empties it. Main thread.
 */
void svc_job_send_queued(struct svc *svc, struct svc_job *j, json_t **pending);
struct svc_job *svc_job_find(struct svc *svc, uint64_t id);
struct svc_job *svc_job_running_on(struct svc *svc, pid_t pid);
/* Running jobs of uid now. */
unsigned svc_jobs_of(const struct svc *svc, uid_t uid);
json_t *svc_job_json(struct svc_job *j);
/* A new job of that kind (ops->size bytes, zeroed, its fds -EBADF, its lock ready); NULL when
 * out of memory. */
struct svc_job *svc_job_new(const struct svc_job_ops *ops, uid_t owner);
/* Frees a job that was never started (or has ended). */
void svc_job_free(struct svc_job *j);
/* Starts a job (its thread); on failure frees it. 0 or -errno. */
int svc_job_start(struct svc *svc, struct svc_job *j);
/* The end of a job's thread: tells the main thread (the thread must not touch j after). */
void svc_job_thread_done(struct svc_job *j);
/* Asks a running job to stop with why (-ECANCELED, -ESRCH); false if it was already asked. */
bool svc_job_cancel(struct svc_job *j, int why);
void svc_jobs_reap(struct svc *svc);
void svc_jobs_progress(struct svc *svc);
void svc_jobs_cancel_all(struct svc *svc, int why);
void svc_jobs_wait_all(struct svc *svc);
void svc_jobs_free(struct svc *svc);
void svc_procev_read(struct svc *svc);
void svc_update_timer(struct svc *svc);
