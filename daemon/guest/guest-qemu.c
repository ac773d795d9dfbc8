/* SPDX-License-Identifier: MIT */
/*
 * A QEMU guest through QMP (guest-qemu.h): what a snapshot and a migration both ask of it
 * before, around and after the guest's RAM is copied (../shared/QEMU.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/ustr.h"
#include "guest/guardian.h"
#include "guest/guest-qemu.h"
#include "qmp.h"
#include "uffsnap/image.h"

int guest_failf(char *msg, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return err;
}

/* Runs cmd and gives the "return" string member name (or the return itself if name is NULL). */
int guest_exec_string(struct guest *g, const char *cmd, json_t *args, const char *name, char *out,
		      size_t outlen, char *msg, size_t len)
{
	json_t *r = NULL;
	int k = qmp_exec(g->q, cmd, args, -1, &r, msg, len);
	const char *s = k < 0 ? NULL : json_string_value(name ? json_object_get(r, name) : r);

	if (k >= 0 && !s)
		k = guest_failf(msg, len, -EPROTO, "QMP %s: no %s in QEMU's answer", cmd,
				name ? name : "string");
	if (k >= 0)
		snprintf(out, outlen, "%s", s);
	json_decref(r);
	return k;
}

static int check_running(struct guest *g, char *msg, size_t len)
{
	char st[64] = "";
	int k = guest_exec_string(g, "query-status", NULL, "status", st, sizeof(st), msg, len);

	if (k < 0)
		return k;
	if (!strcmp(st, "running"))
		return 0;
	if (!strcmp(st, "paused") || !strcmp(st, "prelaunch"))
		return guest_failf(
		    msg, len, -EBUSY,
		    "the guest is paused (status '%s'): uffsnapd snapshots running guests "
		    "and never changes a guest's run state",
		    st);
	if (!strcmp(st, "inmigrate"))
		return guest_failf(msg, len, -EBUSY,
				   "QEMU is waiting for an incoming migration: "
				   "there is no guest to snapshot yet");
	if (!strcmp(st, "postmigrate") || !strcmp(st, "finish-migrate"))
		return guest_failf(msg, len, -EBUSY, "the guest was migrated away (status '%s')",
				   st);
	return guest_failf(msg, len, -EBUSY, "the guest is not running (status '%s')", st);
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
		k = guest_failf(msg, len, -EBUSY,
				"the guest is already migrating (migration status "
				"'%s': a migration or QEMU's own snapshot is running)",
				st);
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
	json_array_foreach(argv, i, a)
	{
		const char *s = json_string_value(a), *p;

		if (!s || i == 0 ||
		    strcmp(json_string_value(json_array_get(argv, i - 1)), "-object"))
			continue;
		if (strstr(s, js))
			return (int)i;
		for (p = strstr(s, kv); p; p = strstr(p + 1, kv))
			if ((p == s || p[-1] == ',') && (p[strlen(kv)] == ',' || !p[strlen(kv)]))
				return (int)i;
	}
	return INT_MAX;
}

