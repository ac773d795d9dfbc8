/* SPDX-License-Identifier: MIT */
/*
 * One snapshot, start to end. The cut (DESIGN.md "One cut for all memory", first way): every
 * thread is held while all trackable VMAs are registered and write-protected and the others
 * copied; T is the moment they resume. After T the fault handler and the copier save the rest.
 * Only the order of the steps is here: the shared state and its primitives are engine/snap.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sys/clock.h"
#include "engine/arm.h"
#include "engine/copier.h"
#include "engine/faults.h"
#include "engine/live.h"
#include "engine/meta.h"
#include "engine/precopy.h"
#include "engine/shared.h"
#include "engine/snap.h"
#include "engine/snapshot.h"
#include "engine/wpmarker.h"
#include "target/attach.h"
#include "target/holder.h"

static int open_proc(pid_t pid, const char *name)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}



/* Arming with every thread held: from attach to resume. On success T has passed. */
static int hold_and_arm(struct snap *s)
{
	uint64_t held = sys_now_ns(), released = 0;
	struct holder *h = NULL;
	int k;

	k = snap_before_instant(s);
	snap_gate_hold(s->gate, true);
	if (k >= 0)
		k = snap_first_hold(s, true, &h);

	if (k >= 0)
		k = snap_plan(s);
	if (k >= 0)
		k = snap_arm(s);
	if (k >= 0)
		k = snap_begin_image(s);
	if (k >= 0)
		k = snap_copy_held_timed(s);
	if (k < 0)
		snap_cleanup(s); /* drop every protection before the threads run again */
	else if ((k = holder_release(h, &released, s->err.msg, sizeof(s->err.msg))) < 0)
		s->error = k;
	holder_free(h); /* releases the target if it is still held */
	snap_gate_hold(s->gate, false);
	held = snap_hold_began(s, held);
	s->stats.held_ns = (released > held ? released : sys_now_ns()) - held;
	return k;
}

static int run_after_t(struct snap *s)
{
	const struct snap_hooks *h = s->opts.hooks;
	int k = snap_handler_start(s);

	s->after_t = true;
	if (k < 0)
		return k;
	if (h && h->at_instant) /* the guest's faults are served from here on */
		h->at_instant(h->ctx);
	snap_test_pause(s, "instant");
	k = shared_scan(s); /* other writers of shared memory: at the instant, and at the end */
	if (k >= 0)
		k = copier_run(s);
	if (k >= 0)
		k = shared_finish(s);
	if (k < 0 && k != -ECANCELED)
		snap_fail(s, k, "copier: %s", strerror(-k));
	snap_handler_stop(s);
	return snap_failed(s) ? s->error : 0;
}

/*
 * A pre-copy that converged: who else maps the shared memory it saved, as run_after_t()
 * asks after a write-protect snapshot's instant (engine/shared.h). Only the processes that
 * map it at the instant are seen: one that wrote it during the rounds and went is not. The
 * instant and the end are one moment here, so one walk of every process (shared_finish()'s)
 * serves as both: a migration's guest waits for it (it stays stopped until the image is done).
 */
