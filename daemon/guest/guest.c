/* SPDX-License-Identifier: MIT */
/*
 * A QEMU guest's live snapshot (guest.h), in the order of ../shared/QEMU.md:
 *
 * 1. Over QMP, before anything is touched: the guest must be running and not migrating; every
 *    memory backend must be shared (else its writes land in pages no one else can read); each
 *    backend is found among QEMU's mappings.
 * 2. The engine arms write protection on those mappings only (its scope) while the guest runs.
 * 3. Just before the engine's final hold (hook before_instant): `stop`, then QEMU's migration
 *    with x-ignore-shared into a pipe we read: the device state, without RAM.
 * 4. The final hold ends with the guest still stopped: RAM and devices are of one instant.
 *    Then (hook at_instant) `cont`: the guest's downtime is stop -> cont.
 * 5. The engine copies the RAM in the background; the guest's writes fault as any target's.
 *
 * The guest is never left paused by us: whatever fails after `stop`, we `cont` (cancelling
 * the migration if it still runs), and a guardian process does if we are killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest/guardian.h"
#include "guest/guest.h"
#include "qmp.h"
#include "sys/clock.h"
#include "uffsnap/image.h"

/* The device state is a few MiB; beyond this, something else is being sent. */
#define DEVSTATE_MAX (1ull << 30)
#define DEVSTATE_FDNAME "uffsnap-devstate"

struct backend {
	char *id, *type, *mem_path; /* mem_path: file backends only */
	uint64_t size, addr;	    /* addr: where QEMU maps it */
	int order;		    /* of its -object on QEMU's command line */
};

struct guest {
	struct qmp *q;
	pid_t pid;
	int cancel_fd;
	struct backend *b;
	size_t nb;
	struct snap_span *scope;
	json_t *argv;
	char binary[PATH_MAX];
	json_t *caps; /* migration capabilities as we found them, to put back */
	uint8_t *dev;
	size_t devlen;
	bool stopped, resumed, migrating;
	uint64_t t_stop, t_migrate;
	struct guardian *guard;
	struct guest_stats *gs;
	void (*test_pause)(const char *point); /* snap_opts.test_pause: tests only */
};

static void pause_at(const struct guest *g, const char *point)
{
	if (g->test_pause)
		g->test_pause(point);
}

