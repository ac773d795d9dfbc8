/* SPDX-License-Identifier: MIT */
/*
 * The source of a migration (source.h), in the order of ../shared/QEMU.md "Live migration with
 * RAM moved by someone else":
 *
 * 1. Over QMP, before anything is touched: the guest runs, does not migrate, its RAM is in
 *    shared backends found among QEMU's mappings (as for a snapshot: guest/guest-qemu.c).
 * 2. A pre-copy snapshot of that RAM only (engine/precopy.c, scoped) streams to the receiver
 *    while the guest runs: round 0 copies everything, later rounds what the guest wrote since.
 *    The receiver checks the first META against the destination QEMU and answers with the
 *    URI where that QEMU listens (STREAM.md INCOMING).
 * 3. When the last round is predicted to fit --downtime and rounds stopped halving it
 *    (engine/precopy.c rounds(); hook before_instant): QEMU's own
 *    migration to that URI with x-ignore-shared and pause-before-switchover; at status
 *    pre-switchover QEMU has stopped the vCPUs and waits.
 * 4. The final dirty round, copied with no thread held (quiet_at_instant: nothing writes the
 *    RAM of a stopped guest), the instant's META, the trailer; the stream ends when the
 *    receiver has written every page into the destination's backends and says so.
 * 5. `migrate-continue` (hook image_done, before the engine releases the dirty log): QEMU
 *    sends the device state, the destination starts by itself.
 *
 * Until 5 every failure cancels QEMU's migration and resumes the guest here (the guardian
 * does if we die); from 5 on the guest may run at the destination and is never resumed here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "guest/guardian.h"
#include "guest/guest-qemu.h"
#include "migrate/source.h"
#include "qmp.h"
#include "stream/sink.h"
#include "sys/clock.h"

/* Safety nets for a QEMU that stops answering, never expected to be reached. */
#define SWITCHOVER_WAIT_MS 600000
#define COMPLETE_WAIT_MS   600000

struct msrc {
	struct guest g;
	struct img_sink *sink;
	struct migrate_stats *ms;
	uint64_t t_paused; /* monotonic: pre-switchover seen */
};

static void pause_at(const struct msrc *m, const char *point)
{
	if (m->g.test_pause)
		m->g.test_pause(point);
}

/* QMP's event timestamp ({"seconds", "microseconds"}, the host's real-time clock) in ns. */
static int64_t event_ns(json_t *ev)
{
	json_t *ts = json_object_get(ev, "timestamp");

	return json_integer_value(json_object_get(ts, "seconds")) * 1000000000ll +
	       json_integer_value(json_object_get(ts, "microseconds")) * 1000ll;
}

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* QEMU's reason for a failed migration (query-migrate error-desc). */
static void why_failed(struct guest *g, const char *what, char *msg, size_t len)
{
	json_t *r = NULL;
	char m[256];
	const char *why = NULL;

	if (qmp_exec(g->q, "query-migrate", NULL, -1, &r, m, sizeof(m)) >= 0)
		why = json_string_value(json_object_get(r, "error-desc"));
	snprintf(msg, len, "QEMU's migration %s: %s", what, why ? why : "it failed");
	json_decref(r);
}

/* MIGRATION events until status want; *ret_ev (may be NULL) gets that event. */
static int wait_status(struct guest *g, const char *want, int timeout_ms, json_t **ret_ev,
		       char *msg, size_t len)
{
	for (;;) {
		json_t *ev = NULL;
		const char *st;
		int k = qmp_wait_event(g->q, "MIGRATION", timeout_ms, &ev, msg, len);

		if (k < 0)
			return k;
		st = json_string_value(json_object_get(json_object_get(ev, "data"), "status"));
		if (st && !strcmp(st, want)) {
			if (ret_ev)
				*ret_ev = ev;
			else
				json_decref(ev);
			return 0;
		}
		if (st && (!strcmp(st, "failed") || !strcmp(st, "cancelled"))) {
			json_decref(ev);
			g->migrating = false;
			why_failed(g, "to the destination QEMU failed", msg, len);
			return -EIO;
		}
		json_decref(ev);
	}
}

/* The stream failed (its fail fd woke a wait for QEMU): its reason into msg. */
static bool stream_failed(struct msrc *m, char *msg, size_t len)
{
	struct stream_error se;

	stream_sink_error(m->sink, &se);
	if (!se.msg[0])
		return false;
	snprintf(msg, len, "the stream failed while QEMU migrated: %s", se.msg);
	return true;
}

