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
#include "guest/guest-qemu.h"
#include "qmp.h"
#include "sys/clock.h"
#include "uffsnap/image.h"

/* The device state is a few MiB; beyond this, something else is being sent. */
#define DEVSTATE_MAX (1ull << 30)
#define DEVSTATE_FDNAME "uffsnap-devstate"

static void pause_at(const struct guest *g, const char *point)
{
	if (g->test_pause)
		g->test_pause(point);
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
			return guest_failf(msg, len, -errno, "poll: %m");
		}
		if (g->cancel_fd >= 0 && p[1].revents)
			return guest_failf(msg, len, -ECANCELED,
					   "cancelled while saving the device state");
		if (cap - g->devlen < 65536) {
			uint8_t *nb;

			if (cap >= DEVSTATE_MAX)
				return guest_failf(msg, len, -EFBIG,
						   "QEMU's device state exceeds %llu MiB",
						   DEVSTATE_MAX >> 20);
			nb = realloc(g->dev, cap = cap ? 2 * cap : 1 << 20);
			if (!nb)
				return guest_failf(msg, len, -ENOMEM,
						   "out of memory for the device state");
			g->dev = nb;
		}
		n = read(fd, g->dev + g->devlen, cap - g->devlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return guest_failf(msg, len, -errno, "cannot read the device state: %m");
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
			k = guest_failf(msg, len, -EIO, "QEMU could not save the device state: %s",
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
	static const char *const caps[] = {"x-ignore-shared", "events", NULL};
	int p[2], k = guest_set_caps(g, caps, msg, len);

	if (k < 0)
		return k;
	if (pipe2(p, O_CLOEXEC) < 0)
		return guest_failf(msg, len, -errno, "pipe: %m");
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
	json_t *guest = guest_meta_json(ctx, true);

	if (!guest)
		return -ENOMEM;
	return json_object_set_new(meta, "guest", guest) < 0 ? -ENOMEM : 0;
}

static int hook_after_meta(void *ctx, struct img_writer *w)
{
	struct guest *g = ctx;

	return img_writer_devstate(w, g->dev, g->devlen);
}

static void hook_at_instant(void *ctx)
{
	struct guest *g = ctx;
	char msg[256];

	if (g->stopped && guest_resume(g, msg, sizeof(msg)) >= 0)
		g->gs->downtime_ns = sys_now_ns() - g->t_stop;
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
		guest_cancel_migration(g);
	if (g->stopped && !g->resumed) {
		if (guest_resume(g, msg, sizeof(msg)) >= 0)
			g->gs->downtime_ns = sys_now_ns() - g->t_stop;
		else /* the guardian tries again when we exit */
			snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg),
				 "; and QEMU refused to resume the guest: %s", msg);
	}
	guest_restore_caps(g);
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
	k = guest_probe(&g, err->msg, sizeof(err->msg));
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
	guest_state_free(&g);
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
