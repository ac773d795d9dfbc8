/* SPDX-License-Identifier: MIT */
/*
 * Service mode's state (proto/CONTROL.md): one main thread runs an epoll loop over the
 * listening socket, the clients, a signalfd, a progress timerfd, the jobs' eventfd and the
 * process events; each snapshot job runs the engine in its own thread and touches only its
 * own atomics (cancel, progress, finished) until the main thread joins it.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "ctl-line.h"
#include "ctl-request.h"
#include "engine/snapshot.h"
#include "stream/auth.h"
#include "stream/recv.h"
#include "stream/sink.h"

#define SVC_PROTOCOL	1
#define SVC_OUT_MAX	(4u << 20)   /* unread output per client before it is dropped */
#define SVC_FDS_MAX	8	     /* fds held per connection */
#define SVC_HISTORY	64	     /* finished jobs kept for query-job(s) */
#define SVC_FORKS_MAX	32	     /* children recorded per job */
#define SVC_PROGRESS_NS 250000000ull /* JOB_PROGRESS at most 4 per second */
#define SVC_RECV_STREAMS 16	      /* streams a receive job shows (the most recent) */
#define SVC_RECV_DIR	 "received"   /* where receive jobs write, in the snapshot directory */
#define SVC_FILE_MODE	 0600	      /* a --file image: its client's, like any memory dump */

struct procev;
struct svc_client;
struct svc_job;

struct svc_opts {
	const char *control, *snapdir, *user;
	const char *key_file; /* the stream key, read once at start-up (--key) */
	bool allow_quit;
	unsigned max_jobs, max_clients;
	void (*test_pause)(const char *point); /* snap_opts.test_pause of every job */
	unsigned max_user_jobs, max_user_clients; /* per uid, for clients not privileged */
	unsigned idle_timeout_s; /* a connection that sent no request by then is closed */
	uint64_t max_job_mem;	 /* the largest "mem-limit" a job may ask, bytes (--max-job-mem) */
};

/* --max-job-mem: the default, and at most (MiB). */
#define SVC_DEFAULT_JOB_MEM_MIB 256
#define SVC_MAX_JOB_MEM_MIB	1048576

/*
 * Root, the daemon's own uid and its gid are never locked out by other users: they are not
 * held to the per-uid limits, and SVC_RESERVED_JOBS jobs and SVC_RESERVED_CLIENTS connections
 * of the totals are theirs alone (CONTROL.md "Limits").
 */
#define SVC_RESERVED_JOBS    2
#define SVC_RESERVED_CLIENTS 4

/* Who is at the other end of a connection, as the kernel saw it at connect(). */
struct svc_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool cap_ptrace;  /* CAP_SYS_PTRACE in its effective set */
	uint64_t cap_prm; /* its permitted set */
	bool privileged;  /* uid 0, or the daemon's uid or gid: see SVC_RESERVED_JOBS */
};

struct svc {
	struct svc_opts o;
	int epfd, listenfd, sigfd, timerfd, jobsfd, dirfd, devuffd;
	struct procev *procev;
	bool socket_ours; /* we created o.control: unlink it at exit */
	bool timer_armed;
	struct svc_client *clients;
	unsigned nclients, next_client;
	struct svc_job *jobs; /* newest first */
	uint64_t next_job;
	unsigned running, nfinished;
	bool stopping;
	/* Found at start-up, for query-status. */
	uint64_t uffd_features;
	bool uffd_ok, pagemap_scan;
	char kernel[65];
	const char *caps_kept;
	struct stream_key key; /* from --key: for "to" and "receive" */
	bool has_key;
};

/* Epoll tags of the fixed fds; a client's tag is its address. */
enum svc_tag { SVC_TAG_LISTEN = 1, SVC_TAG_SIGNAL, SVC_TAG_TIMER, SVC_TAG_JOBS, SVC_TAG_PROCEV };

uint64_t svc_now_us(void);
void svc_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define SVC_DEFAULT_CONTROL "/run/uffsnapd/control.sock"
#define SVC_DEFAULT_SNAPDIR "/var/lib/uffsnapd"
#define SVC_SOCKET_GROUP    "uffsnap"

/* service/setup.c: everything opened at start-up, and closed at the end (also half-done). */
int svc_setup(struct svc *svc);
void svc_teardown(struct svc *svc);

/* service/auth.c */
/* Fills peer from SO_PEERCRED (and SO_PEERPIDFD to pin the pid while reading its caps). */
int svc_peer_identify(int fd, struct svc_peer *ret);
/*
 * May peer snapshot pid? 0 and *ret_pidfd, a pidfd of the process checked (the job attaches only
 * to that one: its pid may be reused by another meanwhile); or -errno with err filled
 * (PermissionDenied, NotFound, ...).
 */
int svc_may_snapshot(const struct svc_peer *peer, pid_t pid, int *ret_pidfd, struct ctl_error *err);
