/* SPDX-License-Identifier: MIT */
/*
 * The fault handler: the only reader of the userfaultfd. A target thread that writes a page
 * not yet saved is blocked in the kernel until we unprotect it; we read a window around the
 * page (still protected, so still its content at T), claim what nobody has claimed, unprotect
 * and wake, and only then write the copy to the image, so the target never waits for I/O.
 *
 * Layout events (mremap, munmap, MADV_DONTNEED) are read from the same fd. While one is in
 * flight (mmap_changing), faults are held back: their addresses may not mean what they meant
 * at T until the event has been read and recorded.
 *
 * Addresses are never translated back through mremaps: the still-protected pages of a moved
 * range are saved as soon as its REMAP event is read, and a destination that held tracked
 * pages was unmapped first (an UNMAP event, so those are discarded). So a still-protected page
 * is always at its own address at T, with its content at T.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sys/clock.h"
#include "sys/linux-compat.h"
#include "engine/emitq.h"
#include "engine/faults.h"
#include "engine/snap.h"
#include "engine/uffd-ops.h"

#define MAX_MSGS 64

struct pending_fault {
	uint64_t addr; /* current address */
	uint64_t t0;   /* when we read it */
};

/* A claimed range whose unprotect met a layout event (EAGAIN): retried after the event. */
struct deferred_wake {
	uint64_t start, len; /* current addresses */
	uint64_t t0;
};

struct handler {
	struct snap *s;
	struct deferred_wake *wake;
	size_t nwake, wake_cap;
	struct pending_fault *pend; /* bounded by the target's blocked threads */
	size_t npend, pend_cap;
	struct emitq *q; /* where served windows go to be written */
	uint8_t *buf;	 /* one granule, for pages moved by mremap */
	size_t buf_size; /* of buf: a mapping of larger pages may appear at T */
	size_t buf_len;	 /* the largest window */
	bool pre_t;	 /* s->pre_t as last seen */
};

static void record_latency(struct snap *s, uint64_t ns)
{
	if (s->nfault_ns == s->fault_ns_cap) {
		size_t cap = s->fault_ns_cap ? s->fault_ns_cap * 2 : 4096;
		uint64_t *n = realloc(s->fault_ns, cap * sizeof(*n));

		if (!n)
			return; /* statistics only */
		s->fault_ns = n;
		s->fault_ns_cap = cap;
	}
	s->fault_ns[s->nfault_ns++] = ns;
}

/*
 * Unprotects and wakes [start, start + len). While a layout event is pending the kernel
 * refuses (EAGAIN), and only this thread can read that event: so the range is remembered and
 * unprotected after the next read instead of being retried here.
 */
