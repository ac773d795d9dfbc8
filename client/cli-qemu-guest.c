/* SPDX-License-Identifier: MIT */
/*
 * A QEMU guest's image: its `guest` metadata (FORMAT.md 1.1), and the command line that starts
 * a QEMU to receive it -- the recorded one with its shared backends turned into file backends.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli-meta.h"
#include "cli-qemu.h"

int cli_qemu_fail(char *msg, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return err;
}

int64_t cli_qemu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int guest_backend(json_t *b, size_t i, struct cli_qemu_backend *ret, char *msg, size_t len)
{
	json_t *share = json_object_get(b, "share");

	ret->id = cli_json_str(b, "id");
	ret->type = cli_json_str(b, "type");
	if (!ret->id || !*ret->id || cli_json_u64(b, "size", &ret->size) < 0 || !ret->size ||
	    cli_json_u64(b, "addr", &ret->addr) < 0 || ret->addr > UINT64_MAX - ret->size)
		return cli_qemu_fail(msg, len, -EBADMSG,
				     "guest.backends[%zu] lacks a valid id, size or addr", i);
	ret->share = json_is_true(share);
	return 0;
}

static int guest_parse(struct cli_qemu_guest *g, const json_t *guest, char *msg, size_t len)
{
	json_t *backends = json_object_get(guest, "backends"), *b;
	json_t *ds = json_object_get(guest, "devstate");
	uint64_t crc = 0;
	size_t i;
	int r;

	g->machine = cli_json_str(guest, "machine");
	g->version = cli_json_str(guest, "qemu_version");
	g->binary = cli_json_str(guest, "binary");
	g->argv = json_object_get(guest, "argv");
	if (!json_is_array(g->argv))
		g->argv = NULL;
	if (!g->machine)
		return cli_qemu_fail(msg, len, -EBADMSG, "the image's guest has no machine type");
	if (!json_is_array(backends) || !json_array_size(backends))
		return cli_qemu_fail(msg, len, -EBADMSG,
				     "the image's guest has no memory backends");
	g->backends = calloc(json_array_size(backends), sizeof(*g->backends));
	if (!g->backends)
		return -ENOMEM;
	json_array_foreach(backends, i, b)
	{
		r = guest_backend(b, i, &g->backends[i], msg, len);
		if (r < 0)
			return r;
		g->nbackends++;
	}
	g->devstate_recorded = cli_json_u64(ds, "size", &g->devstate_size) >= 0 &&
			       cli_json_u64(ds, "crc32c", &crc) >= 0 && crc <= UINT32_MAX;
	g->devstate_crc = (uint32_t)crc;
	return 0;
}

int cli_qemu_guest_load(const char *meta, struct cli_qemu_guest *ret, char *msg, size_t len)
{
	struct cli_qemu_guest g = {0};
	char err[160];
	json_t *guest;
	int r;

	g.meta = cli_meta_parse(meta, err, sizeof(err));
	if (!g.meta)
		return cli_qemu_fail(msg, len, -EBADMSG, "metadata: %s", err);
	guest = json_object_get(g.meta, "guest");
	if (!json_is_object(guest)) {
		json_decref(g.meta);
		return cli_qemu_fail(msg, len, -ENOMEDIUM,
				     "not a QEMU guest's image (no guest metadata)");
	}
	r = guest_parse(&g, guest, msg, len);
	if (r < 0) {
		cli_qemu_guest_free(&g);
		return r;
	}
	*ret = g;
	return 0;
}

void cli_qemu_guest_free(struct cli_qemu_guest *g)
{
	free(g->backends);
	json_decref(g->meta);
	*g = (struct cli_qemu_guest){0};
}

/* --- the command line ------------------------------------------------------------------- */

struct argv_out {
	char **v;
	size_t n, cap;
};

static int out_add(struct argv_out *o, char *s)
{
	if (!s)
		return -ENOMEM;
	if (o->n + 2 > o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 32;
		char **v = realloc(o->v, cap * sizeof(*v));

		if (!v) {
			free(s);
			return -ENOMEM;
		}
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = s;
	o->v[o->n] = NULL;
	return 0;
}

/* The value of key= in a QEMU option string (",," is a literal comma), or NULL. */
static char *opt_get(const char *opts, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = opts; p && *p;) {
		const char *end = p;

		while (*end && !(end[0] == ',' && end[1] != ',')) /* ",," stays in the value */
			end += end[0] == ',' ? 2 : 1;
		if (!strncmp(p, key, klen) && p[klen] == '=')
			return strndup(p + klen + 1, end - p - klen - 1);
		p = *end ? end + 1 : NULL;
	}
	return NULL;
}

/* The object's type: the first item when it has no '=', else qom-type=. */
static char *opt_type(const char *opts)
{
	size_t n = strcspn(opts, ",");

	if (!memchr(opts, '=', n))
		return strndup(opts, n);
	return opt_get(opts, "qom-type");
}

static const struct cli_qemu_backend *guest_find(const struct cli_qemu_guest *g, const char *id)
{
	for (size_t i = 0; id && i < g->nbackends; i++)
		if (!strcmp(g->backends[i].id, id))
			return &g->backends[i];
	return NULL;
}