static int after_precopy(struct snap *s)
{
	int k = shared_finish(s);

	if (k < 0 && !snap_failed(s))
		snap_fail(s, k, "cannot look for other writers of shared memory: %s", strerror(-k));
	return k;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void finish_stats(struct snap *s)
{
	struct img_writer_stats ws;

	if (s->nfault_ns) {
		qsort(s->fault_ns, s->nfault_ns, sizeof(*s->fault_ns), cmp_u64);
		s->stats.fault_p50_ns = s->fault_ns[s->nfault_ns / 2];
		s->stats.fault_p99_ns = s->fault_ns[s->nfault_ns * 99 / 100];
		s->stats.fault_max_ns = s->fault_ns[s->nfault_ns - 1];
	}
	if (s->w) {
		img_writer_get_stats(s->w, &ws);
		s->stats.bytes = ws.bytes;
	}
	s->stats.duration_ns = sys_now_ns() - s->start_ns;
}

/*
 * Our /proc/PID/mem stops reading when the address space it was opened on goes, by exit or by
 * exec. An exec'd process has a new one; an exiting process (from exit_mm() on, before it is
 * a zombie and until it is reaped) and a dead one have none: its maps read empty.
 */
bool snapshot_target_has_mm(pid_t pid)
{
	char path[64], c;
	int fd;
	bool any;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	any = read(fd, &c, 1) == 1;
	close(fd);
	return any;
}

/*
 * After an error: why did the target go away, if it did (after T, or during pre-copy rounds,
 * or its address space was gone at the failure, whatever the error said)? A failure of a
 * live target keeps its own message (e.g. "not the process that was authorized").
 */
static void explain_target_gone(struct snap *s)
{
	if (s->error >= 0 ||
	    !(s->mm_gone || (s->error == -ESRCH && (s->after_t || s->rounds_lost_target))))
		return;
	if (kill(s->pid, 0) < 0 || !snapshot_target_has_mm(s->pid))
		snprintf(s->err.msg, sizeof(s->err.msg),
			 "pid %d exited during the snapshot; the image is incomplete", s->pid);
	else
		snprintf(s->err.msg, sizeof(s->err.msg),
			 "pid %d replaced its memory (exec) during the snapshot; the image is "
			 "incomplete", s->pid);
}

/*
 * /proc/PID/mem is opened before attaching, so its failure is the first sign of a bad pid:
 * ask target_attach()'s checks for the precise reason (they never leave it attached).
 */
static void explain_open_failure(struct snap *s)
{
	struct target_error terr = {0};
	struct target *t = NULL;
	int k = target_attach(s->pid, &t, &terr);

	target_free(t);
	if (k < 0)
		snap_fail(s, k, "%s", terr.msg);
	else
		snap_fail(s, s->memfd, "cannot open the memory of pid %d: %s", s->pid,
			  strerror(-s->memfd));
}

static void snap_init(struct snap *s, pid_t pid, const struct snap_opts *opts)
{
	*s = (struct snap){.pid = pid, .opts = *opts, .memfd = -EBADF, .uffd = -EBADF,
			   .stopfd = -EBADF, .pagemapfd = -EBADF,
			   .page_size = sysconf(_SC_PAGESIZE)};
	snap_defaults(&s->opts);
	s->start_ns = sys_now_ns();
	s->held.uffd = -EBADF;
	pthread_mutex_init(&s->lock, NULL);
}

/* Opens what a snapshot reads the target through; false (and failed) if it cannot. */
static bool snap_open(struct snap *s)
{
	s->memfd = open_proc(s->pid, "mem");
	s->pagemapfd = open_proc(s->pid, "pagemap"); /* optional: without it, everything is read */
	if (s->pagemapfd >= 0)
		s->wp_marker = wpmarker_probe(); /* same credentials as the open */
	s->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->pid == getpid()) /* the holder, our child, would otherwise ptrace us */
		snap_fail(s, -EDEADLK, "pid %d is uffsnapd itself: cannot snapshot ourselves",
			  s->pid);
	else if (s->stopfd < 0)
		snap_fail(s, -errno, "cannot create an eventfd: %m");
	else if (s->memfd < 0)
		explain_open_failure(s);
	return !snap_failed(s);
}

/*
 * A pre-copy's image is finished here, before snap_cleanup() releases the dirty log (which
 * takes a while on big memory: faults.c dirty_log_release()), so that neither the image nor
 * a caller acting once it is complete (hooks->image_done: a migration's switch-over) waits for
 * that.
 */
static void finish_early(struct snap *s)
{
	const struct snap_hooks *h = s->opts.hooks;
	char msg[sizeof(s->err.msg)] = "";
	int k;

	if (snap_failed(s) || !s->opts.precopy)
		return;
	k = img_writer_finish(s->w);
	if (k < 0) {
		snap_fail(s, k, "cannot finish the image: %s", strerror(-k));
		return;
	}
	s->image_finished = true;
	if (!h || !h->image_done)
		return;
	k = h->image_done(h->ctx, msg, sizeof(msg));
	if (k < 0)
		snap_fail(s, k, "%s", msg);
}

