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

struct svc_opts {
	const char *control, *snapdir, *user;
	const char *key_file; /* the stream key, read once at start-up (--key) */
	bool allow_quit;
	unsigned max_jobs, max_clients;
	void (*test_pause)(const char *point); /* snap_opts.test_pause of every job */
	unsigned max_user_jobs, max_user_clients; /* per uid, for clients not privileged */
	unsigned idle_timeout_s; /* a connection that sent no request by then is closed */
};

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

struct svc_client {
	struct svc_client *next;
	struct svc *svc;
	int fd;
	unsigned serial; /* for the log */
	struct svc_peer peer;
	uint64_t connected_ns, last_request_ns; /* last_request_ns 0: none yet (silent) */
	char *out; /* queued output: out[out_off, out_len) */
	size_t out_off, out_len, out_cap;
	bool dead; /* close at the end of this loop iteration */
	bool close_when_flushed;
	bool want_out; /* EPOLLOUT is registered */
	int fds[SVC_FDS_MAX];
	char *fdnames[SVC_FDS_MAX]; /* NULL: received, not yet named by getfd */
	unsigned nfds;
	bool fds_dropped;	 /* more than SVC_FDS_MAX arrived: the next reply says so */
	struct svc_job *created; /* by the request being handled: JOB_CREATED follows its reply */
	struct ctl_linebuf in;
};

enum svc_job_state {
	SVC_JOB_RUNNING,
	SVC_JOB_COMPLETED,
	SVC_JOB_FAILED,
	SVC_JOB_CANCELLED,
};

enum svc_job_kind {
	SVC_JOB_SNAPSHOT, /* to a file, an fd or a receiver ("to") */
	SVC_JOB_RECEIVE,  /* a receiver ("receive") */
};

/* One stream of a receive job, as its thread last reported it (under the job's lock). */
struct svc_recv_stream {
	char file[128], peer[64], why[256];
	enum recv_stream_state state;
	uint64_t bytes, rate, elapsed_ns;
};

struct svc_job {
	struct svc_job *next;
	struct svc *svc;
	uint64_t id;
	enum svc_job_kind kind;
	pid_t pid;
	int pidfd; /* the process authorized, until the job ends */
	uid_t owner;
	gid_t owner_gid; /* the client's gid: a --file image is owner:owner_gid */
	enum svc_job_state state; /* main thread only */
	int cancel;		  /* atomic: 0, -ECANCELED or -ESRCH; the engine polls it */
	uint64_t done, total;	  /* atomic: progress in pages */
	uint64_t sent_done;	  /* last JOB_PROGRESS sent */
	int finished;		  /* atomic: the thread has returned */
	pthread_t thread;
	bool started;
	int out_fd;
	char *file, *fdname; /* the output, for query-job */
	bool strict;
	uint32_t window;
	uint64_t created_us, start_ns, end_ns;
	const char *gone; /* "exited" or "called exec", from the process events */
	pid_t forks[SVC_FORKS_MAX];
	unsigned nforks;
	/* Written by the job thread before finished, read by the main thread after. */
	int result;
	struct snap_stats stats;
	struct snap_error err;

	/* The job thread and the main thread share these under lock. */
	pthread_mutex_t lock;
	struct img_sink *sink;	       /* "to": the stream, while the job thread has it */
	struct stream_counters stream; /* "to": the counters last read */
	json_t *pending;	       /* receive: events for the main thread to send */
	struct svc_recv_stream streams[SVC_RECV_STREAMS];
	unsigned nstreams;
	uint64_t images, failed_images, bytes_received;

