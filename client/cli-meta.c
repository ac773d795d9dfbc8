/* SPDX-License-Identifier: MIT */
/* Reading an image's META JSON for display; every field is optional. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

#include "cli-args.h"
#include "cli-meta.h"

json_t *cli_meta_parse(const char *text, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;

	root = json_loads(text, 0, &jerr);
	if (!root) {
		snprintf(err, errlen, "not valid JSON (line %d: %s)", jerr.line, jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "not a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}

const char *cli_json_str(const json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_string(v) ? json_string_value(v) : NULL;
}

int cli_json_u64(const json_t *obj, const char *key, uint64_t *ret)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	if (!v || json_is_null(v))
		return -ENOENT;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -EINVAL;
		*ret = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v))
		return cli_parse_u64(json_string_value(v), ret);
	return -EINVAL;
}

long cli_json_array_len(const json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_array(v) ? (long)json_array_size(v) : -ENOENT;
}

json_t *cli_json_u64_new(uint64_t v)
{
	char buf[32];

	if (v <= (uint64_t)INT64_MAX)
		return json_integer((json_int_t)v);
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

const char *cli_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return buf;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

uint64_t cli_pages_bytes(uint64_t pages, uint32_t page_size)
{
	uint64_t bytes;

	if (__builtin_mul_overflow(pages, (uint64_t)page_size, &bytes))
		return UINT64_MAX;
	return bytes;
}

const char *cli_json_str_shown(const json_t *obj, const char *key, char *buf, size_t len)
{
	const char *s = cli_json_str(obj, key);
	size_t o = 0;

	if (!s || !len)
		return s ? "" : NULL;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool plain = ch >= 0x20 && ch < 0x7f && ch != '\\';

		if (o + (plain ? 1 : 4) >= len)
			break;
		if (plain)
			buf[o++] = (char)ch;
		else
			o += (size_t)snprintf(buf + o, len - o, "\\%03o", ch);
	}
	buf[o] = '\0';
	return buf;
}