/* Finishes the image; the statistics and the error to the caller. */
static int snap_finish(struct snap *s, struct snap_stats *ret_stats, struct snap_error *err)
{
	int k;

	if (!snap_failed(s) && !s->image_finished) {
		k = img_writer_finish(s->w);
		if (k < 0)
			snap_fail(s, k, "cannot finish the image: %s", strerror(-k));
	}
	explain_target_gone(s);
	finish_stats(s);
	*ret_stats = s->stats;
	snprintf(err->msg, sizeof(err->msg), "%s", s->err.msg);
	img_writer_free(s->w);
	snap_gate_free(s->gate);
	s->w = NULL;
	s->gate = NULL;
	return s->error;
}

static void snap_free(struct snap *s)
{
	img_writer_free(s->w);
	snap_gate_free(s->gate);
	vma_list_free(&s->vmas);
	pages_free(&s->pages);
	free(s->hot);
	free(s->rings);
	free(s->pinned);
	shared_free(s);
	free(s->dirty);
	free(s->fault_ns);
	json_decref(s->parent);
	holder_info_clear(&s->held);
	pthread_mutex_destroy(&s->lock);
}

int snapshot_take(pid_t pid, const struct snap_opts *opts, struct img_sink *sink,
		  struct snap_stats *ret_stats, struct snap_error *err)
{
	struct snap s;
	int k;

	snap_init(&s, pid, opts);
	snap_test_pause(&s, "start");
	if (snap_open(&s) && snap_writer_open(&s, sink) >= 0 && snap_scan(&s) >= 0 &&
	    !snap_cancelled(&s))
		s.opts.precopy	  ? snap_precopy(&s)
		: s.opts.arm_held ? hold_and_arm(&s)
				  : snap_hold_and_arm_live(&s);
	/* A pre-copy that converged copied everything by its instant. */
	if (!snap_failed(&s) && (!s.opts.precopy || s.stats.fell_back))
		run_after_t(&s);
	else if (!snap_failed(&s))
		after_precopy(&s);
	finish_early(&s);
	snap_cleanup(&s);
	k = snap_finish(&s, ret_stats, err);
	snap_free(&s);
	return k;
}

struct snapshot_chain {
	struct snap s;
	struct precopy *pc;
};

int snapshot_chain_start(pid_t pid, const struct snap_opts *opts, struct snapshot_chain **ret,
			 struct snap_error *err)
{
	struct snapshot_chain *c = calloc(1, sizeof(*c));
	struct snap_opts o = *opts;
	int k;

	if (!c)
		return snprintf(err->msg, sizeof(err->msg), "out of memory"), -ENOMEM;
	o.precopy = true;
	snap_init(&c->s, pid, &o);
	if (snap_open(&c->s) && snap_scan(&c->s) >= 0 && !snap_cancelled(&c->s) &&
	    precopy_new(&c->s, true, &c->pc) < 0)
		snap_cleanup(&c->s);
	k = c->s.error;
	snprintf(err->msg, sizeof(err->msg), "%s", c->s.err.msg);
	if (k < 0) {
		snapshot_chain_end(c);
		return k;
	}
	*ret = c;
	return 0;
}

int snapshot_chain_take(struct snapshot_chain *c, struct img_sink *sink, const char *parent_json,
			struct snap_stats *ret_stats, struct snap_error *err)
{
	struct snap *s = &c->s;

	if (snap_failed(s)) /* an image before failed: the dirty log is gone */
		return snprintf(err->msg, sizeof(err->msg), "%s", s->err.msg), s->error;
	s->stats = (struct snap_stats){0};
	s->nfault_ns = 0;
	s->start_ns = sys_now_ns();
	json_decref(s->parent);
	s->parent = parent_json ? json_loads(parent_json, 0, NULL) : NULL;
	if (parent_json && !json_is_object(s->parent))
		snap_fail(s, -EINVAL, "the parent's description is not a JSON object");
	else if (snap_writer_open(s, sink) >= 0 && precopy_next(c->pc) >= 0)
		after_precopy(s);
	shared_free(s); /* the next image looks again */
	return snap_finish(s, ret_stats, err);
}

void snapshot_chain_end(struct snapshot_chain *c)
{
	if (!c)
		return;
	precopy_free(c->pc); /* releases the target if a failure left it held */
	snap_cleanup(&c->s);
	snap_free(&c->s);
	free(c);
}

