/* SPDX-License-Identifier: MIT */
/*
 * Pre-copy's copying (precopy-internal.h): a set of spans read from the target and written to
 * the image, a piece at a time while it runs, small pieces batched while it is held; and what
 * copying the pending set would cost, for the rounds' prediction (engine/precopy.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dirtylog.h"
#include "engine/precopy-internal.h"
#include "engine/snap.h"

/*
 * Reads [a, b) one page at a time. A page that cannot be read while the target runs is copied
 * again from the next collection on (it went away, or is coming back); at the freeze it is
 * DISCARDED.
 */
static int copy_by_page(struct precopy *pc, uint64_t a, uint64_t b, uint8_t *buf, bool held)
{
	struct snap *s = pc->s;
	int k = 0;

	for (uint64_t x = a; x < b && k >= 0; x += s->page_size) {
		k = snap_read_mem(s, x, buf, s->page_size);
		if (k == -EFAULT || k == -EIO) {
			k = held ? img_writer_discarded(s->w, x, 1)
				 : spans_add(&pc->retry, x, x + s->page_size);
			s->stats.pages_discarded += held;
			continue;
		}
		if (k >= 0)
			k = snap_emit(s, x, buf, s->page_size);
	}
	return k;
}

/*
 * Absent anonymous pages are found by a PAGEMAP_SCAN and written as ZERO without reading
 * them; shared memory has content where it is not mapped, and is read whole. Below this
 * the scan costs more than it saves: a read of an absent anonymous page gives zeros (the
 * kernel's zero page: nothing is allocated) and snap_emit() writes those as ZERO too.
 */
#define SCAN_PRESENT_MIN (64u << 10)

/* Copies [a, b) of tracked range r, granule-aligned: absent anonymous pages as ZERO. */
static int copy_piece(struct precopy *pc, const struct pages_range *r, uint64_t a, uint64_t b,
		      bool held)
{
	struct snap *s = pc->s;
	int k = 0;

	if (r->granule > pc->buf_len) { /* a huge page larger than any seen so far */
		uint8_t *buf = aligned_alloc(4096, r->granule);
		uint8_t *present = malloc(r->granule / s->page_size);

		if (!buf || !present) {
			free(buf);
			free(present);
			return -ENOMEM;
		}
		free(pc->buf);
		free(pc->present);
		pc->buf = buf;
		pc->present = present;
		pc->buf_len = r->granule;
	}
	for (uint64_t x = a, len; x < b && k >= 0; x += len) {
		size_t n, i = 0, j;

		len = b - x < pc->buf_len ? b - x : pc->buf_len;
		n = len / r->granule;
		if (r->kind == VMA_ANON && len > SCAN_PRESENT_MIN)
			snap_scan_present(s, x, x + len, r->granule, pc->present);
		else
			memset(pc->present, 1, n);
		while (k >= 0 && i < n) {
			bool there = pc->present[i];
			uint64_t from = x + i * r->granule, bytes;

			for (j = i + 1; j < n && pc->present[j] == there; j++)
				;
			bytes = (j - i) * r->granule;
			if (!there) {
				k = snap_emit_zero(s, from, bytes);
			} else if ((k = snap_read_mem(s, from, pc->buf, bytes)) >= 0) {
				pc->read_bytes += bytes;
				k = snap_emit(s, from, pc->buf, bytes);
			} else if (k == -EFAULT || k == -EIO) {
				k = copy_by_page(pc, from, from + bytes, pc->buf, held);
			}
			i = j;
		}
	}
	return k;
}

/*
 * Held, the pieces of the last set are mostly single pages, scattered: they are read
 * SNAP_READ_SPANS_MAX at a time (snap_read_spans()); a system call for each was most of
 * the final hold. A piece a batch cannot read is copied on its own, as ever, and the batch
 * goes on after it.
 */
