/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the control protocol's input side (proto/ctl-line.c,
 * proto/ctl-request.c): the input is what a client sends on a connection. It goes through a
 * client's line buffer in pieces whose sizes come from the input itself, and every line
 * through the request parser against the daemon's real command table. Besides crashes and
 * sanitizer reports it aborts when an invariant breaks: a parsed request has a command and an
 * object of arguments whose names and types its table allows; every error has a class and a
 * description; every reply line is exactly one line of JSON that reads back as an object.
 * Built with clang -fsanitize=fuzzer (UFFSNAP_FUZZ) or with fuzz-replay.c for the corpus test.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-line.h"
#include "ctl-request.h"

extern const struct ctl_command svc_commands[];

#define FUZZ_ASSERT(c)                                                                             \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz-ctl-request: invariant broken: %s (line %d)\n", #c,  \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* A line we would send: one '\n', at the end, and a JSON object before it. */
static void check_line(char *line)
{
	size_t n;
	json_t *j;

	FUZZ_ASSERT(line);
	n = strlen(line);
	FUZZ_ASSERT(n >= 2 && line[n - 1] == '\n' && !memchr(line, '\n', n - 1));
	j = json_loadb(line, n - 1, 0, NULL);
	FUZZ_ASSERT(json_is_object(j));
	json_decref(j);
	free(line);
}

static void check_request(const struct ctl_request *req)
{
	const char *key;
	json_t *v;

	FUZZ_ASSERT(req->cmd && req->cmd->name && json_is_object(req->args));
	json_object_foreach(req->args, key, v)
	{
		const struct ctl_arg *a = req->cmd->args;

		while (a && a->name && strcmp(a->name, key))
			a++;
		FUZZ_ASSERT(a && a->name);
		if (a->type == CTL_ARG_INT)
			FUZZ_ASSERT(ctl_arg_int(req, key, -1) >= a->min &&
				    ctl_arg_int(req, key, -1) <= a->max);
		else if (a->type == CTL_ARG_NAME)
			FUZZ_ASSERT(
			    ctl_name_valid(ctl_arg_str(req, key), strlen(ctl_arg_str(req, key))));
		else if (a->type == CTL_ARG_HOSTPORT)
			FUZZ_ASSERT(ctl_hostport_valid(ctl_arg_str(req, key),
						       strlen(ctl_arg_str(req, key))));
		else
			FUZZ_ASSERT(json_is_boolean(v));
	}
	check_line(ctl_line_return(json_incref(req->args), req->id));
}

static void one_line(const char *line, size_t len)
{
	struct ctl_request req;
	struct ctl_error err = {0};
	int r = ctl_request_parse(svc_commands, line, len, &req, &err);

	if (r == 0) {
		check_request(&req);
	} else {
		FUZZ_ASSERT(r == -EINVAL && err.class && err.desc[0]);
		check_line(ctl_line_error(&err, req.id));
	}
	ctl_request_clear(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctl_linebuf lb;
	size_t off = 0, step = size ? (data[0] % 7) * 997 + 1 : 1;
	const char *line;
	size_t len;
	int r;

	memset(&lb, 0, offsetof(struct ctl_linebuf, buf));
	while (off < size) {
		size_t space, n;
		char *dst = ctl_linebuf_space(&lb, &space);

		FUZZ_ASSERT(space > 0 && space <= sizeof(lb.buf));
		n = size - off < step ? size - off : step;
		n = n < space ? n : space;
		memcpy(dst, data + off, n);
		ctl_linebuf_added(&lb, n);
		off += n;
		while ((r = ctl_linebuf_next(&lb, &line, &len)) != 0) {
			FUZZ_ASSERT(r == 1 || r == -E2BIG);
			if (r == 1) {
				FUZZ_ASSERT(len <= CTL_LINE_MAX && !memchr(line, '\n', len));
				one_line(line, len);
			}
		}
	}
	return 0;
}