int guest_read_backends(struct guest *g, char *msg, size_t len)
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
		k = guest_failf(msg, len, -ENOENT, "QEMU reports no memory backend");
	if (k >= 0 && !(g->b = calloc(json_array_size(mem), sizeof(*g->b))))
		k = guest_failf(msg, len, -ENOMEM, "out of memory");
	json_array_foreach(mem, i, m)
	{
		const char *id = json_string_value(json_object_get(m, "id"));
		struct backend *b;

		if (k < 0)
			break;
		if (!id) {
			k = guest_failf(msg, len, -EINVAL, "a memory backend has no id");
			break;
		}
		b = &g->b[g->nb++];
		b->id = strdup(id);
		b->size = json_integer_value(json_object_get(m, "size"));
		b->order = object_order(g->argv, id);
		json_array_foreach(objs, j, o)
		{
			const char *n = json_string_value(json_object_get(o, "name"));
			const char *t = json_string_value(json_object_get(o, "type"));

			if (n && t && !strcmp(n, id) && !strncmp(t, "child<", 6))
				b->type = strndup(t + 6, strcspn(t + 6, ">"));
		}
		if (!b->type)
			b->type = strdup("memory-backend");
		if (!json_is_true(json_object_get(m, "share"))) {
			k = guest_failf(
			    msg, len, -EINVAL,
			    "memory backend '%s' (%s) is not shared: its guest's writes go to "
			    "pages only QEMU sees. Start QEMU with share=on on it: -object "
			    "memory-backend-memfd,id=%s,size=...,share=on (or memory-backend-file "
			    "with share=on on tmpfs or hugetlbfs)%s",
			    id, b->type, id,
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
			k = guest_exec_string(g, "qom-get", a, NULL, path, sizeof(path), msg, len);
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
		return guest_failf(msg, len, k, "cannot read QEMU's mappings: %s", strerror(-k));
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
					older +=
					    !m[y].used && !m[y].off && anonymous_shared(&m[y]) &&
					    m[y].end - m[y].start == b->size && m[y].ino < c->ino;
				if (before != older)
					continue;
			}
			best = c;
			break;
		}
		if (!best)
			k = guest_failf(msg, len, -ENOENT,
					"cannot find memory backend '%s' (%" PRIu64
					" bytes) among QEMU's "
					"shared mappings",
					b->id, b->size);
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
	long bad = -1; /* the first argument that is not UTF-8 */
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/exe", g->pid);
	r = readlink(path, g->binary, sizeof(g->binary) - 1);
	g->binary[r > 0 ? r : 0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", g->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return guest_failf(msg, len, -errno, "cannot read QEMU's command line: %m");
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
	for (size_t i = 0, a = 0; r == 0 && g->argv && bad < 0 && i < n;
	     i += strlen(buf + i) + 1, a++)
		if (ustr_valid(buf + i))
			json_array_append_new(g->argv, json_string(buf + i));
		else
			bad = (long)a;
	free(buf);
	/* `uffsnapctl qemu restore` runs QEMU again with exactly these: no stand-in will do. */
	if (bad >= 0)
		return guest_failf(msg, len, -EILSEQ, "QEMU's argument %ld is not UTF-8: %s", bad,
				   "the image could not record it for a restore");
	if (r < 0 || !g->argv)
		return guest_failf(msg, len, -ENOMEM, "cannot read QEMU's command line");
	if (!ustr_valid(g->binary))
		return guest_failf(msg, len, -EILSEQ, "QEMU's executable's path is not UTF-8: %s",
				   "the image could not record it for a restore");
	return 0;
}

int guest_read_machine(struct guest *g, char *msg, size_t len)
{
	char type[sizeof(g->gs->machine)] = "";
	json_t *a = json_pack("{s:s, s:s}", "path", "/machine", "property", "type");
	int k = guest_exec_string(g, "qom-get", a, NULL, type, sizeof(type), msg, len);
	size_t n = strlen(type);

	json_decref(a);
	/* "pc-i440fx-7.2-machine": the -machine name is without the suffix */
	if (n > 8 && !strcmp(type + n - 8, "-machine"))
		type[n - 8] = 0;
	if (k >= 0)
		snprintf(g->gs->machine, sizeof(g->gs->machine), "%s", type);
	return k;
}

int guest_probe(struct guest *g, char *msg, size_t len)
{
	int k = check_running(g, msg, len);

	if (k >= 0)
		k = check_not_migrating(g, msg, len);
	if (k >= 0)
		k = read_cmdline(g, msg, len);
	if (k >= 0)
		k = guest_read_backends(g, msg, len);
	if (k >= 0)
		k = guest_read_machine(g, msg, len);
	if (k >= 0)
		k = find_mappings(g, msg, len);
	if (k >= 0 && !(g->scope = calloc(g->nb, sizeof(*g->scope))))
		k = guest_failf(msg, len, -ENOMEM, "out of memory");
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

static bool in_list(const char *const *names, const char *n)
{
	for (; *names; names++)
		if (!strcmp(*names, n))
			return true;
	return false;
}

/* The command that puts the capabilities in g->caps back, for the guardian. */
static void undo_caps_on_death(struct guest *g)
{
	json_t *u = json_pack("{s:s, s:s, s:{s:O}}", "execute", "migrate-set-capabilities", "id",
			      "guardian-undo", "arguments", "capabilities", g->caps);
	char *line = u ? json_dumps(u, JSON_COMPACT) : NULL;
	char buf[4096];

	if (line && snprintf(buf, sizeof(buf), "%s\n", line) < (int)sizeof(buf))
		guardian_undo(g->guard, buf);
	free(line);
	json_decref(u);
}

int guest_set_caps(struct guest *g, const char *const *names, char *msg, size_t len)
{
	json_t *cur = NULL, *c, *set = json_array();
	size_t i;
	int k = qmp_exec(g->q, "query-migrate-capabilities", NULL, -1, &cur, msg, len);

	if (k < 0 || !set) {
		json_decref(set);
		json_decref(cur);
		return k < 0 ? k : -ENOMEM;
	}
	json_decref(g->caps);
	g->caps = json_array();
	json_array_foreach(cur, i, c)
	{
		const char *n = json_string_value(json_object_get(c, "capability"));

		if (n && in_list(names, n))
			json_array_append(g->caps, c);
	}
	json_decref(cur);
	if (json_array_size(g->caps)) /* the guardian puts them back if we die */
		undo_caps_on_death(g);
	for (const char *const *n = names; *n; n++)
		json_array_append_new(set, cap(*n, true));
	c = json_pack("{s:o}", "capabilities", set);
	k = qmp_exec(g->q, "migrate-set-capabilities", c, -1, NULL, msg, len);
	json_decref(c);
	if (k < 0)
		guest_failf(msg, len, k,
			    "QEMU refused the migration capabilities it needs (%s...): "
			    "%.300s",
			    names[0], msg);
	return k;
}

void guest_restore_caps(struct guest *g)
{
	char msg[256];
	json_t *set;

	if (!g->caps || !json_array_size(g->caps))
		return;
	set = json_pack("{s:O}", "capabilities", g->caps);
	qmp_exec(g->q, "migrate-set-capabilities", set, -1, NULL, msg, sizeof(msg));
	json_decref(set);
}

/* `cont`; right after a migration QEMU refuses once or twice ("not finalized yet"). */
int guest_resume(struct guest *g, char *msg, size_t len)
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

/* A cancelled migration is over once QEMU says so; until then it refuses `cont` and changes. */
void guest_cancel_migration(struct guest *g)
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

void guest_state_free(struct guest *g)
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
json_t *guest_meta_json(const struct guest *g, bool devstate)
{
	json_t *bs = json_array(), *guest;

	for (size_t i = 0; bs && i < g->nb; i++) {
		char addr[24];

		snprintf(addr, sizeof(addr), "0x%" PRIx64, g->b[i].addr);
		json_array_append_new(bs, json_pack("{s:s, s:s, s:I, s:s, s:b}", "id", g->b[i].id,
						    "type", g->b[i].type, "size",
						    (json_int_t)g->b[i].size, "addr", addr, "share",
						    1));
	}
	guest = json_pack("{s:s, s:s, s:s, s:s, s:O, s:o}", "hypervisor", "qemu", "qemu_version",
			  g->gs->qemu_version, "machine", g->gs->machine, "binary", g->binary,
			  "argv", g->argv, "backends", bs);
	if (guest && devstate)
		json_object_set_new(guest, "devstate",
				    json_pack("{s:I, s:I}", "size", (json_int_t)g->devlen, "crc32c",
					      (json_int_t)img_crc32c(0, g->dev, g->devlen)));
	return guest;
}
