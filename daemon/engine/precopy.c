/* SPDX-License-Identifier: MIT */
/*
 * Pre-copy snapshots (DESIGN.md "A second way to track writes"): the target is never waited
 * on while its memory is copied, and is held once, at the end, for a bounded time.
 *
 * 1. First hold, short: attach, create an asynchronous userfaultfd (UFFD_FEATURE_WP_ASYNC),
 *    plan the layout, register. Release. Write-protect everything, write the image's start,
 *    copy everything (round 0).
 * 2. Rounds, the target running: collect what was written since the last collection (the
 *    dirty log, which protects it again), what a layout event touched (the fault handler
 *    remembers it in s->dirty, as when arming live: engine/faults.c), and what was mapped
 *    since (registered and protected now, then copied whole); copy that.
 * 3. When what a round collected is predicted to be copied within the downtime budget (and the
 *    rounds stopped halving it: rounds()), freeze:
 *    hold every thread, collect once more, copy both sets and the untrackable memory, mark as
 *    UNMAPPED what earlier rounds saved that is no longer saved, write the instant's metadata.
 *    Release: that is the instant.
 *
 * Why it is exact: every page of the final layout is copied after its last protection (round
 * 0 protects before it copies; each collection protects again before its set is copied; new
 * mappings are protected before their first copy). Anything that changes a page after its
 * protection puts it in a later set: a write through the page tables (the dirty log), a layout
 * event (s->dirty), a new mapping (never armed). The last set is copied with every thread
 * held. The image format lets a later frame supersede an earlier one (FORMAT.md, REWRITES),
 * so each page reads as its last copy: the one of the instant.
 *
 * A scoped pre-copy (a QEMU guest's RAM, snap_opts.scope) whose caller stops every writer of
 * that memory in its before_instant hook (quiet_at_instant: a migration at QEMU's
 * pre-switchover, its vCPUs stopped) needs no freeze: step 3 then runs without holding a
 * thread (quiet_final()), and the caller's own pause is the downtime.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sys/clock.h"
#include "engine/arm.h"
#include "engine/dirtylog.h"
#include "engine/faults.h"
#include "engine/heldcopy.h"
#include "engine/meta.h"
#include "engine/plan.h"
#include "engine/precopy.h"
#include "engine/precopy-internal.h"
#include "engine/rounds.h"
#include "engine/snap.h"
#include "engine/uffd-ops.h"
#include "target/holder.h"

#define DEFAULT_DOWNTIME_MS 50
#define DEFAULT_MAX_ROUNDS  10
/* What a chain's image that did not converge may still copy while the target is held. */
#define CHAIN_HOLD_MAX_BYTES (SNAP_GATE_MAX_BYTES / 2)

/* The spans of the tracked ranges now planned. */
static int tracked_spans(const struct snap *s, struct span_set *out)
{
	int k = 0;

	for (size_t i = 0; i < s->pages.n && k >= 0; i++)
		k = spans_add(out, s->pages.r[i].start, s->pages.r[i].end);
	return k;
}

/*
 * While the target runs the layout may change under a registration: what the kernel will not
 * register now is retried at the next collection, and decided for good at the freeze.
 */
static int register_running(struct precopy *pc)
{
	struct snap *s = pc->s;
	int k = 0;

	for (size_t i = 0; i < s->vmas.n && k >= 0; i++) {
		struct vma *v = &s->vmas.v[i];
		int r;

		if (v->plan != VMA_PLAN_TRACK)
			continue;
		r = uffd_register_wp(s->uffd, v->start, v->end - v->start);
		if (s->opts.scope && (r == -EBUSY || r == -EPERM || r == -EOPNOTSUPP)) {
			/* a guest's RAM is never copied while held (snap_opts.scope) */
			k = r;
			snap_fail(s, r, "cannot register 0x%llx-0x%llx: %s",
				  (unsigned long long)v->start, (unsigned long long)v->end,
				  strerror(-r));
		} else if (r == -EBUSY || r == -EPERM || r == -EOPNOTSUPP) {
			v->plan = VMA_PLAN_COPY; /* as snap_register() does */
			snprintf(v->note, sizeof(v->note), "%s", "write protection refused, copied");
		} else if (r < 0) {
			k = spans_add(&pc->retry, v->start, v->end);
		}
	}
	if (k >= 0) {
		pages_free(&s->pages);
		k = pages_init(&s->pages, &s->vmas);
	}
	return k;
}