static int failf(char *msg, size_t len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int failf(char *msg, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return err;
}

/* Runs cmd and gives the "return" string member name (or the return itself if name is NULL). */
static int exec_string(struct guest *g, const char *cmd, json_t *args, const char *name,
		       char *out, size_t outlen, char *msg, size_t len)
{
	json_t *r = NULL;
	int k = qmp_exec(g->q, cmd, args, -1, &r, msg, len);
	const char *s = k < 0 ? NULL : json_string_value(name ? json_object_get(r, name) : r);

	if (k >= 0 && !s)
		k = failf(msg, len, -EPROTO, "QMP %s: no %s in QEMU's answer", cmd,
			  name ? name : "string");
	if (k >= 0)
		snprintf(out, outlen, "%s", s);
	json_decref(r);
	return k;
}

static int check_running(struct guest *g, char *msg, size_t len)
{
	char st[64] = "";
	int k = exec_string(g, "query-status", NULL, "status", st, sizeof(st), msg, len);

	if (k < 0)
		return k;
	if (!strcmp(st, "running"))
		return 0;
	if (!strcmp(st, "paused") || !strcmp(st, "prelaunch"))
		return failf(msg, len, -EBUSY,
			     "the guest is paused (status '%s'): uffsnapd snapshots running guests "
			     "and never changes a guest's run state", st);
	if (!strcmp(st, "inmigrate"))
		return failf(msg, len, -EBUSY, "QEMU is waiting for an incoming migration: "
			     "there is no guest to snapshot yet");
	if (!strcmp(st, "postmigrate") || !strcmp(st, "finish-migrate"))
		return failf(msg, len, -EBUSY, "the guest was migrated away (status '%s')", st);
	return failf(msg, len, -EBUSY, "the guest is not running (status '%s')", st);
}

static int check_not_migrating(struct guest *g, char *msg, size_t len)
{
	static const char *const idle[] = {"none", "completed", "failed", "cancelled"};
	json_t *r = NULL;
	int k = qmp_exec(g->q, "query-migrate", NULL, -1, &r, msg, len);
	const char *st = k < 0 ? NULL : json_string_value(json_object_get(r, "status"));

	for (size_t i = 0; st && i < sizeof(idle) / sizeof(idle[0]); i++)
		if (!strcmp(st, idle[i]))
			st = NULL;
	if (k >= 0 && st)
		k = failf(msg, len, -EBUSY, "the guest is already migrating (migration status "
			  "'%s': a migration or QEMU's own snapshot is running)", st);
	json_decref(r);
	return k;
}

/* Where -object ...,id=ID... stands among QEMU's arguments (creation order), or INT_MAX. */
static int object_order(json_t *argv, const char *id)
{
	char kv[128], js[160];
	size_t i;
	json_t *a;

	snprintf(kv, sizeof(kv), "id=%s", id);
	snprintf(js, sizeof(js), "\"id\":\"%s\"", id);
	json_array_foreach(argv, i, a) {
		const char *s = json_string_value(a), *p;

		if (!s || i == 0 || strcmp(json_string_value(json_array_get(argv, i - 1)), "-object"))
			continue;
		if (strstr(s, js))
			return (int)i;
		for (p = strstr(s, kv); p; p = strstr(p + 1, kv))
			if ((p == s || p[-1] == ',') && (p[strlen(kv)] == ',' || !p[strlen(kv)]))
				return (int)i;
	}
	return INT_MAX;
}

static int read_backends(struct guest *g, char *msg, size_t len)
{
	json_t *mem = NULL, *objs = NULL, *m, *o;
	size_t i, j;
	int k = qmp_exec(g->q, "query-memdev", NULL, -1, &mem, msg, len);

	if (k >= 0) {
		json_t *a = json_pack("{s:s}", "path", "/objects");

		k = qmp_exec(g->q, "qom-list", a, -1, &objs, msg, len);
		json_decref(a);
	}
	if (k >= 0 && !json_array_size(mem))
		k = failf(msg, len, -ENOENT, "QEMU reports no memory backend");
	if (k >= 0 && !(g->b = calloc(json_array_size(mem), sizeof(*g->b))))
		k = failf(msg, len, -ENOMEM, "out of memory");
	json_array_foreach(mem, i, m) {
		const char *id = json_string_value(json_object_get(m, "id"));
		struct backend *b;

		if (k < 0)
			break;
		if (!id) {
			k = failf(msg, len, -EINVAL, "a memory backend has no id");
			break;
		}
		b = &g->b[g->nb++];
		b->id = strdup(id);
		b->size = json_integer_value(json_object_get(m, "size"));
		b->order = object_order(g->argv, id);
		json_array_foreach(objs, j, o) {
			const char *n = json_string_value(json_object_get(o, "name"));
			const char *t = json_string_value(json_object_get(o, "type"));

			if (n && t && !strcmp(n, id) && !strncmp(t, "child<", 6))
				b->type = strndup(t + 6, strcspn(t + 6, ">"));
		}
		if (!b->type)
			b->type = strdup("memory-backend");
		if (!json_is_true(json_object_get(m, "share"))) {
			k = failf(msg, len, -EINVAL,
				  "memory backend '%s' (%s) is not shared: its guest's writes go to "
				  "pages only QEMU sees. Start QEMU with share=on on it: -object "
				  "memory-backend-memfd,id=%s,size=...,share=on (or memory-backend-file "
				  "with share=on on tmpfs or hugetlbfs)%s", id, b->type, id,
				  strcmp(id, "pc.ram") ? ""
						       : " and -machine memory-backend=ID instead of "
							 "plain -m");
			break;
		}
		if (!strcmp(b->type, "memory-backend-file")) {
			char path[PATH_MAX], qpath[256];
			json_t *a;

			snprintf(qpath, sizeof(qpath), "/objects/%s", id);
			a = json_pack("{s:s, s:s}", "path", qpath, "property", "mem-path");
			k = exec_string(g, "qom-get", a, NULL, path, sizeof(path), msg, len);
			json_decref(a);
			if (k >= 0)
				b->mem_path = strdup(path);
		}
	}
	json_decref(mem);
	json_decref(objs);
	return k;
}

struct mapping {
	uint64_t start, end, off, ino;
	char path[PATH_MAX];
	bool used;
};

/* QEMU's shared writable mappings, adjacent pieces of one file joined. */
static int read_shared_maps(pid_t pid, struct mapping **ret, size_t *n)
{
	char path[64], line[PATH_MAX + 256];
	struct mapping *v = NULL;
	size_t cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	*n = 0;
	while (fgets(line, sizeof(line), f)) {
		struct mapping m = {0};
		char perms[8], dev[16];
		int pos = 0;

		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %15s %" SCNu64 " %n",
			   &m.start, &m.end, perms, &m.off, dev, &m.ino, &pos) < 6)
			continue;
		if (strcmp(perms, "rw-s") || !m.ino)
			continue;
		snprintf(m.path, sizeof(m.path), "%s", line + pos);
		if (*n && v[*n - 1].ino == m.ino && v[*n - 1].end == m.start &&
		    v[*n - 1].off + (v[*n - 1].end - v[*n - 1].start) == m.off) {
			v[*n - 1].end = m.end;
			continue;
		}
		if (*n == cap) {
			struct mapping *nv = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));

			if (!nv) {
				free(v);
				fclose(f);
				return -ENOMEM;
			}
			v = nv;
		}
		v[(*n)++] = m;
	}
	fclose(f);
	*ret = v;
	return 0;
}