static int unprotect_or_defer(struct handler *h, uint64_t start, uint64_t len, uint64_t t0)
{
	int k = uffd_unprotect_once(h->s->uffd, start, len);

	if (k == -ENOENT)
		return 0; /* unmapped meanwhile: nobody waits there */
	if (k != -EAGAIN)
		return k;
	if (h->nwake == h->wake_cap) {
		size_t cap = h->wake_cap ? h->wake_cap * 2 : 64;
		struct deferred_wake *n = realloc(h->wake, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		h->wake = n;
		h->wake_cap = cap;
	}
	h->wake[h->nwake++] = (struct deferred_wake){start, len, t0};
	return 0;
}

/* Retries the deferred unprotects; those still refused stay. Lock held. */
static int wake_deferred(struct handler *h)
{
	size_t n = h->nwake;
	int k = 0;

	h->nwake = 0;
	for (size_t i = 0; i < n && k >= 0; i++) {
		struct deferred_wake d = h->wake[i];

		k = unprotect_or_defer(h, d.start, d.len, d.t0);
	}
	return k;
}

/*
 * A read of protected memory failed. If a layout change is in flight, its event will say what
 * happened there: serve the fault again after it (-EAGAIN). If not, the page cannot be read
 * at all: the snapshot fails, and its end unprotects everything, so no thread stays blocked.
 */
static int read_failed(struct snap *s, uint64_t addr, int err)
{
	if (uffd_mmap_changing(s->uffd))
		return -EAGAIN;
	snap_fail(s, err, "cannot read pid %d's memory at 0x%llx: %s", s->pid,
		  (unsigned long long)addr, strerror(-err));
	return err;
}

/*
 * Saves the still-protected granules of the window [start, end) around a fault: reads them
 * (only them: a neighbour already discarded may be unmapped by now), claims, unprotects what it
 * claimed (the faulting granule among them), and queues the copy for the emitter. Lock held,
 * so the copier, which claims under it too, cannot take any of them meanwhile.
 */
static int serve_window(struct handler *h, struct pages_range *r, uint64_t start, uint64_t end,
			uint64_t t0)
{
	struct snap *s = h->s;
	size_t n = (end - start) / r->granule, i, j;
	struct emit_slot *e;
	uint64_t waited;
	int k = 0;

	if (end - start > h->buf_len || n > EMITQ_MAX_GRANULES)
		return -EINVAL;
	e = emitq_get(h->q, &waited);
	if (!e)
		return -ENOMEM;
	if (waited) { /* the target waited for the sink: say so (see engine/emitq.h) */
		s->stats.fault_sink_waits++;
		if (waited > s->stats.fault_sink_wait_max_ns)
			s->stats.fault_sink_wait_max_ns = waited;
	}
	for (i = 0; i < n; i++)
		e->won[i] = pages_get(r, pages_index(r, start + i * r->granule)) == PAGE_PROTECTED;
	for (i = 0; k >= 0 && snap_next_run(e->won, n, &i, &j); i = j) {
		k = snap_read_mem(s, start + i * r->granule, e->buf + i * r->granule,
				  (j - i) * r->granule);
		if (k == -EFAULT || k == -EIO)
			k = read_failed(s, start + i * r->granule, k);
	}
	if (k < 0) {
		emitq_put_back(h->q, e);
		return k;
	}
	for (i = 0; i < n; i++)
		e->won[i] = e->won[i] &&
			    pages_claim(r, pages_index(r, start + i * r->granule), PAGE_SAVED);
	/* From here on the copies are ours: whatever happens, they must reach the image. */
	e->start = start;
	e->granule = r->granule;
	e->n = n;
	for (i = 0; k >= 0 && snap_next_run(e->won, n, &i, &j); i = j)
		k = unprotect_or_defer(h, start + i * r->granule, (j - i) * r->granule, t0);
	record_latency(s, sys_now_ns() - t0);
	s->stats.faults++;
	emitq_push(h->q, e);
	return k;
}

/*
 * Before T (arming while the target runs): nothing is saved yet, so a fault is resolved at
 * once: the window around it is unprotected and remembered, to be protected again in the
 * final hold. Lock held.
 */
static int serve_fault_pre_t(struct handler *h, const struct pending_fault *f)
{
	struct snap *s = h->s;
	struct pages_range *r = pages_find(&s->pages, f->addr);
	uint64_t win = (uint64_t)s->opts.window_pages * s->page_size, start, end;
	int k;

	if (r && win < r->granule)
		win = r->granule;
	start = f->addr / win * win;
	end = start + win;
	if (r) { /* the VMA as planned; it may have shrunk since: then one granule */
		start = start < r->start ? r->start : start;
		end = end > r->end ? r->end : end;
	} else {
		start = f->addr / s->page_size * s->page_size;
		end = start + s->page_size;
	}
	k = snap_dirty_add(s, start, end);
	if (k >= 0)
		k = uffd_unprotect_once(s->uffd, start, end - start);
	if (k == -ENOENT && r) { /* part of the window is gone: just the faulting granule */
		start = f->addr / r->granule * r->granule;
		k = uffd_unprotect_once(s->uffd, start, r->granule);
	}
	if (k == -ENOENT)
		return 0; /* unmapped: nobody waits there */
	if (k == -EAGAIN) /* a layout event is pending: after it (the window is remembered) */
		return unprotect_or_defer(h, start, end - start, f->t0);
	return k;
}

/* Serves one fault: saves the window around it if it is still protected. Lock held. */
static int serve_fault(struct handler *h, const struct pending_fault *f)
{
	struct snap *s = h->s;
	struct pages_range *r = pages_find(&s->pages, f->addr);
	uint64_t win, start;

	if (r && pages_get(r, pages_index(r, f->addr)) == PAGE_PROTECTED) {
		win = (uint64_t)s->opts.window_pages * s->page_size;
		if (win < r->granule)
			win = r->granule;
		start = f->addr / win * win;
		return serve_window(h, r, start < r->start ? r->start : start,
				    start + win > r->end ? r->end : start + win, f->t0);
	}
	/* Already saved or discarded, or not tracked: just let the thread go. */
	win = r ? r->granule : s->page_size;
	return unprotect_or_defer(h, f->addr / win * win, win, f->t0);
}

/* Marks still-protected pages in [start, end) (current addresses) as discarded. Lock held. */
static int discard_range(struct snap *s, uint64_t start, uint64_t end)
{
	uint64_t run_start = 0, run_len = 0;
	int k = 0;

	for (uint64_t a = start / s->page_size * s->page_size; a < end && k >= 0;) {
		struct pages_range *r = pages_find(&s->pages, a);
		uint64_t g = r ? r->granule : s->page_size;

		if (r && pages_claim(r, pages_index(r, a), PAGE_DISCARDED)) {
			if (run_len && run_start + run_len == a) {
				run_len += g;
			} else {
				if (run_len)
					k = img_writer_discarded(s->w, run_start,
								 run_len / s->page_size);
				run_start = a / g * g;
				run_len = g;
			}
			s->stats.pages_discarded += g / s->page_size;
		}
		a = a / g * g + g;
	}
	if (k >= 0 && run_len)
		k = img_writer_discarded(s->w, run_start, run_len / s->page_size);
	if (k >= 0 && s->opts.strict && s->stats.pages_discarded)
		return -ESTALE;
	return k;
}

/*
 * mremap moved [from, from + len) to `to`: save what is still protected, read from its new
 * place, under its address at T.
 */
static int save_moved(struct handler *h, uint64_t t, uint64_t cur)
{
	struct snap *s = h->s;
	struct pages_range *r = pages_find(&s->pages, t);
	size_t i;
	int k;

	if (!r || pages_get(r, (i = pages_index(r, t))) != PAGE_PROTECTED)
		return 0;
	t = t / r->granule * r->granule;
	cur = cur / r->granule * r->granule;
	if (r->granule > h->buf_size) {
		free(h->buf);
		h->buf = aligned_alloc(4096, r->granule);
		h->buf_size = h->buf ? r->granule : 0;
		if (!h->buf)
			return -ENOMEM;
	}
	k = snap_read_mem(s, cur, h->buf, r->granule);
	if (k == -EFAULT || k == -EIO) {
		k = read_failed(s, cur, k);
		return k == -EAGAIN ? 0 : k; /* gone again: its own event follows */
	}
	if (k < 0 || !pages_claim(r, i, PAGE_SAVED))
		return k;
	k = unprotect_or_defer(h, cur, r->granule, sys_now_ns());
	if (k >= 0)
		k = snap_emit(s, t, h->buf, r->granule);
	if (k >= 0)
		__atomic_add_fetch(&s->stats.pages_fault, r->granule / s->page_size, __ATOMIC_RELAXED);
	return k;
}

static int handle_remap(struct handler *h, uint64_t from, uint64_t to, uint64_t len)
{
	struct snap *s = h->s;
	int k = 0;

	s->stats.events_remap++;
	for (uint64_t off = 0; k >= 0 && off < len; off += s->page_size) {
		k = save_moved(h, from + off, to + off);
	}
	return k;
}

static void record_event_range(struct snap *s, const struct uffd_msg *m)
{
	struct snap_event_range *e = &s->events[(s->event_gen + 1) % SNAP_EVENT_RING];

	e->gen = s->event_gen + 1;
	if (m->event == UFFD_EVENT_REMAP) {
		e->start[0] = m->arg.remap.from;
		e->end[0] = m->arg.remap.from + m->arg.remap.len;
		e->start[1] = m->arg.remap.to;
		e->end[1] = m->arg.remap.to + m->arg.remap.len;
	} else {
		e->start[0] = e->start[1] = m->arg.remove.start;
		e->end[0] = e->end[1] = m->arg.remove.end;
	}
}

/*
 * Before T, a layout event only matters for protection: MADV_DONTNEED drops anonymous pages
 * with their protection (mm/memory.c: zap on anonymous memory drops uffd-wp markers), munmap
 * leaves room for a new, unprotected mapping at the same addresses (mmap may reuse them, or
 * MAP_FIXED replace them: that too unmaps first), and mremap moves protected pages to a new
 * range. All of them are protected again at T; the final hold plans the layout afresh anyway.
 */
static int handle_event_pre_t(struct handler *h, const struct uffd_msg *m)
{
	struct snap *s = h->s;

	if (m->event == UFFD_EVENT_REMOVE || m->event == UFFD_EVENT_UNMAP)
		return snap_dirty_add(s, m->arg.remove.start, m->arg.remove.end);
	/* Both ends: the old range is unmapped (a new mapping there would not be armed), or
	 * with MREMAP_DONTUNMAP left empty. */
	if (m->event == UFFD_EVENT_REMAP)
		return snap_dirty_add(s, m->arg.remap.to, m->arg.remap.to + m->arg.remap.len) ?:
		       snap_dirty_add(s, m->arg.remap.from, m->arg.remap.from + m->arg.remap.len);
	return 0;
}

static int handle_event(struct handler *h, const struct uffd_msg *m)
{
	struct snap *s = h->s;
	char note[160];
	int k;

	if (s->pre_t)
		return handle_event_pre_t(h, m);
	switch (m->event) {
	case UFFD_EVENT_REMAP:
		snprintf(note, sizeof(note),
			 "{\"event\":\"mremap\",\"from\":\"0x%llx\",\"to\":\"0x%llx\",\"len\":%llu}",
			 (unsigned long long)m->arg.remap.from, (unsigned long long)m->arg.remap.to,
			 (unsigned long long)m->arg.remap.len);
		k = handle_remap(h, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
		break;
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		snprintf(note, sizeof(note),
			 "{\"event\":\"%s\",\"start\":\"0x%llx\",\"end\":\"0x%llx\"}",
			 m->event == UFFD_EVENT_REMOVE ? "madvise-remove" : "munmap",
			 (unsigned long long)m->arg.remove.start,
			 (unsigned long long)m->arg.remove.end);
		if (m->event == UFFD_EVENT_REMOVE)
			s->stats.events_remove++;
		else
			s->stats.events_unmap++;
		k = discard_range(s, m->arg.remove.start, m->arg.remove.end);
		break;
	default:
		return 0;
	}
	record_event_range(s, m);
	__atomic_add_fetch(&s->event_gen, 1, __ATOMIC_RELEASE);
	if (k >= 0)
		k = img_writer_event(s->w, note, strlen(note));
	return k;
}

/* Serves the held-back faults unless a layout change is in flight. Lock held. */
static int serve_pending(struct handler *h)
{
	int k = 0;

	size_t keep = 0;

	if (h->nwake)
		k = wake_deferred(h);
	if (k < 0 || !h->npend || uffd_mmap_changing(h->s->uffd))
		return k;
	for (size_t i = 0; i < h->npend && k >= 0; i++) {
		k = h->s->pre_t ? serve_fault_pre_t(h, &h->pend[i]) : serve_fault(h, &h->pend[i]);
		if (k == -EAGAIN) {
			h->pend[keep++] = h->pend[i];
			k = 0;
		}
	}
	h->npend = keep;
	return k;
}

static int pend_reserve(struct handler *h)
{
	if (h->npend == h->pend_cap) {
		size_t cap = h->pend_cap ? h->pend_cap * 2 : 64;
		struct pending_fault *n = realloc(h->pend, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		h->pend = n;
		h->pend_cap = cap;
	}
	return 0;
}

/* Reads what the uffd has. Lock held. Returns messages read, 0 if none, or -errno. */
static int read_messages(struct handler *h)
{
	struct uffd_msg msgs[MAX_MSGS];
	ssize_t n = read(h->s->uffd, msgs, sizeof(msgs));
	uint64_t now = sys_now_ns();
	int k = 0;

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	for (size_t i = 0; i < n / sizeof(msgs[0]) && k >= 0; i++) {
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
			k = pend_reserve(h);
			if (k < 0)
				break;
			h->pend[h->npend++] = (struct pending_fault){
				.addr = msgs[i].arg.pagefault.address, .t0 = now};
		} else {
			k = handle_event(h, &msgs[i]);
		}
	}
	return k < 0 ? k : (int)(n / sizeof(msgs[0]));
}

/*
 * At T (the final hold) every thread was stopped, so none waits in a fault any more: faults
 * read before T and not yet resolved, and unprotects deferred before T, are stale (those
 * threads fault again when they resume, and are then served as after T). Lock held.
 */
static void forget_pre_t(struct handler *h)
{
	if (h->pre_t && !h->s->pre_t) {
		h->npend = 0;
		h->nwake = 0;
	}
	h->pre_t = h->s->pre_t;
}

static int handler_loop(struct handler *h)
{
	struct snap *s = h->s;
	struct pollfd p[2] = {{.fd = s->uffd, .events = POLLIN}, {.fd = s->stopfd, .events = POLLIN}};
	int k = 0;

	for (;;) {
		/* With faults held back, poll briefly: the event they wait for is on its way. */
		if (poll(p, 2, h->npend || h->nwake ? 1 : -1) < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents & POLLIN)
			break;
		pthread_mutex_lock(&s->lock);
		forget_pre_t(h);
		k = read_messages(h);
		if (k >= 0)
			k = serve_pending(h);
		pthread_mutex_unlock(&s->lock);
		/* glibc mutexes are not fair: without this, a storm of events keeps the lock here */
		while (__atomic_load_n(&s->copier_waiting, __ATOMIC_ACQUIRE) && !snap_failed(s))
			sched_yield();
		if (k < 0)
			return k;
		if (p[0].revents & (POLLERR | POLLHUP))
			return -ESRCH;
	}
	/* Stopping: serve whatever is still waiting so that no thread stays blocked. */
	pthread_mutex_lock(&s->lock);
	forget_pre_t(h);
	while ((k = read_messages(h)) > 0 || h->npend || h->nwake) {
		if (k < 0)
			break;
		k = serve_pending(h);
		if (k < 0)
			break;
	}
	pthread_mutex_unlock(&s->lock);
	return k < 0 ? k : 0;
}

static void *fault_handler_main(void *arg)
{
	struct snap *s = arg;
	struct handler h = {.s = s};
	uint32_t max_granule = s->page_size;
	int k;

	/* Under lock: when arming live, the final hold may already be replacing s->pages. */
	pthread_mutex_lock(&s->lock);
	h.pre_t = s->pre_t;
	for (size_t i = 0; i < s->pages.n; i++)
		if (s->pages.r[i].granule > max_granule)
			max_granule = s->pages.r[i].granule;
	pthread_mutex_unlock(&s->lock);
	h.buf_len = (uint64_t)s->opts.window_pages * s->page_size;
	if (h.buf_len < max_granule)
		h.buf_len = max_granule;
	h.buf = aligned_alloc(4096, max_granule);
	h.buf_size = h.buf ? max_granule : 0;
	k = h.buf ? emitq_start(s, h.buf_len, s->opts.fault_queue_bytes, &h.q) : -ENOMEM;
	if (k >= 0)
		k = handler_loop(&h);
	emitq_finish(h.q); /* every copy claimed must reach the image */
	if (k < 0 && !snap_failed(s)) {
		if (k == -ESTALE)
			snap_fail(s, k, "the target discarded memory not yet saved (--strict)");
		else
			snap_fail(s, k, "fault handler: %s", strerror(-k));
	}
	free(h.buf);
	free(h.pend);
	free(h.wake);
	return NULL;
}

int snap_handler_start(struct snap *s)
{
	int k;

	if (s->handler_started)
		return 0;
	k = pthread_create(&s->handler, NULL, fault_handler_main, s);
	if (k)
		return snap_fail(s, -k, "cannot start the fault handler"), -k;
	s->handler_started = true;
	return 0;
}

void snap_handler_stop(struct snap *s)
{
	if (!s->handler_started)
		return;
	eventfd_write(s->stopfd, 1);
	pthread_join(s->handler, NULL);
	s->handler_started = false;
	/* A handler started again (pre-copy falling back) must not see this stop. After a
	 * failure nothing starts one again, so its wake-up may go too. */
	if (!snap_failed(s)) {
		eventfd_t v;

		eventfd_read(s->stopfd, &v); /* non-blocking: it was just written */
	}
}

/*
 * The dirty log leaves write protection on every tracked page not written since its last
 * round. Closing it clears all of that in one go with the target's mmap lock held for writing
 * (fs/userfaultfd.c: userfaultfd_release() -> userfaultfd_clear_vma(), which resets every
 * page's protection in the range), and every fault of the target waits meanwhile: about
 * 100 ms per GiB measured here. Clearing the protection first in pieces under the read lock
 * (UFFDIO_WRITEPROTECT mode 0) was not enough: the release still walked every page table
 * under the write lock (35-60 ms for 1 GiB), and a fault then (a page in the middle of
 * having its protection changed faults) waited for all of it (72 ms seen). Unregistering a
 * piece at a time (UFFDIO_UNREGISTER, the same userfaultfd_clear_vma() on that piece) holds
 * the write lock for one piece only, and the release has nothing left to do. Nothing waits
 * on an asynchronous userfaultfd, so no fault can be woken early. A piece the kernel refuses
 * (a range unmapped since, a huge page larger than a piece, the address space gone) is left
 * to close().
 *
 * And a pause after each piece, as long as the piece took: on this project's VM (2 vCPUs,
 * page tables shadowed by the hypervisor) a target thread stood still for up to 134 ms while
 * the pieces followed one another, though not blocked in the kernel (perf sched: it was
 * running); with the pauses, 9 releases of 10 stopped it no more than 5 ms (README,
 * "Pre-copy"). The image is finished before (snapshot.c), so the release only delays
 * uffsnapd's exit.
 */
#define DIRTY_LOG_RELEASE_PIECE (4ull << 20)
#define DIRTY_LOG_RELEASE_PAUSE_MAX_NS 2000000ull

static void dirty_log_release(struct snap *s)
{
	for (size_t i = 0; i < s->pages.n; i++)
		for (uint64_t a = s->pages.r[i].start; a < s->pages.r[i].end;) {
			uint64_t b = s->pages.r[i].end - a > DIRTY_LOG_RELEASE_PIECE
					 ? a + DIRTY_LOG_RELEASE_PIECE
					 : s->pages.r[i].end;
			uint64_t t0 = sys_now_ns();

			if (uffd_unregister(s->uffd, a, b - a) == -ESRCH)
				return;
			sys_pace(t0, DIRTY_LOG_RELEASE_PAUSE_MAX_NS);
			a = b;
		}
}

void snap_cleanup(struct snap *s)
{
	snap_handler_stop(s); /* it polls the uffd: stop it before closing that */
	if (s->uffd >= 0 && s->uffd_async)
		dirty_log_release(s);
	/* Closing the last reference to the uffd drops every protection and wakes every waiter
	 * (fs/userfaultfd.c: userfaultfd_release()), whatever state we are in. */
	if (s->uffd >= 0)
		close(s->uffd);
	if (s->memfd >= 0)
		close(s->memfd);
	if (s->stopfd >= 0)
		close(s->stopfd);
	if (s->pagemapfd >= 0)
		close(s->pagemapfd);
	s->uffd = s->memfd = s->stopfd = s->pagemapfd = -EBADF;
}
