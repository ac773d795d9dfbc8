/* SPDX-License-Identifier: MIT */
/*
 * Arming while the target runs (DESIGN.md "One cut for all memory", the second way). Arming
 * 2 GiB of 4 KiB pages takes tens of milliseconds of page-table work, as long as fork() holds
 * its parent; holding every thread for all of it would make the cut no better than fork().
 *
 * 1. First hold, short: attach, create the userfaultfd, plan the layout, register. Release.
 * 2. Arm (write-protect everything) while the target runs. A write meanwhile is not held until
 *    arming ends, as DESIGN.md's second way would: nothing is saved before T, so the fault is
 *    resolved at once and the range it unprotected is remembered (snap->dirty). So are the
 *    ranges an event stripped of protection (MADV_DONTNEED, munmap, mremap).
 * 3. Final hold: every thread stopped. Plan the layout again, register what is new, protect
 *    again what was remembered and in full what was not armed in step 2, copy the untrackable
 *    and the threads' hot pages. Release: that is T.
 *
 * Why it is exact: from step 2 on, a page stays protected unless we unprotect it (remembered)
 * or the kernel drops its protection with the page or the mapping (an event: remembered); a
 * new mapping is not in any armed range (protected in full). So at T every tracked page is
 * protected, and each thread's writes before T are in the memory we then save. The final hold
 * lasts for the attach and the remembered ranges, not for the whole memory.
 *
 * A caller that keeps the scoped memory still from its before_instant hook to its at_instant
 * hook (a stopped QEMU guest: opts.quiet_at_instant) needs no final hold: no write can come
 * between re-protecting and T, so step 3 runs without stopping the threads, and the target's
 * own pause (the guest's downtime) is not lengthened by attaching all of them again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sys/clock.h"
#include "engine/arm.h"
#include "engine/faults.h"
#include "engine/live.h"
#include "engine/meta.h"
#include "engine/plan.h"
#include "engine/snap.h"
#include "engine/uffd-ops.h"

/* Was all of r inside one range armed in step 2? */
static bool was_armed(struct pages *armed, const struct pages_range *r)
{
	const struct pages_range *a = armed ? pages_find(armed, r->start) : NULL;

	return a && r->end <= a->end;
}

static int protect(struct snap *s, uint64_t start, uint64_t end)
{
	int k = uffd_protect(s->uffd, start, end - start, 1);

	s->stats.rearm_ranges++;
	if (k < 0)
		snap_fail(s, k, "cannot write-protect 0x%llx-0x%llx again: %s",
			  (unsigned long long)start, (unsigned long long)end, strerror(-k));
	return k;
}

/* Protects the remembered spans within r (both sorted; *d is where to start looking). */
static int protect_dirty_in(struct snap *s, const struct pages_range *r, size_t *d)
{
	int k = 0;

	while (*d < s->ndirty && s->dirty[*d].end <= r->start)
		(*d)++;
	for (size_t i = *d; k >= 0 && i < s->ndirty && s->dirty[i].start < r->end; i++) {
		uint64_t a = s->dirty[i].start > r->start ? s->dirty[i].start : r->start;
		uint64_t b = s->dirty[i].end < r->end ? s->dirty[i].end : r->end;

		a = a / r->granule * r->granule;
		b = (b + r->granule - 1) / r->granule * r->granule;
		k = protect(s, a, b > r->end ? r->end : b);
	}
	return k;
}

/*
 * Final hold, handler locked out: plans the layout at T, registers every tracked VMA (again:
 * the kernel accepts that), then protects what step 2 did not leave protected. armed is NULL
 * if step 2 failed somewhere: then everything is protected in full, as when arming held.
 */
static int rearm_at_t(struct snap *s, struct pages *armed)
{
	uint64_t t0 = sys_now_ns();
	size_t d = 0;
	int k = snap_plan(s);

	if (k >= 0)
		k = snap_register(s);
	plan_merge_spans(s->dirty, &s->ndirty);
	for (size_t i = 0; k >= 0 && i < s->pages.n; i++) {
		const struct pages_range *r = &s->pages.r[i];

		if (was_armed(armed, r))
			k = protect_dirty_in(s, r, &d);
		else
			k = protect(s, r->start, r->end);
	}
	s->stats.rearm_ns = sys_now_ns() - t0;
	return k;
}

/* Step 3, from the moment every thread is stopped until just before they are released. */
static int final_hold(struct snap *s, bool armed_ok)
{
	struct pages armed = s->pages;
	int k;

	pthread_mutex_lock(&s->lock); /* the handler is between two reads of the uffd */
	s->pages = (struct pages){0};
	k = rearm_at_t(s, armed_ok ? &armed : NULL);
	snap_gate_hold(s->gate, true); /* until the release: see engine/gate.h */
	if (k >= 0)
		k = snap_begin_image(s);
	if (k >= 0)
		k = snap_copy_held_timed(s);
	/* From here the handler serves faults as after T: it forgets those read before. */
	s->pre_t = false;
	pthread_mutex_unlock(&s->lock);
	pages_free(&armed);
	return k;
}

/*
 * The holder's failures, as snap_fail()s: once the fault handler runs it may fail at the same
 * time, so only the first failure may write s->err.msg (a holder message goes to msg first).
 */
static int holder_failed(struct snap *s, int k, const char *msg)
{
	if (k < 0)
		snap_fail(s, k, "%s", msg);
	return k;
}

int snap_hold_and_arm_live(struct snap *s)
{
	uint64_t t0 = sys_now_ns(), t1, released = 0;
	char msg[sizeof(s->err.msg)] = "";
	struct holder *h = NULL;
	bool armed_ok = false, quiet = s->opts.quiet_at_instant && s->opts.scope;
	/* Without a final hold the first one's registers are the image's; else they are not. */
	int k = snap_first_hold(s, quiet, &h);

	if (k >= 0)
		k = snap_plan(s);
	if (k >= 0)
		k = snap_register(s);
	s->pre_t = true;
	if (k >= 0)
		k = holder_failed(s, holder_release(h, &released, msg, sizeof(msg)), msg);
	t0 = snap_hold_began(s, t0);
	s->stats.hold_first_ns = (released > t0 ? released : sys_now_ns()) - t0;
	released = 0;
	if (k >= 0)
		k = snap_handler_start(s);
	if (k >= 0)
		armed_ok = snap_protect_all(s) >= 0; /* what failed is protected at T */
	if (k >= 0)
		snap_test_pause(s, "armed");
	if (k >= 0)
		k = snap_cancelled(s); /* no final hold for a snapshot that must end */
	if (k >= 0)
		k = snap_before_instant(s);
	t1 = sys_now_ns();
	if (k >= 0 && !quiet) {
		holder_info_clear(&s->held);
		k = holder_failed(s, holder_hold(h, &s->held, msg, sizeof(msg)), msg);
		if (k >= 0)
			s->stats.threads = s->held.nthreads;
		t1 = snap_hold_began(s, t1);
	}
	if (k >= 0)
		k = final_hold(s, armed_ok);
	if (k < 0)
		snap_cleanup(s); /* drop every protection before the threads run again */
	else if (!quiet)
		k = holder_failed(s, holder_release(h, &released, msg, sizeof(msg)), msg);
	holder_free(h); /* releases the target if it is still held */
	snap_gate_hold(s->gate, false);
	s->stats.hold_final_ns = quiet ? 0 : (released > t1 ? released : sys_now_ns()) - t1;
	s->stats.held_ns = s->stats.hold_first_ns > s->stats.hold_final_ns
				   ? s->stats.hold_first_ns
				   : s->stats.hold_final_ns;
	return k;
}
