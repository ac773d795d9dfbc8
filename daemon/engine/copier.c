/* SPDX-License-Identifier: MIT */
/*
 * The background copier: walks every tracked range in chunks, reads what is still protected,
 * claims it and unprotects the chunk. Reads happen without the handler lock; the claim is made
 * under it, after checking that no layout change (mremap, munmap, MADV_DONTNEED) could have
 * touched the read: none in flight (uffd_mmap_changing) and none processed since the read began
 * that touched this chunk (snap_events_overlap). A chunk that fails the check is read again.
 * With opts.copy_threads > 1, that many threads take chunks from one cursor; each claims and
 * unprotects its own as one copier does, and a chunk is only ever one thread's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "engine/copier.h"
#include "engine/snap.h"
#include "engine/uffd-ops.h"
#include "sys/clock.h"

/* A chunk is written in pieces of this much, so that a waiting write fault can go first. */
#define COPIER_PIECE_BYTES (256u << 10)
/* How often the copier waits for an in-flight layout event before reading again. */
#define COPIER_WAIT_TRIES 16

struct chunk {
	uint64_t start, end; /* T-addresses, granule aligned */
	uint8_t *buf;
	uint8_t *want;	  /* per granule: still protected when the pass began */
	uint8_t *present; /* per granule: 1 if it must be read, 0 if known zero */
};

/* Marks what this pass wants (still protected) and, of that, what must be read. */
static void scan_present(struct snap *s, const struct pages_range *r, struct chunk *c)
{
	size_t n = (c->end - c->start) / r->granule;

	if (r->kind != VMA_ANON)
		memset(c->present, 1, n); /* see snap_scan_present() */
	else
		snap_scan_present(s, c->start, c->end, r->granule, c->present);
	for (size_t i = 0; i < n; i++) {
		c->want[i] = pages_get(r, pages_index(r, c->start + i * r->granule)) ==
			     PAGE_PROTECTED;
		c->present[i] &= c->want[i];
	}
}

static bool chunk_pending(const struct pages_range *r, const struct chunk *c)
{
	for (uint64_t a = c->start; a < c->end; a += r->granule)
		if (pages_get(r, pages_index(r, a)) == PAGE_PROTECTED)
			return true;
	return false;
}

/* Reads the present runs of the chunk. -ESRCH when the target's mm is gone. */
static int read_chunk(struct snap *s, const struct pages_range *r, struct chunk *c)
{
	int k = snap_read_present(s, c->start, r->granule, (c->end - c->start) / r->granule,
				  c->present, c->buf);

	/* part of it went away: an event will say what */
	return k == -EFAULT || k == -EIO ? -EAGAIN : k;
}

/* Takes the handler lock ahead of the fault handler (see handler_loop). */
static void lock_as_copier(struct snap *s)
{
	__atomic_add_fetch(&s->copier_waiting, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&s->lock);
	__atomic_sub_fetch(&s->copier_waiting, 1, __ATOMIC_RELEASE);
}

/*
 * With the lock held, waits until no layout change is in flight, letting the handler read
 * the pending events meanwhile: then every change that could have touched our read has been
 * recorded in the event ring. Returns with the lock held, or -EAGAIN (lock released).
 */
static int wait_no_change_in_flight(struct snap *s)
{
	for (int tries = 0; uffd_mmap_changing(s->uffd); tries++) {
		uint64_t g = s->event_gen;

		pthread_mutex_unlock(&s->lock);
		if (tries == COPIER_WAIT_TRIES || snap_failed(s))
			return -EAGAIN;
		for (int spin = 0; spin < 1000 && __atomic_load_n(&s->event_gen, __ATOMIC_ACQUIRE) == g;
		     spin++)
			sched_yield();
		lock_as_copier(s);
	}
	return 0;
}

/*
 * Part of the chunk could not be read. A layout change explains it (in flight, or processed
 * since the read began and touching this chunk): read again (-EAGAIN). Otherwise the memory
 * cannot be read at all, and retrying would never end.
 */