/* Reads the layout again if it changed, and registers what is new. */
static int relayout(struct precopy *pc, bool held)
{
	struct snap *s = pc->s;
	int k;

	if (held) {
		k = snap_plan(s);
		return k < 0 ? k : snap_register(s);
	}
	if (vma_list_refresh(s->pid, &s->vmas, s->opts.scope, s->opts.nscope) >= 0)
		return 0; /* unchanged, or nothing to save came or went */
	k = snap_scan(s);
	return k < 0 ? k : register_running(pc);
}

/* Granule-aligns [a, b) within range r. */
static void align_in(const struct pages_range *r, uint64_t *a, uint64_t *b)
{
	*a = r->start + (*a - r->start) / r->granule * r->granule;
	*b = r->start + (*b - r->start + r->granule - 1) / r->granule * r->granule;
	if (*b > r->end)
		*b = r->end;
}

int precopy_each_piece(struct snap *s, const struct span_set *set, piece_fn fn, void *ctx)
{
	int k = 0;

	for (size_t i = 0, f = 0; k >= 0 && i < s->pages.n; i++) {
		struct pages_range *r = &s->pages.r[i];

		while (f < set->n && set->v[f].end <= r->start)
			f++;
		for (size_t j = f; k >= 0 && j < set->n && set->v[j].start < r->end; j++) {
			uint64_t a = set->v[j].start > r->start ? set->v[j].start : r->start;
			uint64_t b = set->v[j].end < r->end ? set->v[j].end : r->end;

			align_in(r, &a, &b);
			k = fn(ctx, r, a, b);
		}
	}
	return k;
}

struct arm_ctx {
	struct precopy *pc;
	struct span_set redo;
	bool held;
};

static int arm_piece(void *ctx, struct pages_range *r, uint64_t a, uint64_t b)
{
	struct arm_ctx *c = ctx;
	struct snap *s = c->pc->s;
	int p = uffd_protect(s->uffd, a, b - a, 1);

	(void)r;
	if (p >= 0)
		return spans_add(&c->redo, a, b);
	if (!c->held) /* the layout moved: next time */
		return spans_add(&c->pc->retry, a, b);
	return snap_fail(s, p, "cannot write-protect 0x%" PRIx64 "-0x%" PRIx64 ": %s", a, b,
			 strerror(-p)), p;
}

/*
 * The parts of the tracked ranges to copy whole: never armed, or touched by a layout event
 * (events) or a failed step (pc->retry). Protected here, before they are copied.
 */
static int arm_new(struct precopy *pc, const struct span_set *events, bool held)
{
	struct snap *s = pc->s;
	struct span_set now = {0}, fresh = {0};
	struct arm_ctx c = {.pc = pc, .held = held};
	int k = tracked_spans(s, &now);

	spans_merge(&pc->armed);
	if (k >= 0)
		k = spans_subtract(&now, &pc->armed, &fresh);
	for (size_t i = 0; k >= 0 && i < events->n; i++)
		k = spans_add(&fresh, events->v[i].start, events->v[i].end);
	for (size_t i = 0; k >= 0 && i < pc->retry.n; i++)
		k = spans_add(&fresh, pc->retry.v[i].start, pc->retry.v[i].end);
	spans_free(&pc->retry);
	spans_merge(&fresh);
	if (k >= 0)
		k = precopy_each_piece(s, &fresh, arm_piece, &c);
	for (size_t i = 0; k >= 0 && i < c.redo.n; i++)
		k = spans_add(&pc->pending, c.redo.v[i].start, c.redo.v[i].end);
	spans_free(&pc->armed);
	if (k >= 0)
		k = spans_subtract(&now, &pc->retry, &pc->armed);
	spans_free(&now);
	spans_free(&fresh);
	spans_free(&c.redo);
	return k;
}

/*
 * While the target runs, a collection goes a piece at a time with a pause after each as long
 * as the piece took: re-protecting the pages written is a change of the target's page tables,
 * and on this project's VM (page tables shadowed by the hypervisor) a target thread was seen
 * to stand still for 24 ms during a collection of 1 GiB in one go (faults.c,
 * dirty_log_release(), says more). A page written after its piece was scanned is in the next collection; the last
 * collection, held, goes in one go.
 */
