/* SPDX-License-Identifier: MIT */
/* Requests, replies and events of the control protocol (proto/CONTROL.md); pure. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-request.h"

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, surrogates, > U+10FFFF). */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned c = s[0], n, min, cp;

	if (c < 0x80)
		return 1;
	n = c >= 0xf0 && c <= 0xf4   ? 4
	    : c >= 0xe0 && c <= 0xef ? 3
	    : c >= 0xc2 && c <= 0xdf ? 2
				     : 0;
	if (!n)
		return 0;
	min = n == 4 ? 0x10000 : n == 3 ? 0x800 : 0x80;
	cp = c & (0x7f >> n);
	for (unsigned i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : n;
}

/*
 * A description must be valid UTF-8 to be sent as a JSON string, but it may quote the
 * client's bytes (jansson's "near '...'", a name cut at 64 bytes): replace what is not.
 */
static void utf8_scrub(char *s)
{
	while (*s) {
		size_t n = utf8_seq((const unsigned char *)s);

		if (!n)
			*s++ = '?';
		else
			s += n;
	}
}

int ctl_fail(struct ctl_error *err, const char *class, const char *fmt, ...)
{
	va_list ap;

	err->class = class;
	va_start(ap, fmt);
	vsnprintf(err->desc, sizeof(err->desc), fmt, ap);
	va_end(ap);
	utf8_scrub(err->desc);
	return -EINVAL;
}

bool ctl_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > CTL_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool host_char(char c, bool v6)
{
	if ((c >= '0' && c <= '9') || c == '.' || (v6 && c == ':'))
		return true;
	if (v6)
		return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-';
}

bool ctl_hostport_valid(const char *s, size_t len)
{
	size_t colon, i = 0, end;
	unsigned long port = 0;
	bool v6 = len && s[0] == '[';

	if (len < 2 || len > CTL_HOSTPORT_MAX)
		return false;
	for (colon = len; colon > 0 && s[colon - 1] != ':'; colon--)
		;
	if (colon == 0 || colon == len || len - colon > 5)
		return false;
	for (size_t k = colon; k < len; k++) {
		if (s[k] < '0' || s[k] > '9')
			return false;
		port = port * 10 + (unsigned long)(s[k] - '0');
	}
	end = colon - 1; /* the host is s[i, end) */
	if (v6) {
		if (end < 3 || s[end - 1] != ']')
			return false;
		i = 1;
		end--;
	}
	for (; i < end; i++)
		if (!host_char(s[i], v6))
			return false;
	return port <= 65535;
}

