/* SPDX-License-Identifier: MIT */
/*
 * Service-mode tests: a real `uffsnapd --service` on a socket in a fresh temporary directory,
 * and a minimal line client for it (test-only; the public client is include/uffsnap/client.h).
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "workload/wl-harness.h"

/* A hang guard for every wait on the daemon (never a measurement). */
#define SVC_T_TIMEOUT_MS 120000

struct svc_paths {
	const char *uffsnapd, *workload, *check;
};

struct svc_daemon {
	pid_t pid;
	char dir[64];	   /* the test's directory: removed at the end */
	char sock[128];	   /* dir/control.sock */
	char snapdir[128]; /* dir/snaps */
};

/* argv: UFFSNAPD WORKLOAD CHECK [rest]; returns the index of the first extra argument. */
int svc_paths_parse(int argc, char **argv, struct svc_paths *ret);

/* Starts the daemon with extra options (NULL-terminated) and waits until it accepts. */
int svc_daemon_start(const struct svc_paths *p, const char *const *extra, struct svc_daemon *d);
/* SIGTERM, wait: its exit status (or 128 + signal); removes the directory. */
int svc_daemon_stop(struct svc_daemon *d);
/* The daemon's peak resident memory in KiB (VmHWM), or -1. */
long svc_daemon_hwm_kib(const struct svc_daemon *d);

struct svc_conn {
	int fd;
	size_t len;
	json_t *greeting;
	json_t *events; /* events read while waiting for something else */
	char buf[1 << 20];
};

int svc_connect(const char *sock, struct svc_conn **ret);
void svc_conn_free(struct svc_conn *c);
/* Sends text as is (with fd attached if >= 0). */
int svc_send_raw(struct svc_conn *c, const void *buf, size_t len, int fd);
/* Reads one line as JSON (NULL on EOF, timeout or bad JSON; says which). */
json_t *svc_read(struct svc_conn *c, int timeout_ms);
/* Sends {"execute": cmd, "arguments": args (taken over; may be NULL), "id": ...}, with fd
 * attached if >= 0, and returns the reply (events meanwhile are kept in c->events). */
json_t *svc_call(struct svc_conn *c, const char *cmd, json_t *args, int fd);
/* The reply's error class, or "" for a return, or "(none)". */
const char *svc_class(json_t *reply);
/* Waits for event name about job id (any if 0); returns it (a new reference) or NULL. */
json_t *svc_wait_event(struct svc_conn *c, const char *name, long long id);
/* Starts a job: snapshot {pid, key: value}; returns the job id, or -1 (reply printed). */
long long svc_snapshot(struct svc_conn *c, pid_t pid, const char *key, const char *value);

/* Starts the workload with args (NULL-terminated) and writes its layout to layout_path. */
int svc_workload(const struct svc_paths *p, const char *const *args, const char *layout_path,
		 struct wl_proc **ret);
/* A job writing to a pipe no one reads (named fdname on c): it stays running, past its checks.
 * Returns the job id (the pipe's read end in *ret_read_end) or -1. */
long long svc_stalled_job(struct svc_conn *c, pid_t pid, const char *fdname, int *ret_read_end);
/* Runs fn(ctx) as user nobody in a child (killed if we die); returns its pid, or -1. */
pid_t svc_fork_nobody(int (*fn)(void *ctx), void *ctx);
/* Waits for a child: 0 if it exited 0, else -1. */
int svc_wait_child(pid_t pid);
/* Reads fd to EOF, appending to the file path (NULL: discard); bytes read or -errno. */
long long svc_drain(int fd, const char *path);