/* "precopy": rounds (and the bytes and ns of each), convergence, the freeze. */
static int precopy_json(const struct snap_stats *s, json_t *j)
{
	json_t *rounds = json_array(), *p;

	for (unsigned i = 0; rounds && i < s->rounds && i < SNAP_MAX_ROUNDS; i++)
		json_array_append_new(rounds, json_pack("{s:I, s:I}", "bytes",
							(json_int_t)s->round[i].bytes, "ns",
							(json_int_t)s->round[i].ns));
	p = json_pack("{s:i, s:o*, s:b, s:I, s:b, s:I, s:I, s:I, s:I, s:I}", "rounds", (int)s->rounds,
		      "round", rounds, "fell_back", s->fell_back, "fell_back_bytes",
		      (json_int_t)s->fell_back_bytes, "converged",
		      s->converged, "freeze_ns", (json_int_t)s->hold_final_ns, "freeze_bytes",
		      (json_int_t)s->freeze_bytes, "downtime_predicted_ns",
		      (json_int_t)s->downtime_predicted_ns, "dirty_rate_bps",
		      (json_int_t)s->dirty_rate_bps, "pages_unchanged", (json_int_t)s->pages_unchanged);
	return p ? json_object_set_new(j, "precopy", p) : -ENOMEM;
}

int snapshot_stats_to_json(const struct snap_stats *s, json_t **ret)
{
	json_t *j = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
		"s:I, s:I, s:i}",
		"held_ns", (json_int_t)s->held_ns, "attach_ns", (json_int_t)s->attach_ns,
		"copy_held_ns", (json_int_t)s->copy_held_ns, "arm_ns", (json_int_t)s->arm_ns,
		"duration_ns",
		(json_int_t)s->duration_ns, "pages_copier", (json_int_t)s->pages_copier,
		"pages_fault", (json_int_t)s->pages_fault, "pages_held", (json_int_t)s->pages_held,
		"pages_zero", (json_int_t)s->pages_zero, "pages_discarded",
		(json_int_t)s->pages_discarded, "faults", (json_int_t)s->faults, "fault_p50_ns",
		(json_int_t)s->fault_p50_ns, "fault_p99_ns", (json_int_t)s->fault_p99_ns,
		"fault_max_ns", (json_int_t)s->fault_max_ns, "bytes", (json_int_t)s->bytes,
		"events_remap", (json_int_t)s->events_remap, "events_remove",
		(json_int_t)s->events_remove, "events_unmap", (json_int_t)s->events_unmap, "threads",
		(int)s->threads);

	if (!j)
		return -ENOMEM;
	if (s->hold_first_ns) { /* armed live, or pre-copy */
		json_object_set_new(j, "hold_first_ns", json_integer((json_int_t)s->hold_first_ns));
		json_object_set_new(j, "hold_final_ns", json_integer((json_int_t)s->hold_final_ns));
		json_object_set_new(j, "rearm_ns", json_integer((json_int_t)s->rearm_ns));
		json_object_set_new(j, "rearm_ranges", json_integer((json_int_t)s->rearm_ranges));
	}
	if (s->rounds && precopy_json(s, j) < 0) {
		json_decref(j);
		return -ENOMEM;
	}
	json_object_set_new(j, "pinned_bytes_held",
			    json_integer((json_int_t)s->pinned_bytes_held));
	json_object_set_new(j, "pinned_bytes_not_exact",
			    json_integer((json_int_t)s->pinned_bytes_not_exact));
	json_object_set_new(j, "io_contexts", json_integer((json_int_t)s->io_contexts));
	json_object_set_new(j, "io_rings_hidden", json_integer((json_int_t)s->io_rings_hidden));
	json_object_set_new(j, "shared_writers", json_integer((json_int_t)s->shared_writers));
	json_object_set_new(j, "fd_writers", json_integer((json_int_t)s->fd_writers));
	json_object_set_new(j, "fault_sink_waits", json_integer((json_int_t)s->fault_sink_waits));
	json_object_set_new(j, "fault_sink_wait_max_ns",
			    json_integer((json_int_t)s->fault_sink_wait_max_ns));
	*ret = j;
	return 0;
}