/* Options a memory-backend-file does not take, or that the restore sets itself. */
static bool opt_dropped(const char *item, size_t n)
{
	static const char *const keys[] = {"qom-type", "id",	      "mem-path", "share",
					   "hugetlb",  "hugetlbsize", "seal"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strncmp(item, keys[i], strlen(keys[i])) && item[strlen(keys[i])] == '=')
			return true;
	return !memchr(item, '=', n); /* the leading type */
}

/* -object OPTS of one of the image's backends as a file backend in dir; NULL if not one. */
static char *object_rewrite(const struct cli_qemu_guest *g, const char *opts, const char *dir)
{
	char *type = opt_type(opts), *id = opt_get(opts, "id"), *out = NULL;
	const struct cli_qemu_backend *b = guest_find(g, id);
	size_t cap = strlen(opts) + strlen(dir) * 2 + 128, n;

	if (!b || !type || strncmp(type, "memory-backend-", 15) || !(out = malloc(cap)))
		goto done;
	n = snprintf(out, cap, "memory-backend-file,id=%s", id);
	for (const char *p = opts; p && *p;) {
		const char *end = p;

		while (*end && !(end[0] == ',' && end[1] != ','))
			end += end[0] == ',' ? 2 : 1;
		if (!opt_dropped(p, end - p))
			n += snprintf(out + n, cap - n, ",%.*s", (int)(end - p), p);
		p = *end ? end + 1 : NULL;
	}
	snprintf(out + n, cap - n, ",mem-path=%s/%s.ram,share=on", dir, id);
done:
	free(type);
	free(id);
	return out;
}

static bool is_opt(const char *arg, const char *name)
{
	return arg[0] == '-' &&
	       (!strcmp(arg + 1, name) || (arg[1] == '-' && !strcmp(arg + 2, name)));
}

static int argv_rewrite(const struct cli_qemu_guest *g, char **args, int nargs, const char *dir,
			struct argv_out *o)
{
	int r = 0;

	for (int i = 1; i < nargs && r >= 0; i++) {
		char *obj;

		if (is_opt(args[i], "incoming") && i + 1 < nargs) {
			i++;
			continue;
		}
		if (is_opt(args[i], "object") && i + 1 < nargs &&
		    (obj = object_rewrite(g, args[i + 1], dir))) {
			r = out_add(o, strdup(args[i]));
			if (r >= 0)
				r = out_add(o, obj);
			i++;
			continue;
		}
		r = out_add(o, strdup(args[i]));
	}
	if (r >= 0)
		r = out_add(o, strdup("-incoming"));
	if (r >= 0)
		r = out_add(o, strdup("defer"));
	if (r >= 0)
		r = out_add(o, strdup("-qmp"));
	if (r >= 0) {
		char *q = NULL;

		r = asprintf(&q, "unix:%s/qmp.sock,server=on,wait=off", dir) < 0 ? -ENOMEM
										 : out_add(o, q);
	}
	return r;
}

int cli_qemu_argv_build(const struct cli_qemu_guest *g, char **args, int nargs, const char *dir,
			char ***ret, char *msg, size_t len)
{
	struct argv_out o = {0};
	char **owned = NULL;
	int r;

	if (!args) { /* the recorded command line */
		nargs = g->argv ? (int)json_array_size(g->argv) : 0;
		owned = calloc(nargs + 1, sizeof(*owned));
		if (!owned)
			return -ENOMEM;
		for (int i = 0; i < nargs; i++)
			if (!(owned[i] = (char *)json_string_value(json_array_get(g->argv, i))))
				return free(owned),
				       cli_qemu_fail(msg, len, -EBADMSG,
						     "guest.argv[%d] is not a string", i);
		args = owned;
	}
	if (nargs < 1) {
		free(owned);
		return cli_qemu_fail(msg, len, -EBADMSG,
				     "the image records no QEMU command line: give one "
				     "after --");
	}
	/* The recorded argv[0] may be relative to QEMU's cwd; its binary is absolute. */
	r = out_add(&o,
		    strdup(owned && g->binary && !access(g->binary, X_OK) ? g->binary : args[0]));
	if (r >= 0)
		r = argv_rewrite(g, args, nargs, dir, &o);
	free(owned);
	if (r < 0) {
		cli_qemu_argv_free(o.v);
		return r;
	}
	*ret = o.v;
	return 0;
}

void cli_qemu_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

void cli_qemu_argv_print(FILE *f, char **argv)
{
	static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				   "0123456789_@%+=:,./-";

	for (size_t i = 0; argv[i]; i++) {
		const char *a = argv[i];

		fputs(i ? " " : "", f);
		if (*a && strspn(a, safe) == strlen(a)) {
			fputs(a, f);
			continue;
		}
		fputc('\'', f);
		for (; *a; a++)
			fputs(*a == '\'' ? "'\\''" : (char[]){*a, 0}, f);
		fputc('\'', f);
	}
	fputc('\n', f);
}
