/* SPDX-License-Identifier: MIT */
/*
 * Control connections (service/client.c): their I/O, fds and limits. Below the jobs and the
 * commands: a complete line goes to the handler the loop passes in (svc_handle_line()).
 */
#pragma once

#include <stddef.h>

#include "service/service.h"

struct svc_client {
	struct svc_client *next;
	struct svc *svc;
	int fd;
	unsigned serial; /* for the log */
	struct svc_peer peer;
	uint64_t connected_ns, last_request_ns; /* last_request_ns 0: none yet (silent) */
	char *out;				/* queued output: out[out_off, out_len) */
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

/* Handles one complete request line of c. */
typedef void svc_line_fn(struct svc_client *c, const char *line, size_t len);

void svc_accept(struct svc *svc);
/* Reads what c sent and hands each complete line to handle. */
void svc_client_input(struct svc_client *c, svc_line_fn *handle);
void svc_client_output(struct svc_client *c);
/* Queues a line (taking it over; NULL = out of memory: the client is dropped). */
void svc_client_send(struct svc_client *c, char *line);
void svc_clients_reap(struct svc *svc);
/* Closes connections silent past --idle-timeout; returns ms until the next may expire, or -1. */
int svc_clients_expire(struct svc *svc);
/* Connections of uid now. */
unsigned svc_clients_of(const struct svc *svc, uid_t uid);
void svc_clients_free(struct svc *svc);
/* The oldest unnamed fd, or a named one; -1 if none. */
int svc_client_fd_find(struct svc_client *c, const char *name);
/* Removes slot i from the client's fds without closing it; returns the fd. */
int svc_client_fd_take(struct svc_client *c, int i);