static int read_failed(struct snap *s, const struct chunk *c, uint64_t gen)
{
	bool explained;

	lock_as_copier(s);
	explained = uffd_mmap_changing(s->uffd) || snap_events_overlap(s, gen, c->start, c->end);
	pthread_mutex_unlock(&s->lock);
	if (explained)
		return -EAGAIN;
	snap_fail(s, -EIO, "cannot read pid %d's memory in 0x%llx-0x%llx", s->pid,
		  (unsigned long long)c->start, (unsigned long long)c->end);
	return -ECANCELED;
}

/*
 * Claims, under the lock, every still-protected granule that no layout event since the read
 * began has touched (those are read again). won[i] says which.
 */
static int claim_chunk(struct snap *s, struct pages_range *r, struct chunk *c, uint64_t gen,
		       uint8_t *won)
{
	size_t n = (c->end - c->start) / r->granule;

	lock_as_copier(s);
	if (wait_no_change_in_flight(s) < 0)
		return -EAGAIN;
	if (s->event_gen - gen > SNAP_EVENT_RING) { /* lost track: read it all again */
		pthread_mutex_unlock(&s->lock);
		return -EAGAIN;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t a = c->start + i * r->granule;

		won[i] = c->want[i] && !snap_events_overlap(s, gen, a, a + r->granule) &&
			 pages_claim(r, pages_index(r, a), PAGE_SAVED);
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/*
 * A write fault waiting for a write-behind slot (the queue is full: the output is behind) goes
 * first. While the copier writes a chunk it holds the image writer, and the emitter that would
 * free a slot waits that long, as long as a slow output takes for a chunk. What the copier has
 * not written yet is in its buffer meanwhile.
 */
static void yield_to_faults(struct snap *s)
{
	while (__atomic_load_n(&s->fault_waiting, __ATOMIC_ACQUIRE) && !snap_failed(s) &&
	       snap_cancelled(s) == 0)
		sys_sleep_ns(100000);
}

/*
 * For each run we claimed: unprotect and wake it (others were unprotected by whoever claimed
 * them), then write it. Every run is unprotected before any is written: the target never
 * waits for our I/O.
 */
static int finish_won(struct snap *s, const struct pages_range *r, const struct chunk *c,
		      const uint8_t *won)
{
	size_t n = (c->end - c->start) / r->granule, i, j;
	int k = 0;

	for (i = 0; k >= 0 && snap_next_run(won, n, &i, &j); i = j) {
		k = uffd_protect(s->uffd, c->start + i * r->granule, (j - i) * r->granule, 0);
		if (k == -ENOENT)
			k = 0;
	}
	for (i = 0; k >= 0 && snap_next_run(won, n, &i, &j); i = j) {
		size_t piece =
		    r->granule < COPIER_PIECE_BYTES ? COPIER_PIECE_BYTES / r->granule : 1;

		for (size_t p = i; k >= 0 && p < j; p += piece) {
			yield_to_faults(s);
			k = snap_emit_present(s, c->start, r->granule, p,
					      j - p < piece ? j : p + piece, c->present, c->buf);
		}
		__atomic_add_fetch(&s->stats.pages_copier, (j - i) * r->granule / s->page_size,
				   __ATOMIC_RELAXED);
	}
	return k;
}

static int copy_chunk(struct snap *s, struct pages_range *r, struct chunk *c,
		      uint8_t *won)
{
	for (;;) {
		uint64_t gen = __atomic_load_n(&s->event_gen, __ATOMIC_ACQUIRE);
		int k;

		if (snap_failed(s))
			return -ECANCELED;
		if (!chunk_pending(r, c))
			return 0;
		scan_present(s, r, c);
		k = read_chunk(s, r, c);
		if (k == -EAGAIN)
			k = read_failed(s, c, gen);
		if (k >= 0)
			k = claim_chunk(s, r, c, gen, won);
		if (k == -EAGAIN) {
			sched_yield(); /* let the fault handler read the pending event */
			continue;
		}
		if (k < 0)
			return k;
		k = finish_won(s, r, c, won);
		if (k < 0)
			return k;
		/* Granules an event touched meanwhile are still pending: go round again. */
	}
}

/* The chunks still to copy, shared by the copier's threads (opts.copy_threads). */
struct copier {
	struct snap *s;
	uint64_t chunk;	  /* opts.chunk_pages of memory; a range's chunk is its granule if larger */
	uint64_t buf_len; /* the largest chunk */
	pthread_mutex_t mu; /* the cursor, done and error */
	size_t range;	    /* the next chunk: s->pages.r[range] from next */
	uint64_t next;
	uint64_t done; /* granules copied, for progress */
	int error;     /* the first failure: the other threads stop at their next chunk */
};

/* The next chunk into c: false when none is left or a thread failed. */
static bool next_chunk(struct copier *cp, struct pages_range **r, struct chunk *c)
{
	struct pages *pg = &cp->s->pages;
	bool more;

	pthread_mutex_lock(&cp->mu);
	while (cp->range < pg->n && cp->next >= pg->r[cp->range].end)
		if (++cp->range < pg->n)
			cp->next = pg->r[cp->range].start;
	more = !cp->error && cp->range < pg->n;
	if (more) {
		uint64_t step =
		    cp->chunk < pg->r[cp->range].granule ? pg->r[cp->range].granule : cp->chunk;

		*r = &pg->r[cp->range];
		c->start = cp->next;
		c->end = (cp->next / step + 1) * step; /* aligned, so THP are not split */
		if (c->end > (*r)->end)
			c->end = (*r)->end;
		cp->next = c->end;
	}
	pthread_mutex_unlock(&cp->mu);
	return more;
}

/* A chunk is copied: counts it, or records the first failure. */
static void chunk_done(struct copier *cp, const struct pages_range *r, const struct chunk *c, int k)
{
	struct snap *s = cp->s;

	pthread_mutex_lock(&cp->mu);
	if (k < 0) {
		if (!cp->error)
			cp->error = k;
	} else {
		cp->done += (c->end - c->start) / r->granule;
		if (s->opts.progress) /* under the lock: one call at a time, done only growing */
			s->opts.progress(s->opts.progress_ctx, cp->done, s->pages.total_granules);
	}
	pthread_mutex_unlock(&cp->mu);
}

static void *copier_thread(void *arg)
{
	struct copier *cp = arg;
	struct snap *s = cp->s;
	size_t flags = cp->buf_len / s->page_size;
	struct chunk c = {.buf = aligned_alloc(4096, cp->buf_len),
			  .present = malloc(flags),
			  .want = malloc(flags)};
	uint8_t *won = malloc(flags);
	struct pages_range *r;
	int k = c.buf && c.present && c.want && won ? 0 : -ENOMEM;

	if (k < 0)
		chunk_done(cp, NULL, NULL, k);
	while (k >= 0 && next_chunk(cp, &r, &c)) {
		k = snap_cancelled(s);
		if (k >= 0)
			k = copy_chunk(s, r, &c, won);
		chunk_done(cp, r, &c, k);
	}
	free(c.buf);
	free(c.present);
	free(c.want);
	free(won);
	return NULL;
}

int copier_run(struct snap *s)
{
	uint64_t chunk = (uint64_t)s->opts.chunk_pages * s->page_size;
	struct copier cp = {.s = s, .chunk = chunk, .buf_len = chunk};
	unsigned n = s->opts.copy_threads, started = 0; /* 1.. (snap_defaults()) */
	pthread_t th[SNAP_MAX_COPY_THREADS];

	for (size_t i = 0; i < s->pages.n; i++)
		if (s->pages.r[i].granule > cp.buf_len)
			cp.buf_len = s->pages.r[i].granule;
	if (s->pages.n)
		cp.next = s->pages.r[0].start;
	/* Each thread has a chunk's buffer: of 1 GiB pages, one is enough. */
	if (cp.buf_len > chunk)
		n = 1;
	pthread_mutex_init(&cp.mu, NULL);
	/* This thread is one of them; one that cannot start leaves the work to the others. */
	while (started + 1 < n && pthread_create(&th[started], NULL, copier_thread, &cp) == 0)
		started++;
	copier_thread(&cp);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&cp.mu);
	return cp.error;
}
