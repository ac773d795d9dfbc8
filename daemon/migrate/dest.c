/* SPDX-License-Identifier: MIT */
/* The destination QEMU of a migration (dest.h), through QMP (../shared/QEMU.md). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "guest/guest-qemu.h"
#include "migrate/dest.h"
#include "qmp.h"

struct mdest {
	struct guest g;
	struct guest_stats gs;
	int *fds; /* per backend, its mem-path opened */
	bool incoming;
	bool resumed, failed;
	int64_t resumed_ns, stopped_ns;
	char failed_why[256];
};

/* Each backend a file we can write, at least as long as the backend. */
static int open_files(struct mdest *d, char *msg, size_t len)
{
	d->fds = calloc(d->g.nb, sizeof(*d->fds));
	if (!d->fds)
		return -ENOMEM;
	for (size_t i = 0; i < d->g.nb; i++)
		d->fds[i] = -EBADF;
	for (size_t i = 0; i < d->g.nb; i++) {
		const struct backend *b = &d->g.b[i];
		struct stat st;

		if (!b->mem_path)
			return guest_failf(
			    msg, len, -EINVAL,
			    "the destination's memory backend '%s' is %s: the "
			    "receiver writes guest RAM into files; start QEMU with "
			    "-object memory-backend-file,id=%s,size=...,mem-path=FILE,"
			    "share=on (on tmpfs or hugetlbfs)",
			    b->id, b->type, b->id);
		d->fds[i] = open(b->mem_path, O_RDWR | O_CLOEXEC);
		if (d->fds[i] < 0)
			return guest_failf(msg, len, -errno, "cannot open '%s' (backend '%s'): %m",
					   b->mem_path, b->id);
		if (fstat(d->fds[i], &st) < 0 || (uint64_t)st.st_size < b->size)
			return guest_failf(msg, len, -EINVAL,
					   "'%s' (backend '%s') is shorter than the backend",
					   b->mem_path, b->id);
	}
	return 0;
}

int mdest_open(const char *qmp_path, struct mdest **ret, char *msg, size_t len)
{
	struct mdest *d = calloc(1, sizeof(*d));
	char st[64] = "";
	int k;

	if (!d)
		return -ENOMEM;
	d->g.gs = &d->gs;
	d->g.cancel_fd = -1;
	k = qmp_open_path(qmp_path, 30000, &d->g.q, msg, len);
	if (k >= 0)
		k = guest_exec_string(&d->g, "query-status", NULL, "status", st, sizeof(st), msg,
				      len);
	if (k >= 0 && strcmp(st, "inmigrate"))
		k = guest_failf(
		    msg, len, -EBUSY,
		    "the destination QEMU is not waiting for a migration (status '%s'): "
		    "start it with -incoming defer",
		    st);
	if (k >= 0)
		k = guest_read_backends(&d->g, msg, len);
	if (k >= 0)
		k = guest_read_machine(&d->g, msg, len);
	if (k >= 0)
		k = open_files(d, msg, len);
	if (k < 0) {
		mdest_free(d);
		return k;
	}
	*ret = d;
	return 0;
}

void mdest_free(struct mdest *d)
{
	if (!d)
		return;
	for (size_t i = 0; d->fds && i < d->g.nb; i++)
		if (d->fds[i] >= 0)
			close(d->fds[i]);
	free(d->fds);
	qmp_close(d->g.q);
	guest_state_free(&d->g);
	free(d);
}

/* The destination's backend named id, or NULL. */
static ssize_t find_backend(const struct mdest *d, const char *id)
{
	for (size_t i = 0; id && i < d->g.nb; i++)
		if (!strcmp(d->g.b[i].id, id))
			return (ssize_t)i;
	return -1;
}

int mdest_check_meta(struct mdest *d, const char *json, struct apply *a, char *msg, size_t len)
{
	json_t *meta = json_loads(json, 0, NULL), *guest = json_object_get(meta, "guest"), *b;
	json_t *bs = json_object_get(guest, "backends");
	const char *machine = json_string_value(json_object_get(guest, "machine"));
	struct apply_backend *ab = calloc(d->g.nb + 1, sizeof(*ab));
	size_t i;
	int k = 0;

	if (!ab)
		k = -ENOMEM;
	else if (!guest || !machine)
		k = guest_failf(
		    msg, len, -EINVAL,
		    "the stream is not a QEMU guest's RAM (its "
		    "metadata has no guest): send it with uffsnapd --qemu ... --migrate");
	else if (strcmp(machine, d->gs.machine))
		k = guest_failf(msg, len, -EINVAL,
				"the guest does not match the destination QEMU: "
				"machine '%s' there, '%s' here",
				machine, d->gs.machine);
	else if (json_array_size(bs) != d->g.nb)
		k = guest_failf(msg, len, -EINVAL,
				"the guest does not match the destination QEMU: "
				"%zu memory backends there, %zu here",
				json_array_size(bs), d->g.nb);
	json_array_foreach(bs, i, b)
	{
		const char *id = json_string_value(json_object_get(b, "id"));
		const char *addr = json_string_value(json_object_get(b, "addr"));
		uint64_t size = json_integer_value(json_object_get(b, "size"));
		ssize_t j = find_backend(d, id);

		if (k < 0)
			break;
		if (j < 0 || !addr || d->g.b[j].size != size)
			k = guest_failf(
			    msg, len, -EINVAL,
			    "the guest does not match the destination QEMU: backend '%s' "
			    "of %" PRIu64 " bytes there, %s here",
			    id ? id : "?", size, j < 0 ? "none of that id" : "another size");
		else
			ab[i] = (struct apply_backend){
			    .addr = strtoull(addr, NULL, 16), .size = size, .fd = d->fds[j]};
	}
	if (k >= 0)
		k = apply_set_backends(a, ab, d->g.nb);
	free(ab);
	json_decref(meta);
	return k;
}