/* Step 3: QEMU migrates to the destination and stops the vCPUs at pre-switchover. */
static int hook_before_instant(void *ctx, char *msg, size_t len)
{
	static const char *const caps[] = {"x-ignore-shared", "events", "pause-before-switchover",
					   NULL};
	struct msrc *m = ctx;
	struct guest *g = &m->g;
	json_t *a, *ev = NULL;
	int k = stream_sink_incoming(m->sink, m->ms->uri, sizeof(m->ms->uri));

	if (k < 0 || stream_failed(m, msg, len))
		return k < 0 ? guest_failf(msg, len, k,
					   "the receiver never said where the "
					   "destination QEMU listens")
			     : -EIO;
	k = guest_set_caps(g, caps, msg, len);
	if (k < 0)
		return k;
	guardian_stopping(g->guard); /* QEMU stops the guest at the end of its migration */
	g->stopped = true;
	a = json_pack("{s:s}", "uri", m->ms->uri);
	g->t_migrate = sys_now_ns();
	k = qmp_exec(g->q, "migrate", a, -1, NULL, msg, len);
	json_decref(a);
	g->migrating = k >= 0;
	if (k == -ECANCELED && stream_failed(m, msg, len))
		return -EIO;
	if (k < 0)
		return guest_failf(msg, len, k, "QEMU refused to migrate to %s: %.300s", m->ms->uri,
				   msg);
	k = wait_status(g, "pre-switchover", SWITCHOVER_WAIT_MS, NULL, msg, len);
	if (k == -ECANCELED && stream_failed(m, msg, len))
		return -EIO;
	if (k < 0)
		return k;
	m->t_paused = sys_now_ns();
	m->ms->to_switchover_ns = m->t_paused - g->t_migrate;
	/* QEMU sent STOP before it paused (vm_stop, then pre-switchover): it is queued. */
	if (qmp_wait_event(g->q, "STOP", 0, &ev, msg, len) >= 0)
		m->ms->stop_realtime_ns = event_ns(ev);
	else
		m->ms->stop_realtime_ns = realtime_ns(); /* later than the stop: an upper bound */
	json_decref(ev);
	pause_at(m, "mig-switchover");
	return 0;
}

/* The `guest` member; the instant's META also says when the source stopped (downtime). */
static int hook_meta(void *ctx, json_t *meta)
{
	struct msrc *m = ctx;
	json_t *guest = guest_meta_json(&m->g, false);

	if (guest && m->ms->stop_realtime_ns)
		json_object_set_new(guest, "migration",
				    json_pack("{s:I, s:s}", "stopped_realtime_ns",
					      (json_int_t)m->ms->stop_realtime_ns, "uri",
					      m->ms->uri));
	if (!guest)
		return -ENOMEM;
	return json_object_set_new(meta, "guest", guest) < 0 ? -ENOMEM : 0;
}

/* QEMU's own figure for the downtime, once completed. */
static int64_t qemu_downtime(struct guest *g)
{
	json_t *r = NULL;
	char msg[256];
	int64_t d = -1;

	if (qmp_exec(g->q, "query-migrate", NULL, -1, &r, msg, sizeof(msg)) >= 0 &&
	    json_object_get(r, "downtime"))
		d = json_integer_value(json_object_get(r, "downtime"));
	json_decref(r);
	return d;
}

/*
 * Step 5 (hook image_done): the receiver holds every page; QEMU sends the device state. The
 * engine releases the dirty log only after this, out of the guest's downtime.
 */
static int hook_image_done(void *ctx, char *msg, size_t len)
{
	struct msrc *m = ctx;
	struct guest *g = &m->g;
	json_t *a = json_pack("{s:s}", "state", "pre-switchover"), *ev = NULL;
	uint64_t t0;
	int k;

	m->ms->final_ns = sys_now_ns() - m->t_paused;
	pause_at(m, "mig-continue");
	guardian_switching(g->guard); /* our death resumes the guest only before QEMU goes on */
	t0 = sys_now_ns();
	k = qmp_exec(g->q, "migrate-continue", a, -1, NULL, msg, len);
	json_decref(a);
	if (k < 0) {
		guardian_stopping(g->guard);
		return k;
	}
	m->ms->switched = true;
	guardian_resumed(g->guard); /* the guest is the destination's: never resumed here */
	k = wait_status(g, "completed", COMPLETE_WAIT_MS, &ev, msg, len);
	m->ms->switchover_ns = sys_now_ns() - t0;
	if (k < 0) {
		snprintf(msg + strlen(msg), len - strlen(msg),
			 " (after the switch-over began: uffsnapd does not resume the source; see "
			 "query-status on both QEMUs)");
		return k;
	}
	g->migrating = false;
	m->ms->done_realtime_ns = event_ns(ev);
	json_decref(ev);
	m->ms->qemu_downtime_ms = qemu_downtime(g);
	return 0;
}

