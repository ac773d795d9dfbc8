/* SPDX-License-Identifier: MIT */
/*
 * A pre-copy that did not converge falls back to write protection at its freeze
 * (engine/precopy.c): what is left is saved as a write-protect snapshot saves it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/arm.h"
#include "engine/faults.h"
#include "engine/precopy-internal.h"
#include "engine/uffd-ops.h"
#include "target/holder.h"

static int mark_protected(void *ctx, struct pages_range *r, uint64_t a, uint64_t b)
{
	(void)ctx;
	memset(r->state + pages_index(r, a), PAGE_PROTECTED, (b - a) / r->granule);
	return 0;
}

/* Every granule of the tracked ranges outside set (sorted, merged) is saved already. */
static void mark_saved_except(struct snap *s, const struct span_set *set)
{
	for (size_t i = 0; i < s->pages.n; i++) {
		struct pages_range *r = &s->pages.r[i];

		memset(r->state, PAGE_SAVED, (r->end - r->start) / r->granule);
	}
	precopy_each_piece(s, set, mark_protected, NULL);
}

static int protect_piece(void *ctx, struct pages_range *r, uint64_t a, uint64_t b)
{
	(void)r;
	return uffd_protect(*(int *)ctx, a, b - a, 1);
}

/* Moves the tracked ranges to userfaultfd to and write-protects set within them. */
static int move_ranges(struct snap *s, int to, const struct span_set *set)
{
	int k = 0;

	for (size_t i = 0; k >= 0 && i < s->pages.n; i++) {
		const struct pages_range *r = &s->pages.r[i];

		k = uffd_unregister(s->uffd, r->start, r->end - r->start);
		if (k >= 0)
			k = uffd_register_wp(to, r->start, r->end - r->start);
	}
	if (k >= 0)
		k = precopy_each_piece(s, set, protect_piece, &to);
	if (k < 0)
		snap_fail(s, k, "cannot move to write protection: %s", strerror(-k));
	return k;
}

/*
 * Did not converge: what is left is saved the way a write-protect snapshot saves it, from
 * this instant on (engine/faults.c, engine/copier.c). Every page outside pc->pending was
 * copied after its last protection and not written since: its copy is the instant's, and it
 * is marked saved. The pending pages go to a synchronous userfaultfd, write-protected, so a
 * write to one waits until it is saved; the hot ranges and pinned buffers among them are
 * saved while held (snap_copy_held()). Closing the asynchronous userfaultfd drops its
 * registration of whatever else it had (fs/userfaultfd.c: userfaultfd_release()), so no
 * layout event waits on a userfaultfd nobody reads.
 */
int precopy_fall_back(struct precopy *pc, struct holder *h)
{
	struct snap *s = pc->s;
	char msg[sizeof(s->err.msg)] = "";
	int sync = -EBADF, k;

	snap_handler_stop(s); /* it reads the asynchronous userfaultfd */
	k = holder_new_uffd(h, &sync, msg, sizeof(msg));
	if (k < 0)
		snap_fail(s, k, "%s", msg);
	if (k >= 0)
		k = snap_uffd_api(s, sync, false);
	for (size_t i = 0; k >= 0 && i < s->nhot; i++)
		k = spans_add(&pc->pending, s->hot[i].start, s->hot[i].end);
	for (size_t i = 0; k >= 0 && i < s->npinned; i++)
		k = spans_add(&pc->pending, s->pinned[i].start, s->pinned[i].end);
	spans_merge(&pc->pending);
	if (k >= 0)
		k = move_ranges(s, sync, &pc->pending);
	if (k < 0) {
		if (sync >= 0)
			close(sync);
		return snap_failed(s) ? k : (snap_fail(s, k, "out of memory"), k);
	}
	mark_saved_except(s, &pc->pending);
	close(s->uffd);
	s->uffd = sync;
	s->uffd_async = false;
	s->pre_t = false;
	s->stats.fell_back = true;
	s->stats.fell_back_bytes = spans_bytes(&pc->pending);
	return 0;
}