static int batch_flush(struct precopy *pc)
{
	struct snap *s = pc->s;
	struct piece_batch *b = &pc->batch;
	int k = 0;

	for (size_t i = 0; k >= 0 && i < b->n;) {
		ssize_t whole = snap_read_spans(s, b->v + i, b->n - i, pc->buf);
		size_t off = 0;

		k = whole < 0 ? (int)whole : 0;
		for (ssize_t j = 0; k >= 0 && j < whole; j++, i++) {
			size_t len = b->v[i].end - b->v[i].start;

			pc->read_bytes += len;
			k = snap_emit(s, b->v[i].start, pc->buf + off, len);
			off += len;
		}
		if (k >= 0 && i < b->n) { /* unreadable this way (or the system call refused) */
			k = copy_piece(pc, b->r[i], b->v[i].start, b->v[i].end, true);
			i++;
		}
	}
	b->n = b->bytes = 0;
	return k;
}

static int batch_add(struct precopy *pc, struct pages_range *r, uint64_t a, uint64_t b)
{
	struct piece_batch *q = &pc->batch;
	int k = 0;

	if (q->n == SNAP_READ_SPANS_MAX || q->bytes + (b - a) > pc->buf_len)
		k = batch_flush(pc);
	if (k >= 0) {
		q->r[q->n] = r;
		q->v[q->n++] = (struct snap_span){a, b};
		q->bytes += b - a;
	}
	return k;
}

struct copy_ctx {
	struct precopy *pc;
	bool held;
	uint64_t bytes, total;
};

static int copy_one(void *ctx, struct pages_range *r, uint64_t a, uint64_t b)
{
	struct copy_ctx *c = ctx;
	struct snap *s = c->pc->s;
	int k = c->held && b - a <= SCAN_PRESENT_MIN ? batch_add(c->pc, r, a, b)
						      : copy_piece(c->pc, r, a, b, c->held);

	if (k >= 0)
		k = spans_add(&c->pc->covered, a, b);
	if (k >= 0)
		k = spans_add(&c->pc->wrote, a, b);
	c->bytes += b - a;
	if (k >= 0 && (k = snap_cancelled(s)) >= 0 && s->opts.progress)
		s->opts.progress(s->opts.progress_ctx, c->bytes / s->page_size,
				 c->total / s->page_size);
	return k;
}

int precopy_copy_set(struct precopy *pc, const struct span_set *set, bool held, uint64_t *ret)
{
	struct snap *s = pc->s;
	struct copy_ctx c = {.pc = pc, .held = held, .total = spans_bytes(set)};
	int k = precopy_each_piece(s, set, copy_one, &c);

	if (k >= 0 && held)
		k = batch_flush(pc);
	pc->batch.n = pc->batch.bytes = 0;
	spans_merge(&pc->covered);
	if (k == -ESRCH) {
		s->rounds_lost_target = true;
		snap_fail(s, k, "pid %d went away during the snapshot", s->pid);
	}
	else if (k < 0)
		snap_fail(s, k, "cannot copy the memory of pid %d: %s", s->pid, strerror(-k));
	*ret = c.bytes;
	return k;
}

/*
 * What copying pc->pending would read: absent anonymous pages (and the zero page, and markers)
 * are written as ZERO without reading (copy_piece()), so they cost next to nothing; shared
 * memory is read whole.
 */
static int cost_piece(void *ctx, struct pages_range *r, uint64_t a, uint64_t b)
{
	struct copy_ctx *c = ctx;
	const struct snap *s = c->pc->s;
	int64_t n = r->kind == VMA_ANON ? dirtylog_present_bytes(s->pagemapfd, s->wp_marker, a, b)
					: -1;

	c->bytes += n >= 0 ? (uint64_t)n : b - a;
	return 0;
}

static uint64_t pending_cost(struct precopy *pc)
{
	struct copy_ctx c = {.pc = pc};

	precopy_each_piece(pc->s, &pc->pending, cost_piece, &c);
	return c.bytes;
}

uint64_t precopy_predict_copy_ns(struct precopy *pc)
{
	double rate = pc->copy_ns && pc->read_bytes ? (double)pc->read_bytes / pc->copy_ns : 1.0;

	pc->pending_cost = pending_cost(pc);
	return (uint64_t)(pc->pending_cost / rate);
}