/* A failure before the switch-over: QEMU's migration cancelled, the guest running here. */
static void back_out(struct msrc *m, struct snap_error *err)
{
	struct guest *g = &m->g;
	char msg[256], st[64] = "";

	if (!snapshot_target_has_mm(g->pid)) { /* QEMU exited */
		snprintf(err->msg, sizeof(err->msg), "QEMU (pid %d) exited during the migration",
			 g->pid);
		return;
	}
	qmp_set_cancel_fd(g->q, -1); /* a cancel ends our waits, never this */
	if (g->migrating)
		guest_cancel_migration(g);
	if (g->stopped &&
	    (guest_exec_string(g, "query-status", NULL, "status", st, sizeof(st), msg,
			       sizeof(msg)) < 0 ||
	     strcmp(st, "running")) &&
	    guest_resume(g, msg, sizeof(msg)) < 0) /* the guardian tries again when we exit */
		snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg),
			 "; and QEMU refused to resume the guest: %s", msg);
	else
		guardian_resumed(g->guard);
	g->stopped = false;
}

/*
 * One fd readable when either is (an epoll fd): waits for QEMU end on an interrupt and on
 * the stream's failure alike, so a dead receiver never leaves the guest waiting on QEMU.
 */
static int wake_on_either(int a, int b)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};

	if (ep < 0)
		return -errno;
	if ((a >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) < 0) ||
	    (b >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev) < 0)) {
		int e = -errno;

		close(ep);
		return e;
	}
	return ep;
}

int migrate_source(struct qmp *q, const struct snap_opts *opts, int cancel_fd,
		   struct img_sink *sink, struct migrate_stats *ms, struct snap_stats *ss,
		   struct snap_error *err)
{
	struct msrc m = {.g = {.q = q,
			       .pid = qmp_peer_pid(q),
			       .cancel_fd = cancel_fd,
			       .gs = &ms->guest,
			       .test_pause = opts->test_pause},
			 .sink = sink,
			 .ms = ms};
	struct snap_hooks hooks = {.ctx = &m,
				   .before_instant = hook_before_instant,
				   .meta = hook_meta,
				   .image_done = hook_image_done};
	struct snap_opts o = *opts;
	int k;

	*ms = (struct migrate_stats){.guest = {.pid = m.g.pid}, .qemu_downtime_ms = -1};
	snprintf(ms->guest.qemu_version, sizeof(ms->guest.qemu_version), "%s", qmp_version(q));
	k = wake_on_either(cancel_fd, stream_sink_fail_fd(sink));
	if (k < 0)
		return snprintf(err->msg, sizeof(err->msg), "epoll: %s", strerror(-k)), k;
	m.g.cancel_fd = k;
	qmp_set_cancel_fd(q, m.g.cancel_fd);
	k = guest_probe(&m.g, err->msg, sizeof(err->msg));
	if (k >= 0 && (k = guardian_start(qmp_fd(q), &m.g.guard)) < 0)
		snprintf(err->msg, sizeof(err->msg), "cannot start the guardian: %s", strerror(-k));
	if (k >= 0) {
		o.precopy = true;
		o.scope = m.g.scope;
		o.nscope = m.g.nb;
		o.hooks = &hooks;
		o.quiet_at_instant = true; /* the vCPUs are stopped from before_instant on */
		k = snapshot_take(m.g.pid, &o, sink, ss, err);
		if (k < 0 && !ms->switched)
			back_out(&m, err);
		guest_restore_caps(&m.g);
	}
	guardian_free(m.g.guard);
	guest_state_free(&m.g);
	close(m.g.cancel_fd);
	return k;
}

json_t *migrate_stats_json(const struct migrate_stats *ms)
{
	json_t *j = json_pack(
	    "{s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "guest", guest_stats_json(&ms->guest),
	    "uri", ms->uri, "stopped_realtime_ns", (json_int_t)ms->stop_realtime_ns,
	    "completed_realtime_ns", (json_int_t)ms->done_realtime_ns, "to_switchover_ns",
	    (json_int_t)ms->to_switchover_ns, "final_round_ns", (json_int_t)ms->final_ns,
	    "switchover_ns", (json_int_t)ms->switchover_ns, "qemu_downtime_ms",
	    (json_int_t)ms->qemu_downtime_ms, "switched", ms->switched);

	if (j && ms->done_realtime_ns && ms->stop_realtime_ns)
		json_object_set_new(j, "stopped_to_completed_ns",
				    json_integer(ms->done_realtime_ns - ms->stop_realtime_ns));
	return j;
}