	char *to;			/* snapshot to a receiver at HOST:PORT */
	uint64_t sent_acked;		/* "to": acked in the last JOB_PROGRESS */
	char *listen;			/* receive: the address it listens on */
	int listen_fd, dir_fd, stop_fd; /* receive */
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

/* service/client.c */
void svc_accept(struct svc *svc);
void svc_client_input(struct svc_client *c);
void svc_client_output(struct svc_client *c);
/* Queues a line (taking it over; NULL = out of memory: the client is dropped). */
void svc_client_send(struct svc_client *c, char *line);
void svc_clients_reap(struct svc *svc);
/* Closes connections silent past --idle-timeout; returns ms until the next may expire, or -1. */
int svc_clients_expire(struct svc *svc);
/* Connections (or running jobs) of uid now. */
unsigned svc_clients_of(const struct svc *svc, uid_t uid);
unsigned svc_jobs_of(const struct svc *svc, uid_t uid);
void svc_clients_free(struct svc *svc);
/* The oldest unnamed fd, or a named one; -1 if none. */
int svc_client_fd_find(struct svc_client *c, const char *name);
/* Removes slot i from the client's fds without closing it; returns the fd. */
int svc_client_fd_take(struct svc_client *c, int i);

/* service/job.c */
bool svc_job_visible(const struct svc_job *j, const struct svc_peer *p);
/* Sends an event to every client that may see job j; takes data over. */
void svc_job_event(struct svc *svc, const struct svc_job *j, const char *event, json_t *data);
struct svc_job *svc_job_find(struct svc *svc, uint64_t id);
struct svc_job *svc_job_running_on(struct svc *svc, pid_t pid);
json_t *svc_job_json(struct svc_job *j);
/* A new job (calloc'ed, its fds -EBADF, its lock ready); NULL when out of memory. */
struct svc_job *svc_job_new(enum svc_job_kind kind, uid_t owner);
/* Frees a job that was never started (or has ended). */
void svc_job_free(struct svc_job *j);
/* Starts a job (its thread); on failure frees it. 0 or -errno. */
int svc_job_start(struct svc *svc, struct svc_job *j);
/* Asks a running job to stop with why (-ECANCELED, -ESRCH); false if it was already asked. */
bool svc_job_cancel(struct svc_job *j, int why);
/* The "stream" object of a job streaming to a receiver (as uffsnapd --json prints it). */
json_t *svc_stream_json(const struct stream_counters *c);
void svc_jobs_reap(struct svc *svc);
void svc_jobs_progress(struct svc *svc);
void svc_jobs_cancel_all(struct svc *svc, int why);
void svc_jobs_wait_all(struct svc *svc);
void svc_jobs_free(struct svc *svc);
void svc_procev_read(struct svc *svc);
void svc_update_timer(struct svc *svc);

/* service/receive.c: receive jobs */
/* The receive job's thread; its job fields are set by the command. */
void *svc_recv_job_main(void *arg);
/* Members of a receive job's query-job object. */
void svc_recv_job_json(struct svc_job *j, json_t *o);
/* Sends the events a receive job's thread queued. */
void svc_recv_job_events(struct svc *svc, struct svc_job *j);

/* service/auth.c */
/* Fills peer from SO_PEERCRED (and SO_PEERPIDFD to pin the pid while reading its caps). */
int svc_peer_identify(int fd, struct svc_peer *ret);
/*
 * May peer snapshot pid? 0 and *ret_pidfd, a pidfd of the process checked (the job attaches only
 * to that one: its pid may be reused by another meanwhile); or -errno with err filled
 * (PermissionDenied, NotFound, ...).
 */
int svc_may_snapshot(const struct svc_peer *peer, pid_t pid, int *ret_pidfd,
		     struct ctl_error *err);

/* service/output.c */
/* The way to a new image name in the snapshot directory: an unnamed file (SVC_FILE_MODE),
 * if name is free; fd or -errno + err. */
int svc_output_create(struct svc *svc, const char *name, struct ctl_error *err);
/* A job's complete image: verified, synced, named j->file, given to j->owner:j->owner_gid.
 * 0, or -errno + j->err. */
int svc_output_finish(struct svc_job *j);
/* Probes the uffd features and PAGEMAP_SCAN for query-status. */
void svc_probe_kernel(struct svc *svc);

/* service/commands.c */
extern const struct ctl_command svc_commands[];
/* Handles one line from c: parses, runs, queues the reply. */
void svc_handle_line(struct svc_client *c, const char *line, size_t len);
