/* SPDX-License-Identifier: MIT */
/*
 * The control protocol's requests (proto/CONTROL.md), as a pure module: a line becomes a
 * validated request or an error class and description; replies and events become lines. No
 * I/O, no logging, no daemon state: the fuzzer (tests/fuzz/fuzz-ctl-request.c) drives it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Longest request line, without its '\n' (CONTROL.md "Limits"). */
#define CTL_LINE_MAX (64 * 1024)
/* Longest name accepted for a file in the snapshot directory or for an fd (NAME_MAX). */
#define CTL_NAME_MAX 255

/* Error classes: the strings on the wire (CONTROL.md "Error classes"). */
#define CTL_E_JSON     "JSONError"
#define CTL_E_NOCMD    "CommandNotFound"
#define CTL_E_PARAM    "InvalidParameter"
#define CTL_E_PERM     "PermissionDenied"
#define CTL_E_NOTFOUND "NotFound"
#define CTL_E_BUSY     "Busy"
#define CTL_E_LIMIT    "LimitExceeded"
#define CTL_E_TARGET   "TargetError"
#define CTL_E_GENERIC  "GenericError"

struct ctl_error {
	const char *class; /* one of CTL_E_* (static) */
	char desc[256];
};

/* Fills err and returns -EINVAL: `return ctl_fail(err, CTL_E_PARAM, "...", ...);` */
int ctl_fail(struct ctl_error *err, const char *class, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum ctl_arg_type {
	CTL_ARG_INT = 1,  /* a JSON integer in [min, max] */
	CTL_ARG_BOOL = 2, /* true or false */
	CTL_ARG_NAME = 3, /* a string of 1..CTL_NAME_MAX of [A-Za-z0-9._-], not starting with '.' */
	CTL_ARG_HOSTPORT = 4, /* "HOST:PORT" or "[ADDR]:PORT": see ctl_hostport_valid() */
};

struct ctl_arg {
	const char *name;
	enum ctl_arg_type type;
	bool required;
	long long min, max; /* CTL_ARG_INT only */
	const char *help;
};

struct ctl_request;
struct ctl_command {
	const char *name;
	/* Runs the command for ctx (the daemon and the client); returns the reply's "return"
	 * value (a new reference) or NULL with err filled in. */
	json_t *(*handler)(void *ctx, const struct ctl_request *req, struct ctl_error *err);
	const char *help;
	const struct ctl_arg *args; /* terminated by {NULL}; NULL: no arguments */
	/* Checks across arguments (e.g. "exactly one of"); may be NULL. 0 or -EINVAL + err. */
	int (*check)(json_t *args, struct ctl_error *err);
};

struct ctl_request {
	const struct ctl_command *cmd;
	json_t *args; /* an object, checked against cmd->args (empty if none were given) */
	json_t *id;   /* the request's "id", or NULL if it had none */
};

/*
 * Parses one line (without '\n'; any bytes) against the NULL-terminated command table.
 * On success fills ret (release with ctl_request_clear) and returns 0. On failure returns
 * -EINVAL with err filled in, and ret->id set if the line was an object with an "id" (so the
 * error reply can echo it; clear ret in both cases).
 */
int ctl_request_parse(const struct ctl_command *table, const char *line, size_t len,
		      struct ctl_request *ret, struct ctl_error *err);
void ctl_request_clear(struct ctl_request *req);

/* Argument accessors for handlers (the request was validated: types are right). */
long long ctl_arg_int(const struct ctl_request *req, const char *name, long long dflt);
bool ctl_arg_bool(const struct ctl_request *req, const char *name, bool dflt);
const char *ctl_arg_str(const struct ctl_request *req, const char *name);

/* Is s a valid name for CTL_ARG_NAME? */
bool ctl_name_valid(const char *s, size_t len);
/* Is s HOST:PORT for CTL_ARG_HOSTPORT: at most CTL_HOSTPORT_MAX bytes, HOST empty, a name or
 * address of [A-Za-z0-9._-] or "[" IPv6 "]" ([0-9A-Fa-f:.]), PORT 0..65535 in decimal? */
bool ctl_hostport_valid(const char *s, size_t len);
#define CTL_HOSTPORT_MAX 261 /* a 253-byte DNS name, ':' and 5 digits, with room */

/*
 * Lines to send, each ending in '\n', malloc'ed (NULL only when out of memory). They take
 * over the reference to value/data; id may be NULL.
 */
char *ctl_line_return(json_t *value, json_t *id);
char *ctl_line_error(const struct ctl_error *err, json_t *id);
/* now_us: wall-clock microseconds since the epoch (the event's timestamp). */
char *ctl_line_event(const char *event, json_t *data, uint64_t now_us);
/* The greeting (CONTROL.md "Greeting"). */
char *ctl_line_greeting(int protocol);

/* "name": help text, one line per command and argument, for --help and documentation. */
void ctl_commands_help(const struct ctl_command *table, char *buf, size_t len);