/* How a memfd backend (or memory-backend-ram,share=on: shared anonymous) shows in maps. */
static bool anonymous_shared(const struct mapping *m)
{
	return !strncmp(m->path, "/memfd:", 7) || !strncmp(m->path, "/dev/zero", 9);
}

static bool same_file(const char *maps_path, const char *mem_path)
{
	size_t n = strlen(mem_path);

	return !strncmp(maps_path, mem_path, n) &&
	       (!maps_path[n] || !strcmp(maps_path + n, " (deleted)"));
}

/*
 * Each backend's mapping: a file backend's by its path; the others (memfd, shared anonymous)
 * look alike in maps, so by size, and among backends of one size by creation order: QEMU
 * creates -objects in command-line order, and their inodes are numbered as created.
 */
static int find_mappings(struct guest *g, char *msg, size_t len)
{
	struct mapping *m = NULL;
	size_t nm = 0;
	int k = read_shared_maps(g->pid, &m, &nm);

	if (k < 0)
		return failf(msg, len, k, "cannot read QEMU's mappings: %s", strerror(-k));
	for (size_t i = 0; i < g->nb && k >= 0; i++) {
		struct backend *b = &g->b[i];
		struct mapping *best = NULL;

		for (size_t j = 0; j < nm; j++) {
			struct mapping *c = &m[j];

			if (c->used || c->off || c->end - c->start != b->size)
				continue;
			if (b->mem_path ? !same_file(c->path, b->mem_path) : !anonymous_shared(c))
				continue;
			if (!b->mem_path) { /* the n-th of its size by order is the n-th by inode */
				size_t before = 0, older = 0;

				for (size_t x = 0; x < g->nb; x++)
					before += !g->b[x].mem_path && g->b[x].size == b->size &&
						  !g->b[x].addr && g->b[x].order < b->order;
				for (size_t y = 0; y < nm; y++)
					older += !m[y].used && !m[y].off && anonymous_shared(&m[y]) &&
						 m[y].end - m[y].start == b->size &&
						 m[y].ino < c->ino;
				if (before != older)
					continue;
			}
			best = c;
			break;
		}
		if (!best)
			k = failf(msg, len, -ENOENT,
				  "cannot find memory backend '%s' (%" PRIu64 " bytes) among QEMU's "
				  "shared mappings", b->id, b->size);
		else {
			best->used = true;
			b->addr = best->start;
		}
	}
	free(m);
	return k;
}