#define COLLECT_PIECE (64ull << 20)
#define COLLECT_PAUSE_MAX_NS 2000000ull

static int collect_paced(struct snap *s, uint64_t start, uint64_t end, struct span_set *out)
{
	int k = 0;

	for (uint64_t a = start; a < end && k >= 0;) {
		uint64_t b = end - a > COLLECT_PIECE ? a + COLLECT_PIECE : end, t0 = sys_now_ns();

		k = dirtylog_collect(s->pagemapfd, a, b, out);
		if (b < end)
			sys_pace(t0, COLLECT_PAUSE_MAX_NS);
		a = b;
	}
	return k;
}

/* Collects what to copy next into pc->pending (protecting it again). */
static int collect(struct precopy *pc, bool held)
{
	struct snap *s = pc->s;
	struct span_set events = {0};
	int k;

	pthread_mutex_lock(&s->lock); /* the handler adds what events touch */
	events = (struct span_set){s->dirty, s->ndirty, s->dirty_cap};
	s->dirty = NULL;
	s->ndirty = s->dirty_cap = 0;
	pthread_mutex_unlock(&s->lock);
	pc->collected_ns = sys_now_ns();
	k = relayout(pc, held);
	if (k >= 0)
		k = arm_new(pc, &events, held);
	for (size_t i = 0; k >= 0 && i < s->pages.n; i++) {
		const struct pages_range *r = &s->pages.r[i];

		k = held ? dirtylog_collect(s->pagemapfd, r->start, r->end, &pc->pending)
			 : collect_paced(s, r->start, r->end, &pc->pending);
		if (k == -EPERM && !held) /* a new mapping in the range: next time */
			k = spans_add(&pc->retry, r->start, r->end);
	}
	spans_free(&events);
	spans_merge(&pc->pending);
	if (k < 0 && !snap_failed(s))
		snap_fail(s, k, "cannot read which pages pid %d wrote: %s", s->pid, strerror(-k));
	return k;
}

/* One round: copy what was collected, then collect what to copy next. */
static int run_round(struct precopy *pc)
{
	struct snap *s = pc->s;
	struct span_set set = pc->pending;
	struct snap_round *rd = &s->stats.round[s->stats.rounds];
	uint64_t t0 = pc->collected_ns, c0 = sys_now_ns();
	int k;

	pc->pending = (struct span_set){0};
	k = precopy_copy_set(pc, &set, false, &rd->bytes);
	spans_free(&set);
	s->stats.pages_copier += rd->bytes / s->page_size;
	pc->copy_ns += sys_now_ns() - c0;
	if (k >= 0)
		k = collect(pc, false);
	rd->ns = sys_now_ns() - t0;
	s->stats.rounds++;
	if (k >= 0 && rd->ns)
		s->stats.dirty_rate_bps = spans_bytes(&pc->pending) * 1000000000ull / rd->ns;
	if (k >= 0 && s->opts.round)
		s->opts.round(s->opts.progress_ctx, s->stats.rounds - 1, rd);
	return k;
}

/* The caller stops every writer of the scoped memory at the instant: no final hold. */
static bool quiet(const struct snap *s)
{
	return s->opts.quiet_at_instant && s->opts.scope;
}

/*
 * Rounds until the final hold (attaching, as the first hold did, and copying what is left) is
 * predicted to fit the budget and the rounds stopped halving what is left: converged. Rounds
 * also end when what is left to copy would take at most a tenth of the budget (a hundredth
 * with no hold: quiet()), the hold being mostly the attach: more rounds would not shorten it,
 * and falling back would not either; *copy_held says so. Else they end, not converged, after
 * max_rounds or ROUNDS_STALL without progress. The rule: engine/rounds.h.
 */