static const struct ctl_command *find_command(const struct ctl_command *table, const char *name)
{
	for (const struct ctl_command *c = table; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static const struct ctl_arg *find_arg(const struct ctl_arg *args, const char *name)
{
	for (const struct ctl_arg *a = args; a && a->name; a++)
		if (!strcmp(a->name, name))
			return a;
	return NULL;
}

static int check_value(const struct ctl_arg *a, json_t *v, struct ctl_error *err)
{
	switch (a->type) {
	case CTL_ARG_INT:
		if (!json_is_integer(v) || json_integer_value(v) < a->min ||
		    json_integer_value(v) > a->max)
			return ctl_fail(err, CTL_E_PARAM,
					"'%s' must be an integer from %lld to %lld", a->name,
					a->min, a->max);
		return 0;
	case CTL_ARG_BOOL:
		if (!json_is_boolean(v))
			return ctl_fail(err, CTL_E_PARAM, "'%s' must be true or false", a->name);
		return 0;
	case CTL_ARG_NAME:
		if (!json_is_string(v) ||
		    !ctl_name_valid(json_string_value(v), json_string_length(v)))
			return ctl_fail(err, CTL_E_PARAM,
					"'%s' must be a name of 1 to %d characters from "
					"[A-Za-z0-9._-], not starting with '.' or '-'",
					a->name, CTL_NAME_MAX);
		return 0;
	case CTL_ARG_HOSTPORT:
		if (!json_is_string(v) ||
		    !ctl_hostport_valid(json_string_value(v), json_string_length(v)))
			return ctl_fail(err, CTL_E_PARAM,
					"'%s' must be HOST:PORT or [IPv6]:PORT (a port from 0 to "
					"65535; a host name or address of [A-Za-z0-9._-])",
					a->name);
		return 0;
	}
	return ctl_fail(err, CTL_E_GENERIC, "internal error: argument '%s' has no type", a->name);
}

static int check_args(const struct ctl_command *cmd, json_t *args, struct ctl_error *err)
{
	const char *key;
	json_t *v;
	int r;

	json_object_foreach(args, key, v)
	{
		const struct ctl_arg *a = find_arg(cmd->args, key);

		if (!a)
			return ctl_fail(err, CTL_E_PARAM, "'%s' takes no argument '%.64s'",
					cmd->name, key);
		r = check_value(a, v, err);
		if (r < 0)
			return r;
	}
	for (const struct ctl_arg *a = cmd->args; a && a->name; a++)
		if (a->required && !json_object_get(args, a->name))
			return ctl_fail(err, CTL_E_PARAM, "'%s' needs the argument '%s'", cmd->name,
					a->name);
	return cmd->check ? cmd->check(args, err) : 0;
}

/* The top level: {"execute": string, "arguments": object?, "id": any?}, nothing else. */
static int check_top(json_t *root, struct ctl_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id"))
			return ctl_fail(err, CTL_E_PARAM,
					"unknown member '%.64s' in the request (a request has "
					"'execute', 'arguments' and 'id')",
					key);
	}
	v = json_object_get(root, "execute");
	if (!v)
		return ctl_fail(err, CTL_E_PARAM, "the request has no 'execute' member");
	if (!json_is_string(v))
		return ctl_fail(err, CTL_E_PARAM,
				"'execute' must be a string (the command's name)");
	v = json_object_get(root, "arguments");
	if (v && !json_is_object(v))
		return ctl_fail(err, CTL_E_PARAM, "'arguments' must be an object");
	return 0;
}

static int parse_root(const char *line, size_t len, json_t **ret, struct ctl_error *err)
{
	json_error_t jerr;
	json_t *root;

	if (len > CTL_LINE_MAX)
		return ctl_fail(err, CTL_E_LIMIT, "the request line is longer than %d bytes",
				CTL_LINE_MAX);
	/* No JSON_DECODE_ANY: only an object or an array; no JSON_ALLOW_NUL: "\u0000" is an
	 * error, so every string is a C string. */
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return ctl_fail(err, CTL_E_JSON, "the line is not valid JSON: %s (at byte %d)",
				jerr.text, jerr.position);
	if (!json_is_object(root)) {
		json_decref(root);
		return ctl_fail(err, CTL_E_JSON, "a request must be a JSON object");
	}
	*ret = root;
	return 0;
}

int ctl_request_parse(const struct ctl_command *table, const char *line, size_t len,
		      struct ctl_request *ret, struct ctl_error *err)
{
	const struct ctl_command *cmd;
	json_t *root = NULL, *args;
	const char *name;
	int r;

	*ret = (struct ctl_request){0};
	r = parse_root(line, len, &root, err);
	if (r < 0)
		return r;
	ret->id = json_incref(json_object_get(root, "id"));
	r = check_top(root, err);
	if (r < 0)
		goto out;
	name = json_string_value(json_object_get(root, "execute"));
	cmd = find_command(table, name);
	if (!cmd) {
		r = ctl_fail(err, CTL_E_NOCMD,
			     "there is no command '%.64s' (see the protocol, "
			     "proto/CONTROL.md)",
			     name);
		goto out;
	}
	args = json_object_get(root, "arguments");
	args = args ? json_incref(args) : json_object();
	r = args ? check_args(cmd, args, err) : ctl_fail(err, CTL_E_GENERIC, "out of memory");
	if (r < 0) {
		json_decref(args);
		goto out;
	}
	ret->cmd = cmd;
	ret->args = args;
out:
	json_decref(root);
	return r;
}

void ctl_request_clear(struct ctl_request *req)
{
	json_decref(req->args);
	json_decref(req->id);
	*req = (struct ctl_request){0};
}

long long ctl_arg_int(const struct ctl_request *req, const char *name, long long dflt)
{
	json_t *v = json_object_get(req->args, name);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

bool ctl_arg_bool(const struct ctl_request *req, const char *name, bool dflt)
{
	json_t *v = json_object_get(req->args, name);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

const char *ctl_arg_str(const struct ctl_request *req, const char *name)
{
	return json_string_value(json_object_get(req->args, name));
}

/* Compact, one line: jansson escapes control characters in strings, so no raw '\n'. */
static char *dump_line(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	size_t n;
	char *line;

	json_decref(j);
	if (!s)
		return NULL;
	n = strlen(s);
	line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	return line;
}

char *ctl_line_return(json_t *value, json_t *id)
{
	json_t *j = json_pack("{s:o}", "return", value ? value : json_object());

	if (j && id)
		json_object_set(j, "id", id);
	return dump_line(j);
}

char *ctl_line_error(const struct ctl_error *err, json_t *id)
{
	json_t *j = json_pack("{s:{s:s, s:s}}", "error", "class",
			      err->class ? err->class : CTL_E_GENERIC, "desc", err->desc);

	if (j && id)
		json_object_set(j, "id", id);
	return dump_line(j);
}

char *ctl_line_event(const char *event, json_t *data, uint64_t now_us)
{
	return dump_line(json_pack("{s:s, s:o, s:{s:I, s:I}}", "event", event, "data",
				   data ? data : json_object(), "timestamp", "seconds",
				   (json_int_t)(now_us / 1000000), "microseconds",
				   (json_int_t)(now_us % 1000000)));
}

char *ctl_line_greeting(int protocol)
{
	int major = 0, minor = 0, micro = 0;

	sscanf(UFFSNAP_VERSION, "%d.%d.%d", &major, &minor, &micro);
	return dump_line(json_pack("{s:{s:{s:i, s:i, s:i, s:s}, s:i, s:[s, s, s]}}", "uffsnap",
				   "version", "major", major, "minor", minor, "micro", micro,
				   "package", UFFSNAP_VERSION, "protocol", protocol, "capabilities",
				   "fd-passing", "events", "jobs"));
}

void ctl_commands_help(const struct ctl_command *table, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (const struct ctl_command *c = table; c->name && n < len; c++) {
		n += snprintf(buf + n, len - n, "  %-12s %s\n", c->name, c->help);
		for (const struct ctl_arg *a = c->args; a && a->name && n < len; a++)
			n += snprintf(buf + n, len - n, "      %-15s %s\n", a->name, a->help);
	}
}
