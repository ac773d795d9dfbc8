/* SPDX-License-Identifier: MIT */
/* The workload's layout line: {"pid":..,"page_size":..,"kind":..,"threads":N,"regions":[..]}. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wl-check.h"

#define WL_LAYOUT_MAX_SIZE (1u << 20)

static int __attribute__((format(printf, 3, 4))) wl_layout_err(char *errbuf, size_t errlen,
							       const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Addresses are strings "0x..." (JSON numbers lose precision past 2^53). */
static bool wl_json_addr(json_t *obj, const char *key, uint64_t *ret)
{
	const char *s = json_string_value(json_object_get(obj, key));
	char *end;

	if (!s || strncmp(s, "0x", 2) != 0)
		return false;
	errno = 0;
	*ret = strtoull(s + 2, &end, 16);
	return errno == 0 && end != s + 2 && *end == '\0';
}

static bool wl_json_u32(json_t *obj, const char *key, uint32_t max, uint32_t *ret)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		return false;
	*ret = (uint32_t)json_integer_value(v);
	return true;
}

static int wl_layout_region(json_t *o, struct wl_layout *l, char *errbuf, size_t errlen)
{
	struct wl_layout_region reg = {0};
	struct wl_geometry g;

	if (!wl_json_u32(o, "thread", l->nthreads - 1, &reg.thread) ||
	    !wl_json_u32(o, "pages", UINT32_MAX, &reg.pages) ||
	    !wl_json_u32(o, "records_per_page", UINT32_MAX, &reg.records) ||
	    !wl_json_addr(o, "addr", &reg.addr) || !wl_json_addr(o, "counter", &reg.counter))
		return wl_layout_err(errbuf, errlen,
				     "a region needs thread (< threads), addr, pages, "
				     "records_per_page and counter");
	if (l->regions[reg.thread].pages)
		return wl_layout_err(errbuf, errlen, "thread %" PRIu32 " has two regions",
				     reg.thread);
	reg.header = reg.counter & ~(l->page_size - 1);
	if (json_object_get(o, "header") && !wl_json_addr(o, "header", &reg.header))
		return wl_layout_err(errbuf, errlen, "thread %" PRIu32 ": bad header address",
				     reg.thread);
	g = (struct wl_geometry){l->page_size, reg.pages, reg.records};
	if (!wl_geometry_valid(&g) || reg.addr % l->page_size || reg.header % l->page_size ||
	    reg.counter != reg.header + WL_COUNTER_OFFSET)
		return wl_layout_err(errbuf, errlen,
				     "thread %" PRIu32 ": impossible geometry or addresses",
				     reg.thread);
	l->regions[reg.thread] = reg;
	return 0;
}

static int wl_layout_scratch(json_t *arr, struct wl_layout *l, char *errbuf, size_t errlen)
{
	size_t i;
	json_t *o;

	json_array_foreach(arr, i, o) {
		struct wl_layout_scratch *s = &l->scratch[l->nscratch];
		const char *ev = json_string_value(json_object_get(o, "event"));

		if (l->nscratch == WL_LAYOUT_MAX_SCRATCH)
			return wl_layout_err(errbuf, errlen, "too many scratch entries");
		if (!ev || !wl_json_u32(o, "pages", UINT32_MAX, &s->pages))
			return wl_layout_err(errbuf, errlen, "a scratch entry needs event and pages");
		snprintf(s->event, sizeof(s->event), "%s", ev);
		if (!wl_json_addr(o, "addr", &s->addr))
			s->addr = 0;
		if (!wl_json_addr(o, "alt", &s->alt))
			s->alt = 0;
		l->nscratch++;
	}
	return 0;
}

static int wl_layout_fill(json_t *root, struct wl_layout *l, char *errbuf, size_t errlen)
{
	json_t *regions = json_object_get(root, "regions"), *o;
	const char *kind = json_string_value(json_object_get(root, "kind"));
	uint32_t ps;
	size_t i;
	int r;

	if (!json_is_object(root) || !kind || !json_is_array(regions) ||
	    !wl_json_u32(root, "threads", WL_MAX_THREADS, &l->nthreads) || l->nthreads == 0 ||
	    !wl_json_u32(root, "page_size", 1u << 30, &ps) || ps < 4096 || (ps & (ps - 1)))
		return wl_layout_err(errbuf, errlen,
				     "layout needs kind, threads (1..%d), page_size and regions",
				     WL_MAX_THREADS);
	l->page_size = ps;
	if (json_object_get(root, "kernel_store_every") &&
	    !wl_json_u32(root, "kernel_store_every", UINT32_MAX, &l->kernel_store_every))
		return wl_layout_err(errbuf, errlen, "bad kernel_store_every");
	l->pid = json_integer_value(json_object_get(root, "pid"));
	snprintf(l->kind, sizeof(l->kind), "%s", kind);
	if (json_array_size(regions) != l->nthreads)
		return wl_layout_err(errbuf, errlen, "%zu regions for %" PRIu32 " threads",
				     json_array_size(regions), l->nthreads);
	json_array_foreach(regions, i, o) {
		r = wl_layout_region(o, l, errbuf, errlen);
		if (r < 0)
			return r;
	}
	if (json_is_array(json_object_get(root, "scratch")))
		return wl_layout_scratch(json_object_get(root, "scratch"), l, errbuf, errlen);
	return 0;
}

int wl_layout_parse(const char *json, size_t len, struct wl_layout *ret, char *errbuf,
		    size_t errlen)
{
	struct wl_layout *l = calloc(1, sizeof(*l));
	json_error_t jerr;
	json_t *root;
	int r;

	if (!l)
		return -ENOMEM;
	root = json_loadb(json, len, 0, &jerr);
	if (!root) {
		r = wl_layout_err(errbuf, errlen, "layout is not JSON: line %d: %s", jerr.line,
				  jerr.text);
		goto out;
	}
	r = wl_layout_fill(root, l, errbuf, errlen);
	if (r >= 0)
		*ret = *l;
out:
	json_decref(root);
	free(l);
	return r;
}

int wl_layout_load(const char *path, struct wl_layout *ret, char *errbuf, size_t errlen)
{
	char *buf = malloc(WL_LAYOUT_MAX_SIZE), *nl;
	int fd = -EBADF, r;
	size_t len = 0;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	while ((n = read(fd, buf + len, WL_LAYOUT_MAX_SIZE - len)) > 0)
		len += (size_t)n;
	if (n < 0) {
		r = -errno;
		goto out;
	}
	/* The file may hold the "ready" line and more after the JSON line: use the first. */
	nl = memchr(buf, '\n', len);
	r = wl_layout_parse(buf, nl ? (size_t)(nl - buf) : len, ret, errbuf, errlen);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

struct wl_geometry wl_layout_geometry(const struct wl_layout *l, uint32_t thread)
{
	return (struct wl_geometry){l->page_size, l->regions[thread].pages,
				    l->regions[thread].records};
}