static int rounds(struct precopy *pc, bool *converged, bool *copy_held)
{
	struct snap *s = pc->s;
	struct rounds_rule rule;
	int k = 0;

	rounds_rule_init(&rule, (uint64_t)s->opts.downtime_ms * 1000000, pc->first_hold_ns,
			 quiet(s), s->opts.max_rounds);
	*converged = *copy_held = false;
	while (k >= 0) {
		uint64_t copy = precopy_predict_copy_ns(pc);
		bool fits;
		enum rounds_step step = rounds_next(&rule, s->stats.rounds, copy, pc->pending_cost,
						    &s->stats.downtime_predicted_ns, &fits);

		if (step == ROUNDS_HOLD) {
			*converged = fits;
			*copy_held = true;
			break;
		}
		if (step == ROUNDS_GIVE_UP)
			break;
		k = run_round(pc);
		if (k >= 0 && s->stats.rounds == 1)
			snap_test_pause(s, "round");
	}
	return k;
}

/*
 * What earlier rounds saved and the instant does not: UNMAPPED, so that no stale page reads
 * as the instant's. Saved at the instant: the tracked ranges and the VMAs copied while held.
 */
static int mark_unmapped(struct precopy *pc)
{
	struct snap *s = pc->s;
	struct span_set saved = {0}, gone = {0};
	int k = tracked_spans(s, &saved);

	for (size_t i = 0; k >= 0 && i < s->vmas.n; i++)
		if (s->vmas.v[i].plan == VMA_PLAN_COPY)
			k = spans_add(&saved, s->vmas.v[i].start, s->vmas.v[i].end);
	spans_merge(&saved);
	if (k >= 0)
		k = spans_subtract(&pc->covered, &saved, &gone);
	for (size_t i = 0; k >= 0 && i < gone.n; i++)
		k = img_writer_unmapped(s->w, gone.v[i].start,
					(gone.v[i].end - gone.v[i].start) / s->page_size);
	spans_free(&pc->saved);
	pc->saved = saved; /* the next image's parent had these */
	spans_free(&gone);
	if (k < 0 && !snap_failed(s))
		snap_fail(s, k, "cannot write the image: %s", strerror(-k));
	return k;
}

static int holder_failed(struct snap *s, int k, const char *msg)
{
	if (k < 0)
		snap_fail(s, k, "%s", msg);
	return k;
}

/*
 * The VMAs that cannot be tracked, copied while held; in a chain, kept for the next image,
 * and in an increment only what changed since the image before (engine/heldcopy.h).
 */
static int save_held(struct precopy *pc)
{
	struct snap *s = pc->s;
	struct held_copies *rec = &pc->held[pc->images % 2], *prev = &pc->held[(pc->images + 1) % 2];
	int k;

	if (pc->chain) {
		spans_merge(&pc->wrote);
		held_copies_free(rec);
		s->held_rec = rec;
		s->held_prev = pc->images ? prev : NULL;
		s->held_wrote = &pc->wrote;
	}
	k = snap_copy_held_timed(s);
	s->held_rec = NULL;
	s->held_prev = NULL;
	s->held_wrote = NULL;
	held_copies_free(prev); /* the next image compares with this one's */
	return k;
}

/* The last set, nothing writing it now (threads held, or the caller's quiet instant). */
static int copy_last(struct precopy *pc)
{
	struct snap *s = pc->s;
	int k;

	free(s->hot); /* no write ever waits here: nothing hot to save */
	s->hot = NULL;
	s->nhot = 0;
	k = precopy_copy_set(pc, &pc->pending, true, &s->stats.freeze_bytes);
	s->stats.pages_held += s->stats.freeze_bytes / s->page_size;
	return k;
}

/* After the last set: the untrackable, what is no longer mapped, the instant's metadata. */
static int seal(struct precopy *pc)
{
	int k = save_held(pc);

	if (k >= 0)
		k = mark_unmapped(pc);
	if (k >= 0)
		k = snap_final_meta(pc->s);
	return k;
}

/* Step 3, every thread held: the last set, the untrackable, the instant's metadata. */
static int freeze(struct precopy *pc, struct holder *h, bool copy_held)
{
	struct snap *s = pc->s;
	int k = collect(pc, true); /* adds to what the last round collected */

	snap_gate_hold(s->gate, true); /* until the release: see engine/gate.h */
	if (k >= 0 && !copy_held)
		k = precopy_fall_back(pc, h);
	else if (k >= 0)
		k = copy_last(pc);
	return k >= 0 ? seal(pc) : k;
}