void mdest_instant_meta(struct mdest *d, const char *json)
{
	json_t *meta = json_loads(json, 0, NULL);
	json_t *m = json_object_get(json_object_get(meta, "guest"), "migration");

	d->stopped_ns = json_integer_value(json_object_get(m, "stopped_realtime_ns"));
	json_decref(meta);
}

/* The port QEMU listens on (query-migrate socket-address; QEMU picks one for port 0). */
static int listening_port(struct mdest *d, char *port, size_t plen, char *msg, size_t len)
{
	json_t *r = NULL;
	int k = qmp_exec(d->g.q, "query-migrate", NULL, -1, &r, msg, len);
	json_t *sa = json_array_get(json_object_get(r, "socket-address"), 0);
	const char *p = json_string_value(json_object_get(sa, "port"));

	if (k >= 0 && !p)
		k = guest_failf(msg, len, -EPROTO,
				"QEMU does not say which port it listens on: "
				"give --incoming HOST:PORT with a port");
	if (k >= 0)
		snprintf(port, plen, "%s", p);
	json_decref(r);
	return k;
}

int mdest_incoming(struct mdest *d, const char *bind, const char *advertise, char *uri,
		   size_t urilen, char *msg, size_t len)
{
	static const char *const caps[] = {"x-ignore-shared", "events", NULL};
	char u[160], port[16];
	json_t *a;
	int k = guest_set_caps(&d->g, caps, msg, len);

	snprintf(u, sizeof(u), "tcp:%s", bind);
	a = json_pack("{s:s}", "uri", u);
	if (k >= 0)
		k = qmp_exec(d->g.q, "migrate-incoming", a, -1, NULL, msg, len);
	json_decref(a);
	if (k < 0)
		return guest_failf(msg, len, k, "the destination QEMU cannot listen on %s: %.300s",
				   u, msg);
	d->incoming = true;
	k = listening_port(d, port, sizeof(port), msg, len);
	if (k >= 0 && strchr(advertise, ':'))
		snprintf(uri, urilen, "tcp:[%s]:%s", advertise, port);
	else if (k >= 0)
		snprintf(uri, urilen, "tcp:%s:%s", advertise, port);
	return k;
}

int mdest_fd(const struct mdest *d)
{
	return qmp_fd(d->g.q);
}

/* One event of QEMU's: the guest running, or its incoming migration failed. */
static void on_event(struct mdest *d, json_t *ev)
{
	const char *name = json_string_value(json_object_get(ev, "event"));
	const char *st = json_string_value(json_object_get(json_object_get(ev, "data"), "status"));
	json_t *ts = json_object_get(ev, "timestamp");

	if (name && !strcmp(name, "RESUME")) {
		d->resumed = true;
		d->resumed_ns = json_integer_value(json_object_get(ts, "seconds")) * 1000000000ll +
				json_integer_value(json_object_get(ts, "microseconds")) * 1000ll;
	} else if (name && !strcmp(name, "MIGRATION") && st && !strcmp(st, "failed")) {
		d->failed = true;
	}
}

int mdest_poll(struct mdest *d, char *msg, size_t len)
{
	json_t *ev = NULL;
	int k = qmp_wait_event(d->g.q, NULL, 0, &ev, msg, len);

	if (k == -ETIMEDOUT)
		return 0;
	if (k < 0)
		return guest_failf(msg, len, -EPIPE, "the destination QEMU exited");
	on_event(d, ev);
	json_decref(ev);
	if (d->failed)
		return guest_failf(msg, len, -EPIPE,
				   "the destination QEMU's incoming migration "
				   "failed");
	return 0;
}

int mdest_sync(struct mdest *d)
{
	for (size_t i = 0; i < d->g.nb; i++)
		if (fdatasync(d->fds[i]) < 0)
			return -errno;
	return 0;
}

int mdest_wait_running(struct mdest *d, int64_t *ret_resumed_ns, int64_t *ret_stopped_ns, char *msg,
		       size_t len)
{
	while (!d->resumed && !d->failed) {
		json_t *ev = NULL;
		int k = qmp_wait_event(d->g.q, NULL, -1, &ev, msg, len);

		if (k < 0)
			return guest_failf(msg, len, -EPIPE,
					   "the destination QEMU exited before "
					   "the guest ran (the source's migration failed?)");
		on_event(d, ev);
		json_decref(ev);
	}
	if (d->failed && !d->resumed)
		return guest_failf(msg, len, -EIO,
				   "the destination QEMU's incoming migration "
				   "failed");
	/* A later migration from here must carry the RAM again (x-ignore-shared off). */
	guest_restore_caps(&d->g);
	*ret_resumed_ns = d->resumed_ns;
	*ret_stopped_ns = d->stopped_ns;
	return 0;
}
