/* SPDX-License-Identifier: MIT */
/*
 * libuffsnap control client: talks to `uffsnapd --service` over its Unix socket
 * (proto/CONTROL.md is the protocol). Link with `pkg-config --libs uffsnap`.
 *
 * Every function returns >= 0 on success and a negative errno on failure; none logs, none
 * touches errno's meaning for the caller or signal dispositions (sends use MSG_NOSIGNAL).
 * Failures that concern the connection:
 *   -ECONNRESET      the daemon closed the connection (also in the middle of a line)
 *   -EBADMSG         the daemon sent something that is not the protocol (not JSON, not an
 *                    object, a reply nobody asked for, a bad greeting)
 *   -EMSGSIZE        a line from the daemon longer than UFFSNAP_CLIENT_MAX_LINE
 *   -EPROTONOSUPPORT the greeting announces a protocol other than UFFSNAP_CLIENT_PROTOCOL
 *   -ETIMEDOUT       nothing arrived in time
 * After one of these the connection is unusable: later calls return the same error (events
 * queued before it can still be read). The daemon's own refusal of a request is
 * -EREMOTEIO, with its class and description in a struct uffsnap_client_error; the connection
 * stays usable.
 *
 * A connection is not thread-safe: use one from one thread at a time (or one connection per
 * thread). Different connections are independent.
 */
#pragma once

#include <stdbool.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The protocol version this library speaks (the greeting's "protocol"). */
#define UFFSNAP_CLIENT_PROTOCOL 1
/* The socket uffsnapd --service listens on unless told otherwise. */
#define UFFSNAP_CLIENT_DEFAULT_SOCKET "/run/uffsnapd/control.sock"
/* Longest line accepted from the daemon (it never queues more than 4 MiB for a client). */
#define UFFSNAP_CLIENT_MAX_LINE (16u << 20)

struct uffsnap_client;

/* An error reply: {"error": {"class": ..., "desc": ...}}; strings truncated to fit. */
struct uffsnap_client_error {
	char class[64]; /* e.g. "PermissionDenied"; scripts test this (CONTROL.md, Error classes) */
	char desc[1024]; /* a sentence for a person */
};

/*
 * A file descriptor to pass with a command: the library sends it with a `getfd` request
 * under a name it generates, then sets arguments[argument] to that name in the command it
 * sends (the caller's arguments object is not modified). The caller keeps its fd and closes
 * it when it likes: the daemon holds its own copy. If the command is refused, the library
 * closes the daemon's copy with `closefd`.
 */
struct uffsnap_client_fd {
	int fd;
	const char *argument; /* e.g. "fd" for `snapshot` */
};

/*
 * Connects to the control socket at path (NULL: UFFSNAP_CLIENT_DEFAULT_SOCKET) and reads the
 * greeting, waiting at most timeout_ms for it (-1: no limit). The daemon may refuse the
 * connection with an error line instead of a greeting (too many clients): -EREMOTEIO, and
 * ret_error (if not NULL) says why. Path errors are connect(2)'s: -ENOENT, -ECONNREFUSED
 * (nobody listens), -EACCES, -ENAMETOOLONG (longer than sun_path).
 */
int uffsnap_client_connect(const char *path, int timeout_ms, struct uffsnap_client **ret_client,
			   struct uffsnap_client_error *ret_error);

/* Closes the connection and frees everything, queued events included. Accepts NULL. */
void uffsnap_client_free(struct uffsnap_client *c);

/* The greeting object ({"uffsnap": {...}}), owned by the connection. */
const json_t *uffsnap_client_greeting(const struct uffsnap_client *c);

/* True if the greeting lists capability name (e.g. "fd-passing"). */
bool uffsnap_client_has_capability(const struct uffsnap_client *c, const char *name);

/*
 * How long uffsnap_client_execute() waits for each reply: timeout_ms, -1 (the default) for no
 * limit. On -ETIMEDOUT the request stays sent: its late reply is recognised and dropped.
 */
void uffsnap_client_set_timeout(struct uffsnap_client *c, int timeout_ms);

/*
 * Runs one command: sends {"execute": command, "arguments": arguments, "id": N} (arguments
 * may be NULL; it is borrowed, not stolen) and waits for the reply, queueing the events that
 * arrive meanwhile (read them with uffsnap_client_next_event()). With pass (may be NULL), the
 * fd is passed first (see struct uffsnap_client_fd).
 *
 * Returns 0 and the "return" value in *ret_return (a new reference; NULL allowed if not
 * wanted), or -EREMOTEIO with the daemon's error in *ret_error (may be NULL). A signal does not
 * interrupt the wait (the request's outcome, e.g. a job created, is always returned): check
 * your signal flags when it returns. -EINVAL: command empty, arguments not an object, or pass
 * without an argument name or with a negative fd.
 */
int uffsnap_client_execute(struct uffsnap_client *c, const char *command, json_t *arguments,
			   const struct uffsnap_client_fd *pass, json_t **ret_return,
			   struct uffsnap_client_error *ret_error);

/*
 * The same with npass fds (pass[0..npass-1], each under its own argument name: e.g. "qemu" and
 * "fd" for a guest's `snapshot`): each is passed with its own `getfd` first, and all are
 * closed with `closefd` if the command is refused. -EINVAL also for two with one argument.
 */
int uffsnap_client_execute_fds(struct uffsnap_client *c, const char *command, json_t *arguments,
			       const struct uffsnap_client_fd *pass, size_t npass,
			       json_t **ret_return, struct uffsnap_client_error *ret_error);

/*
 * The next event ({"event": ..., "data": ..., "timestamp": ...}, a new reference), waiting up
 * to timeout_ms (0: only what has arrived, -1: no limit). Events are returned in the order the
 * daemon sent them, including those queued during uffsnap_client_execute().
 * -ETIMEDOUT: none arrived in time; -EINTR: a signal arrived while waiting (nothing is lost).
 * Events are queued in memory until read: a program that executes commands for a long time
 * without reading events should read them now and then.
 */
int uffsnap_client_next_event(struct uffsnap_client *c, int timeout_ms, json_t **ret_event);

/*
 * The socket, for poll(2) (POLLIN) in the caller's event loop; do not read or write it.
 * Events already read from the socket do not make it readable: before polling, call
 * uffsnap_client_next_event(c, 0, ...) until it returns -ETIMEDOUT.
 */
int uffsnap_client_fd(const struct uffsnap_client *c);

#ifdef __cplusplus
}
#endif
