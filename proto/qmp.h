/* SPDX-License-Identifier: MIT */
/*
 * A QMP client: QEMU's JSON monitor protocol over a unix socket (QEMU's docs/interop/qmp-spec).
 * One request at a time; events that arrive meanwhile are queued for qmp_wait_event(). Every
 * function returns >= 0 or a negative errno, with one line for a person in msg; none logs.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

struct qmp;

/*
 * Connects to a QMP unix socket, reads the greeting (checks that it is QEMU's) and sends
 * qmp_capabilities. timeout_ms bounds each wait for QEMU (-1: none).
 */
int qmp_open_path(const char *path, int timeout_ms, struct qmp **ret, char *msg, size_t len);
/* The same on a connected socket; takes fd, also on failure. */
int qmp_open_fd(int fd, int timeout_ms, struct qmp **ret, char *msg, size_t len);
/* The socket (for a guardian that must speak on it if we die: daemon/guest/guardian.h). */
int qmp_fd(const struct qmp *q);
/* QEMU's pid (SO_PEERCRED of the socket). */
pid_t qmp_peer_pid(const struct qmp *q);
/* QEMU's version, "7.2.22". */
const char *qmp_version(const struct qmp *q);
/*
 * Once fd is readable (-1: no such fd), qmp_exec() sends nothing more and qmp_wait_event()
 * stops waiting, both with -ECANCELED. A command already sent is always answered first.
 */
void qmp_set_cancel_fd(struct qmp *q, int fd);
/*
 * Runs one command. args may be NULL (not stolen). *ret (ret may be NULL) gets the "return"
 * value, a new reference. A QMP error returns -EREMOTEIO with its description in msg. fd >= 0
 * is passed with SCM_RIGHTS along with the command (for getfd), else -1.
 */
int qmp_exec(struct qmp *q, const char *cmd, json_t *args, int fd, json_t **ret, char *msg,
	     size_t len);
/*
 * The next event named name (NULL: any), from the queue or the socket, waiting at most
 * timeout_ms (-1: no limit; then -ETIMEDOUT). *ret gets the whole event object.
 */
int qmp_wait_event(struct qmp *q, const char *name, int timeout_ms, json_t **ret, char *msg,
		   size_t len);
void qmp_close(struct qmp *q);