static int cmp_span(const void *a, const void *b)
{
	const struct snap_span *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static int read_cmdline(struct guest *g, char *msg, size_t len)
{
	char path[64], *buf = NULL;
	size_t cap = 0, n = 0;
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/exe", g->pid);
	r = readlink(path, g->binary, sizeof(g->binary) - 1);
	g->binary[r > 0 ? r : 0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", g->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return failf(msg, len, -errno, "cannot read QEMU's command line: %m");
	do {
		if (cap - n < 4096) {
			char *nb = realloc(buf, cap += 65536);

			if (!nb) {
				r = -1;
				errno = ENOMEM;
				break;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r > 0)
			n += (size_t)r;
	} while (r > 0);
	close(fd);
	g->argv = json_array();
	if (buf)
		buf[n] = 0; /* the last argument's NUL may be missing if it was cut */
	for (size_t i = 0; r == 0 && g->argv && i < n; i += strlen(buf + i) + 1)
		json_array_append_new(g->argv, json_string(buf + i));
	free(buf);
	if (r < 0 || !g->argv)
		return failf(msg, len, -ENOMEM, "cannot read QEMU's command line");
	return 0;
}

static int probe(struct guest *g, char *msg, size_t len)
{
	char type[sizeof(g->gs->machine)] = "";
	json_t *a = json_pack("{s:s, s:s}", "path", "/machine", "property", "type");
	int k = check_running(g, msg, len);

	if (k >= 0)
		k = check_not_migrating(g, msg, len);
	if (k >= 0)
		k = read_cmdline(g, msg, len);
	if (k >= 0)
		k = read_backends(g, msg, len);
	if (k >= 0)
		k = exec_string(g, "qom-get", a, NULL, type, sizeof(type), msg, len);
	json_decref(a);
	if (k >= 0) { /* "pc-i440fx-7.2-machine": the -machine name is without the suffix */
		size_t n = strlen(type);

		if (n > 8 && !strcmp(type + n - 8, "-machine"))
			type[n - 8] = 0;
		snprintf(g->gs->machine, sizeof(g->gs->machine), "%s", type);
		k = find_mappings(g, msg, len);
	}
	if (k >= 0 && !(g->scope = calloc(g->nb, sizeof(*g->scope))))
		k = failf(msg, len, -ENOMEM, "out of memory");
	for (size_t i = 0; k >= 0 && i < g->nb; i++) {
		g->scope[i] = (struct snap_span){g->b[i].addr, g->b[i].addr + g->b[i].size};
		g->gs->ram_bytes += g->b[i].size;
	}
	if (k >= 0)
		qsort(g->scope, g->nb, sizeof(*g->scope), cmp_span);
	g->gs->backends = g->nb;
	return k;
}

static json_t *cap(const char *name, bool on)
{
	return json_pack("{s:s, s:b}", "capability", name, "state", on);
}

/* Sets x-ignore-shared and events on, remembering what they were. */
static int set_caps(struct guest *g, char *msg, size_t len)
{
	json_t *cur = NULL, *c, *set;
	size_t i;
	int k = qmp_exec(g->q, "query-migrate-capabilities", NULL, -1, &cur, msg, len);

	if (k < 0)
		return k;
	g->caps = json_array();
	json_array_foreach(cur, i, c) {
		const char *n = json_string_value(json_object_get(c, "capability"));

		if (n && (!strcmp(n, "x-ignore-shared") || !strcmp(n, "events")))
			json_array_append(g->caps, c);
	}
	json_decref(cur);
	if (json_array_size(g->caps)) { /* the guardian puts them back if we die */
		json_t *u = json_pack("{s:s, s:s, s:{s:O}}", "execute", "migrate-set-capabilities",
				      "id", "guardian-undo", "arguments", "capabilities", g->caps);
		char *line = u ? json_dumps(u, JSON_COMPACT) : NULL;
		char buf[4096];

		if (line && snprintf(buf, sizeof(buf), "%s\n", line) < (int)sizeof(buf))
			guardian_undo(g->guard, buf);
		free(line);
		json_decref(u);
	}
	set = json_pack("{s:[o, o]}", "capabilities", cap("x-ignore-shared", true),
			cap("events", true));
	k = qmp_exec(g->q, "migrate-set-capabilities", set, -1, NULL, msg, len);
	json_decref(set);
	if (k < 0)
		failf(msg, len, k, "QEMU refused the migration capability x-ignore-shared: %.300s",
		      msg);
	return k;
}

static void restore_caps(struct guest *g)
{
	char msg[256];
	json_t *set;

	if (!g->caps || !json_array_size(g->caps))
		return;
	set = json_pack("{s:O}", "capabilities", g->caps);
	qmp_exec(g->q, "migrate-set-capabilities", set, -1, NULL, msg, sizeof(msg));
	json_decref(set);
}

/* Reads the device state from the pipe until QEMU closes it. */
static int read_devstate(struct guest *g, int fd, char *msg, size_t len)
{
	size_t cap = 0;

	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
				      {.fd = g->cancel_fd, .events = POLLIN}};
		ssize_t n;

		if (poll(p, g->cancel_fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return failf(msg, len, -errno, "poll: %m");
		}
		if (g->cancel_fd >= 0 && p[1].revents)
			return failf(msg, len, -ECANCELED, "cancelled while saving the device state");
		if (cap - g->devlen < 65536) {
			uint8_t *nb;

			if (cap >= DEVSTATE_MAX)
				return failf(msg, len, -EFBIG, "QEMU's device state exceeds %llu MiB",
					     DEVSTATE_MAX >> 20);
			nb = realloc(g->dev, cap = cap ? 2 * cap : 1 << 20);
			if (!nb)
				return failf(msg, len, -ENOMEM, "out of memory for the device state");
			g->dev = nb;
		}
		n = read(fd, g->dev + g->devlen, cap - g->devlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return failf(msg, len, -errno, "cannot read the device state: %m");
		if (n == 0)
			return 0;
		g->devlen += (size_t)n;
	}
}

/* The migration of the device state ended: "completed", or a failure with QEMU's reason. */
static int wait_migration(struct guest *g, char *msg, size_t len)
{
	for (;;) {
		json_t *ev = NULL, *r = NULL;
		const char *st;
		int k = qmp_wait_event(g->q, "MIGRATION", 60000, &ev, msg, len);

		if (k < 0)
			return k;
		st = json_string_value(json_object_get(json_object_get(ev, "data"), "status"));
		if (st && !strcmp(st, "completed")) {
			json_decref(ev);
			g->migrating = false;
			return 0;
		}
		if (st && (!strcmp(st, "failed") || !strcmp(st, "cancelled"))) {
			const char *why;

			json_decref(ev);
			g->migrating = false;
			qmp_exec(g->q, "query-migrate", NULL, -1, &r, msg, len);
			why = json_string_value(json_object_get(r, "error-desc"));
			k = failf(msg, len, -EIO, "QEMU could not save the device state: %s",
				  why ? why : "migration failed");
			json_decref(r);
			return k;
		}
		json_decref(ev);
	}
}

static int hook_before_instant(void *ctx, char *msg, size_t len)
{
	struct guest *g = ctx;
	json_t *a;
	int p[2], k = set_caps(g, msg, len);

	if (k < 0)
		return k;
	if (pipe2(p, O_CLOEXEC) < 0)
		return failf(msg, len, -errno, "pipe: %m");
	a = json_pack("{s:s}", "fdname", DEVSTATE_FDNAME);
	k = qmp_exec(g->q, "getfd", a, p[1], NULL, msg, len);
	json_decref(a);
	close(p[1]); /* QEMU has its own: its close is our end of file */
	if (k >= 0) {
		guardian_stopping(g->guard);
		g->t_stop = sys_now_ns();
		k = qmp_exec(g->q, "stop", NULL, -1, NULL, msg, len);
		g->stopped = k >= 0;
		if (!g->stopped)
			guardian_resumed(g->guard);
		else
			pause_at(g, "guest-stopped");
	}
	if (k >= 0) {
		a = json_pack("{s:s}", "uri", "fd:" DEVSTATE_FDNAME);
		g->t_migrate = sys_now_ns();
		k = qmp_exec(g->q, "migrate", a, -1, NULL, msg, len);
		g->migrating = k >= 0;
		json_decref(a);
	}
	if (k >= 0)
		k = read_devstate(g, p[0], msg, len);
	close(p[0]);
	if (k >= 0)
		k = wait_migration(g, msg, len);
	if (k >= 0) {
		g->gs->devstate_ns = sys_now_ns() - g->t_migrate;
		g->gs->devstate_bytes = g->devlen;
		pause_at(g, "guest-saved");
	}
	return k;
}

static int hook_meta(void *ctx, json_t *meta)
{
	struct guest *g = ctx;
	json_t *bs = json_array(), *guest;

	for (size_t i = 0; bs && i < g->nb; i++) {
		char addr[24];

		snprintf(addr, sizeof(addr), "0x%" PRIx64, g->b[i].addr);
		json_array_append_new(bs, json_pack("{s:s, s:s, s:I, s:s, s:b}", "id", g->b[i].id,
						    "type", g->b[i].type, "size",
						    (json_int_t)g->b[i].size, "addr", addr,
						    "share", 1));
	}
	guest = json_pack("{s:s, s:s, s:s, s:s, s:O, s:o, s:{s:I, s:I}}", "hypervisor", "qemu",
			  "qemu_version", g->gs->qemu_version, "machine", g->gs->machine,
			  "binary", g->binary, "argv", g->argv, "backends", bs, "devstate",
			  "size", (json_int_t)g->devlen, "crc32c",
			  (json_int_t)img_crc32c(0, g->dev, g->devlen));
	if (!guest)
		return -ENOMEM;
	return json_object_set_new(meta, "guest", guest) < 0 ? -ENOMEM : 0;
}

static int hook_after_meta(void *ctx, struct img_writer *w)
{
	struct guest *g = ctx;

	return img_writer_devstate(w, g->dev, g->devlen);
}

/* `cont`; right after a migration QEMU refuses once or twice ("not finalized yet"). */
static int resume(struct guest *g, char *msg, size_t len)
{
	int k = -EAGAIN;

	for (int i = 0; i < 200 && k < 0; i++) {
		k = qmp_exec(g->q, "cont", NULL, -1, NULL, msg, len);
		if (k == -EREMOTEIO && strstr(msg, "not finalized"))
			usleep(5000);
		else
			break;
	}
	if (k >= 0) {
		g->resumed = true;
		guardian_resumed(g->guard);
	}
	return k;
}

static void hook_at_instant(void *ctx)
{
	struct guest *g = ctx;
	char msg[256];

	if (g->stopped && resume(g, msg, sizeof(msg)) >= 0)
		g->gs->downtime_ns = sys_now_ns() - g->t_stop;
}

/* A cancelled migration is over once QEMU says so; until then it refuses `cont` and changes. */
static void cancel_migration(struct guest *g)
{
	char msg[256];
	json_t *ev = NULL;

	if (qmp_exec(g->q, "migrate_cancel", NULL, -1, NULL, msg, sizeof(msg)) < 0)
		return;
	for (int i = 0; i < 100; i++) {
		const char *st;

		if (qmp_wait_event(g->q, "MIGRATION", 10000, &ev, msg, sizeof(msg)) < 0)
			return;
		st = json_string_value(json_object_get(json_object_get(ev, "data"), "status"));
		if (st && (!strcmp(st, "cancelled") || !strcmp(st, "failed") ||
			   !strcmp(st, "completed"))) {
			json_decref(ev);
			break;
		}
		json_decref(ev);
	}
	g->migrating = false;
}

/* Whatever happened, the guest runs on: cancel a migration still running, `cont`. */
static void leave_running(struct guest *g, int k, struct snap_error *err)
{
	char msg[256];

	if (!snapshot_target_has_mm(g->pid)) { /* QEMU exited */
		if (k < 0)
			snprintf(err->msg, sizeof(err->msg),
				 "QEMU (pid %d) exited during the snapshot; the image is incomplete",
				 g->pid);
		return;
	}
	qmp_set_cancel_fd(g->q, -1); /* a cancel ends our waits, never this */
	if (g->migrating)
		cancel_migration(g);
	if (g->stopped && !g->resumed) {
		if (resume(g, msg, sizeof(msg)) >= 0)
			g->gs->downtime_ns = sys_now_ns() - g->t_stop;
		else /* the guardian tries again when we exit */
			snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg),
				 "; and QEMU refused to resume the guest: %s", msg);
	}
	restore_caps(g);
}

static void guest_free(struct guest *g)
{
	for (size_t i = 0; i < g->nb; i++) {
		free(g->b[i].id);
		free(g->b[i].type);
		free(g->b[i].mem_path);
	}
	free(g->b);
	free(g->scope);
	free(g->dev);
	json_decref(g->argv);
	json_decref(g->caps);
}

int guest_snapshot(struct qmp *q, const struct snap_opts *opts, int cancel_fd,
		   struct img_sink *sink, struct guest_stats *gs, struct snap_stats *ss,
		   struct snap_error *err)
{
	struct guest g = {.q = q, .pid = qmp_peer_pid(q), .cancel_fd = cancel_fd, .gs = gs,
			  .test_pause = opts->test_pause};
	struct snap_hooks hooks = {.ctx = &g,
				   .before_instant = hook_before_instant,
				   .meta = hook_meta,
				   .after_meta = hook_after_meta,
				   .at_instant = hook_at_instant};
	struct snap_opts o = *opts;
	int k;

	*gs = (struct guest_stats){.pid = g.pid};
	snprintf(gs->qemu_version, sizeof(gs->qemu_version), "%s", qmp_version(q));
	qmp_set_cancel_fd(q, cancel_fd);
	k = probe(&g, err->msg, sizeof(err->msg));
	if (k >= 0 && (k = guardian_start(qmp_fd(q), &g.guard)) < 0)
		snprintf(err->msg, sizeof(err->msg), "cannot start the guardian: %s", strerror(-k));
	if (k >= 0) {
		o.scope = g.scope;
		o.nscope = g.nb;
		o.hooks = &hooks;
		o.quiet_at_instant = true; /* the vCPUs are stopped from before_instant on */
		k = snapshot_take(g.pid, &o, sink, ss, err);
		leave_running(&g, k, err);
	}
	guardian_free(g.guard);
	guest_free(&g);
	return k;
}

json_t *guest_stats_json(const struct guest_stats *gs)
{
	return json_pack("{s:i, s:s, s:s, s:i, s:I, s:I, s:I, s:I}", "pid", gs->pid,
			 "qemu_version", gs->qemu_version, "machine", gs->machine, "backends",
			 (int)gs->backends, "ram_bytes", (json_int_t)gs->ram_bytes, "downtime_ns",
			 (json_int_t)gs->downtime_ns, "devstate_ns", (json_int_t)gs->devstate_ns,
			 "devstate_bytes", (json_int_t)gs->devstate_bytes);
}