/* Step 1 up to the first round: the first hold, protecting everything. */
static int start(struct precopy *pc)
{
	struct snap *s = pc->s;
	uint64_t t0 = sys_now_ns(), released = 0;
	char msg[sizeof(s->err.msg)] = "";
	int k = snap_first_hold(s, true, &pc->h); /* the first META has them */

	if (k >= 0)
		k = snap_plan(s);
	if (k >= 0)
		k = snap_register(s);
	s->pre_t = true; /* the handler only remembers what layout events touch */
	if (k >= 0)
		k = holder_failed(s, holder_release(pc->h, &released, msg, sizeof(msg)), msg);
	t0 = snap_hold_began(s, t0);
	s->stats.hold_first_ns = pc->first_hold_ns = (released > t0 ? released : sys_now_ns()) - t0;
	if (k >= 0)
		k = snap_handler_start(s);
	if (k >= 0 && snap_protect_all(s) >= 0) { /* round 0: everything */
		k = tracked_spans(s, &pc->armed);
		if (k >= 0)
			k = tracked_spans(s, &pc->pending);
	} else if (k >= 0) { /* a range went away meanwhile: range by range, as rounds do */
		struct span_set none = {0};

		k = arm_new(pc, &none, false);
	}
	pc->collected_ns = sys_now_ns();
	return k;
}

/*
 * The final round of a scoped pre-copy whose caller stops every writer of that memory in
 * before_instant (a QEMU guest whose vCPUs are stopped): what the rounds left, the last
 * collection and the instant's metadata, without holding a thread. Exact for the same reason
 * as the freeze: every page written before the writers stopped is in the last collection,
 * and nothing writes the scoped memory from then until at_instant. Never falls back (write
 * protection would serve faults after the instant, but the caller may move the guest away).
 */
static int quiet_final(struct precopy *pc)
{
	struct snap *s = pc->s;
	const struct snap_hooks *h = s->opts.hooks;
	int k = snap_before_instant(s);

	if (k >= 0)
		k = collect(pc, true);
	if (k >= 0)
		k = copy_last(pc);
	if (k >= 0)
		k = seal(pc);
	if (k < 0) {
		snap_cleanup(s);
		return k;
	}
	s->after_t = true;
	if (h && h->at_instant)
		h->at_instant(h->ctx);
	return k;
}

static int hold_final(struct precopy *pc, bool copy_held)
{
	struct snap *s = pc->s;
	char msg[sizeof(s->err.msg)] = "";
	uint64_t t1 = sys_now_ns(), released = 0;
	int k;

	holder_info_clear(&s->held);
	k = holder_failed(s, holder_hold(pc->h, &s->held, msg, sizeof(msg)), msg);
	t1 = snap_hold_began(s, t1);
	if (k >= 0) {
		s->stats.threads = s->held.nthreads;
		k = freeze(pc, pc->h, copy_held);
	}
	if (k < 0)
		snap_cleanup(s); /* drop every protection before the threads run again */
	else
		k = holder_failed(s, holder_release(pc->h, &released, msg, sizeof(msg)), msg);
	snap_gate_hold(s->gate, false);
	s->stats.hold_final_ns = (released > t1 ? released : sys_now_ns()) - t1;
	s->stats.held_ns = s->stats.hold_first_ns > s->stats.hold_final_ns
				   ? s->stats.hold_first_ns
				   : s->stats.hold_final_ns;
	return k;
}

static int check_opts(struct snap *s)
{
	struct snap_opts *o = &s->opts;

	if (!o->downtime_ms)
		o->downtime_ms = DEFAULT_DOWNTIME_MS;
	if (!o->max_rounds)
		o->max_rounds = DEFAULT_MAX_ROUNDS;
	if (o->max_rounds > SNAP_MAX_ROUNDS - 1)
		o->max_rounds = SNAP_MAX_ROUNDS - 1;
	/* A pre-copy image's device state would have to follow its second META, which
	 * FORMAT.md does not allow: a scoped pre-copy (a guest's migration) has none. */
	if (o->arm_held || (o->hooks && o->hooks->after_meta))
		return snap_fail(s, -EINVAL,
				 "pre-copy arms while the target runs, and its image "
				 "holds no device state"),
		       -EINVAL;
	if (s->pagemapfd < 0)
		return snap_fail(s, -EOPNOTSUPP, "pre-copy needs /proc/%d/pagemap", s->pid),
		       -EOPNOTSUPP;
	return 0;
}

/*
 * Did not converge. --strict-downtime: fail. A quiet snapshot copies the rest while its
 * caller keeps the memory still. A single snapshot falls back to write
 * protection at the freeze; a chain cannot (the dirty log must stay armed for the next
 * image), so it copies the rest while held if that is at most CHAIN_HOLD_MAX_BYTES.
 */
static int not_converged(struct precopy *pc, bool *ret_copy_held)
{
	struct snap *s = pc->s;
	uint64_t cost = pc->pending_cost; /* as rounds() last predicted */

	*ret_copy_held = pc->chain || quiet(s);
	if (!s->opts.strict_downtime && (!pc->chain || cost <= CHAIN_HOLD_MAX_BYTES))
		return 0;
	return snap_fail(s, -ETIME,
			 "pre-copy did not converge in %u rounds: pid %d writes %" PRIu64
			 " MiB/s, the last round had %" PRIu64 " MiB to copy, predicted to hold it %"
			 PRIu64 " ms against a budget of %u ms%s",
			 s->stats.rounds, s->pid, s->stats.dirty_rate_bps >> 20, cost >> 20,
			 s->stats.downtime_predicted_ns / 1000000, s->opts.downtime_ms,
			 s->opts.strict_downtime ? " (--strict-downtime)"
						 : "; too much to copy while it is held"),
	       -ETIME;
}

int precopy_new(struct snap *s, bool chain, struct precopy **ret)
{
	struct precopy *pc = calloc(1, sizeof(*pc));
	int k = pc ? check_opts(s) : -ENOMEM;

	if (!pc)
		return snap_fail(s, k, "out of memory"), k;
	*pc = (struct precopy){.s = s, .chain = chain, .buf_len = PRECOPY_COPY_CHUNK};
	pc->buf = aligned_alloc(4096, pc->buf_len);
	pc->present = malloc(pc->buf_len / s->page_size);
	if (k >= 0 && (!pc->buf || !pc->present))
		k = (snap_fail(s, -ENOMEM, "out of memory"), -ENOMEM);
	if (k >= 0)
		k = start(pc);
	*ret = pc;
	return k;
}

int precopy_next(struct precopy *pc)
{
	struct snap *s = pc->s;
	bool converged = false, copy_held = false;
	int k = snap_begin_image(s);

	spans_free(&pc->wrote);
	if (k >= 0 && pc->images) { /* an increment: what changed since the last instant */
		spans_free(&pc->covered);
		pc->covered = pc->saved;
		pc->saved = (struct span_set){0};
		k = collect(pc, false);
	}
	if (k >= 0)
		k = rounds(pc, &converged, &copy_held);
	s->stats.converged = converged;
	if (k >= 0 && (!copy_held || (!converged && s->opts.strict_downtime)))
		k = not_converged(pc, &copy_held);
	if (k >= 0)
		k = snap_cancelled(s); /* no final hold for a snapshot that must end */
	if (k >= 0 && copy_held) { /* what it queues, with room for what is written until then */
		snap_gate_reserve(s->gate, pc->pending_cost + pc->pending_cost / 4 + (1u << 20));
		img_writer_reserve(s->w, 2 * pc->pending.n + 4096); /* best effort, as the gate's */
	}
	if (k >= 0 && quiet(s))
		k = quiet_final(pc);
	else if (k >= 0)
		k = hold_final(pc, copy_held);
	else
		snap_cleanup(s);
	pc->images++;
	return k;
}

void precopy_free(struct precopy *pc)
{
	if (!pc)
		return;
	holder_free(pc->h); /* releases the target if it is still held */
	spans_free(&pc->armed);
	spans_free(&pc->retry);
	spans_free(&pc->covered);
	spans_free(&pc->pending);
	spans_free(&pc->saved);
	spans_free(&pc->wrote);
	held_copies_free(&pc->held[0]);
	held_copies_free(&pc->held[1]);
	free(pc->buf);
	free(pc->present);
	free(pc);
}

int snap_precopy(struct snap *s)
{
	struct precopy *pc = NULL;
	int k = precopy_new(s, false, &pc);

	if (k >= 0)
		k = precopy_next(pc);
	else
		snap_cleanup(s);
	precopy_free(pc);
	return k;
}
