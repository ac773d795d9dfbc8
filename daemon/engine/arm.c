/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sys/clock.h"
#include "sys/linux-compat.h"
#include "engine/arm.h"
#include "engine/dirtylog.h"
#include "engine/heldcopy.h"
#include "engine/pinned.h"
#include "engine/plan.h"
#include "engine/rings.h"
#include "engine/shared.h"
#include "engine/uffd-ops.h"
#include "target/holder.h"

#define UFFD_FEATURES_WANTED                                                                     \
	(UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_EVENT_REMAP | \
	 UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)

#define DEFAULT_WINDOW_PAGES 16
#define DEFAULT_CHUNK_PAGES 512
#define MAX_ARM_THREADS 4
#define MAX_DEFAULT_COPY_THREADS 4
/* Below this, arming on one thread is faster than starting others. */
#define ARM_PARALLEL_MIN (64ull << 20)

void snap_defaults(struct snap_opts *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (!o->window_pages || o->window_pages > 512)
		o->window_pages = DEFAULT_WINDOW_PAGES;
	if (!o->chunk_pages)
		o->chunk_pages = DEFAULT_CHUNK_PAGES;
	if (!o->arm_threads)
		o->arm_threads = cpus < 1 ? 1 : cpus > MAX_ARM_THREADS ? MAX_ARM_THREADS : cpus;
	if (!o->copy_threads) { /* half the CPUs: the target keeps the other half */
		long half = cpus / 2;

		o->copy_threads = half < 1			    ? 1
				  : half > MAX_DEFAULT_COPY_THREADS ? MAX_DEFAULT_COPY_THREADS
								    : half;
	}
	if (o->copy_threads > SNAP_MAX_COPY_THREADS) /* copier_run()'s array of threads */
		o->copy_threads = SNAP_MAX_COPY_THREADS;
}

/* With a scope, only its VMAs are saved, and each must be tracked: never copied while held. */
static int check_scope(struct snap *s)
{
	if (!plan_scope(&s->vmas, s->opts.scope, s->opts.nscope))
		return snap_fail(s, -ENOENT, "none of the memory to save is mapped in pid %d",
				 s->pid), -ENOENT;
	for (size_t i = 0; i < s->vmas.n; i++) {
		const struct vma *v = &s->vmas.v[i];

		if (v->plan != VMA_PLAN_NONE && v->plan != VMA_PLAN_TRACK)
			return snap_fail(s, -EOPNOTSUPP,
					 "0x%llx-0x%llx (%s) cannot be write-protected",
					 (unsigned long long)v->start, (unsigned long long)v->end,
					 v->path ? v->path : vma_kind_name(v->kind)), -EOPNOTSUPP;
	}
	return 0;
}

int snap_scan(struct snap *s)
{
	int r;

	vma_list_free(&s->vmas);
	r = vma_scan(s->pid, &s->vmas);
	if (r < 0)
		return snap_fail(s, r, "cannot read the memory layout of pid %d: %s", s->pid,
				 strerror(-r)), r;
	r = pinned_find_rings(s);
	if (r < 0)
		return snap_fail(s, r, "cannot list the open files of pid %d: %s", s->pid,
				 strerror(-r)), r;
	return s->opts.scope ? check_scope(s) : 0;
}

/*
 * The pages around each thread's stack pointer and TLS, where they are in a tracked anonymous
 * VMA: saved while held, so that no thread's exit (its clear_child_tid word, robust list and
 * rseq area live by its TLS) meets a protected page, and no thread faults on its first push.
 */
static int plan_hot(struct snap *s)
{
	free(s->hot);
	s->nhot = 0;
	s->hot = calloc(s->held.nstack_addrs + 1, sizeof(*s->hot));
	if (!s->hot)
		return -ENOMEM;
	s->nhot = plan_hot_spans(&s->vmas, s->held.stack_addrs, s->held.nstack_addrs,
				  s->page_size, s->hot);
	return 0;
}

int snap_plan(struct snap *s)
{
	int r = 0;

	if (!s->vmas.n || vma_list_refresh(s->pid, &s->vmas, s->opts.scope, s->opts.nscope) < 0)
		r = snap_scan(s); /* smaps walks every page table: only when maps cannot tell */
	if (r < 0)
		return r;
	vma_mark_thread_stacks(&s->vmas, s->held.stack_addrs, s->held.nstack_addrs);
	r = pinned_read_bufs(s);
	return r < 0 ? r : plan_hot(s);
}

/* Registers one VMA; a VMA the kernel will not track is copied while held instead. */
static int register_vma(struct snap *s, struct vma *v)
{
	int r = uffd_register_wp(s->uffd, v->start, v->end - v->start);

	if (r >= 0) {
		s->stats.vmas_tracked++;
		return 0;
	}
	if (r == -EBUSY && s->opts.scope) /* a guest's RAM: copying it held would stop it long */
		return snap_fail(s, r, "0x%llx-0x%llx is already write-protected by another "
				 "userfaultfd (another snapshot of it running, or QEMU's own "
				 "background-snapshot)", (unsigned long long)v->start,
				 (unsigned long long)v->end), r;
	if (s->opts.scope || (r != -EINVAL && r != -EBUSY && r != -EPERM && r != -EOPNOTSUPP))
		return snap_fail(s, r, "cannot register 0x%llx-0x%llx: %s",
				 (unsigned long long)v->start, (unsigned long long)v->end,
				 strerror(-r)), r;
	v->plan = VMA_PLAN_COPY;
	snprintf(v->note, sizeof(v->note), "%s",
		 r == -EBUSY ? "EBUSY: already owned by another userfaultfd, copied"
			     : "write protection not supported here, copied");
	return 0;
}

struct arm_job {
	struct snap *s;
	unsigned idx, nthreads;
	uint64_t total;
	int result;
};

/* Thread idx protects the idx-th share of all tracked bytes, cut at granule boundaries. */
static void *arm_worker(void *arg)
{
	struct arm_job *j = arg;
	struct pages *p = &j->s->pages;
	uint64_t lo = j->total * j->idx / j->nthreads, hi = j->total * (j->idx + 1) / j->nthreads;
	uint64_t pos = 0;

	for (size_t i = 0; i < p->n && j->result >= 0; i++) {
		const struct pages_range *r = &p->r[i];
		uint64_t len = r->end - r->start;
		uint64_t a = lo > pos ? lo - pos : 0, b = hi - pos < len ? hi - pos : len;

		if (hi > pos && lo < pos + len) {
			a = a / r->granule * r->granule;
			b = (b + r->granule - 1) / r->granule * r->granule;
			if (b > len)
				b = len;
			if (b > a)
				j->result = uffd_protect(j->s->uffd, r->start + a, b - a, 1);
		}
		pos += len;
	}
	return NULL;
}

int snap_register(struct snap *s)
{
	int r = 0;

	s->stats.vmas_tracked = 0;
	for (size_t i = 0; i < s->vmas.n && r >= 0; i++)
		if (s->vmas.v[i].plan == VMA_PLAN_TRACK)
			r = register_vma(s, &s->vmas.v[i]);
	pages_free(&s->pages);
	if (r >= 0)
		r = pages_init(&s->pages, &s->vmas);
	if (r < 0)
		snap_fail(s, r, "cannot register the memory: %s", strerror(-r));
	return r;
}

int snap_protect_all(struct snap *s)
{
	uint64_t t0 = sys_now_ns(), total = 0;
	struct arm_job jobs[MAX_ARM_THREADS];
	pthread_t th[MAX_ARM_THREADS];
	bool started[MAX_ARM_THREADS] = {false};
	unsigned n;
	int r = 0;

	for (size_t i = 0; i < s->pages.n; i++)
		total += s->pages.r[i].end - s->pages.r[i].start;
	n = total < ARM_PARALLEL_MIN ? 1 : s->opts.arm_threads;
	for (unsigned i = 0; i < n; i++) {
		jobs[i] = (struct arm_job){s, i, n, total, 0};
		started[i] = i && pthread_create(&th[i], NULL, arm_worker, &jobs[i]) == 0;
	}
	for (unsigned i = 0; i < n; i++)
		if (!started[i]) /* ours, or a thread that could not start: run it here */
			arm_worker(&jobs[i]);
	for (unsigned i = 0; i < n; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		if (jobs[i].result < 0)
			r = jobs[i].result;
	}
	s->stats.arm_ns = sys_now_ns() - t0;
	return r;
}

int snap_arm(struct snap *s)
{
	int r = snap_register(s);

	if (r >= 0)
		r = snap_protect_all(s);
	if (r < 0 && !snap_failed(s))
		snap_fail(s, r, "cannot write-protect: %s", strerror(-r));
	return r;
}

/* Writes [a, a + len) of a VMA copied while held: buf, or zero pages if buf is NULL. */
static int write_copied(struct snap *s, uint64_t a, const uint8_t *buf, size_t len)
{
	int r;

	if (!buf)
		return snap_emit_zero(s, a, len);
	r = snap_emit(s, a, buf, len);
	if (r >= 0)
		s->stats.pages_held += len / s->page_size;
	return r;
}

/*
 * As write_copied(), keeping the bytes for a chain's next image (s->held_rec); in a chain's
 * increment, only the pages that differ from the image before's (engine/heldcopy.h) or that
 * this image's rounds wrote (their copy is older than the instant).
 */
static int save_copied(struct snap *s, uint64_t a, const uint8_t *buf, size_t len)
{
	size_t ps = s->page_size, run = 0;
	int r = s->held_rec ? held_copies_add(s->held_rec, a, buf, len) : 0;

	if (r < 0 || !s->held_prev)
		return r < 0 ? r : write_copied(s, a, buf, len);
	for (size_t off = 0; off <= len && r >= 0; off += ps) {
		bool same = off < len && !(s->held_wrote && spans_has(s->held_wrote, a + off)) &&
			    held_copies_same(s->held_prev, a + off, buf ? buf + off : NULL, ps);

		if (off < len && !same) {
			run += ps;
			continue;
		}
		if (run)
			r = write_copied(s, a + off - run, buf ? buf + off - run : NULL, run);
		run = 0;
		if (same)
			s->stats.pages_unchanged++;
	}
	return r;
}

/* Copies one VMA in chunks. Unreadable parts (guard pages, PROT_NONE holes) are skipped. */
static int copy_vma(struct snap *s, const struct vma *v, uint8_t *buf, size_t chunk)
{
	uint8_t present[256]; /* chunk / page size */

	for (uint64_t a = v->start; a < v->end; a += chunk) {
		size_t len = v->end - a < chunk ? v->end - a : chunk;
		int r;

		/* Thread stacks are mostly untouched: skip reading what is not there. */
		if (v->kind == VMA_ANON && chunk / s->page_size <= sizeof(present)) {
			snap_scan_present(s, a, a + len, s->page_size, present);
			if (!memchr(present, 1, len / s->page_size)) {
				r = save_copied(s, a, NULL, len);
				if (r < 0)
					return r;
				continue;
			}
		}
		r = snap_read_mem(s, a, buf, len);

		if (r == -EFAULT || r == -EIO) {
			chunk = s->page_size; /* find the readable pages one at a time */
			len = s->page_size;
			r = snap_read_mem(s, a, buf, len);
			if (r == -EFAULT || r == -EIO)
				continue;
		}
		if (r < 0)
			return r;
		r = save_copied(s, a, buf, len);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Saves a hot range of a tracked VMA while held: nothing else runs yet (no fault handler, no
 * copier), so every granule is still protected and ours to claim; then unprotects it.
 */
static int save_hot(struct snap *s, const struct snap_span *h, uint8_t *buf, size_t chunk)
{
	struct pages_range *r = pages_find(&s->pages, h->start);
	uint8_t present[256]; /* a chunk's granules, at most */
	int k = 0;

	if (!r || h->end > r->end)
		return 0; /* not tracked after all (registration refused): copied with its VMA */
	if (chunk > sizeof(present) * r->granule)
		chunk = sizeof(present) * r->granule;
	for (uint64_t a = h->start; a < h->end && k >= 0; a += chunk) {
		uint64_t len = h->end - a < chunk ? h->end - a : chunk;
		size_t n = len / r->granule;

		/* An idle thread's window is mostly never touched: no reading that. */
		snap_scan_present(s, a, a + len, r->granule, present);
		k = snap_read_present(s, a, r->granule, n, present, buf);
		if (k == -EFAULT || k == -EIO)
			return 0; /* unreadable: the copier and the faults deal with it as usual */
		for (uint64_t g = a; k >= 0 && g < a + len; g += r->granule)
			if (!pages_claim(r, pages_index(r, g), PAGE_SAVED))
				k = -EBUSY; /* cannot happen while held */
		if (k >= 0)
			k = uffd_protect(s->uffd, a, len, 0);
		if (k >= 0)
			k = snap_emit_present(s, a, r->granule, 0, n, present, buf);
		if (k >= 0)
			s->stats.pages_held += len / s->page_size;
	}
	return k;
}

int snap_copy_held(struct snap *s)
{
	const size_t chunk = 1 << 20;
	uint8_t *buf = aligned_alloc(4096, chunk);
	int r = buf ? 0 : -ENOMEM;

	for (size_t i = 0; i < s->vmas.n && r >= 0; i++) {
		if (s->vmas.v[i].plan != VMA_PLAN_COPY)
			continue;
		s->stats.vmas_copied++;
		r = copy_vma(s, &s->vmas.v[i], buf, chunk);
	}
	for (size_t i = 0; i < s->nhot && r >= 0; i++)
		r = save_hot(s, &s->hot[i], buf, chunk);
	free(buf);
	if (r >= 0)
		r = pinned_save_held(s);
	if (r >= 0)
		r = rings_note_held(s);
	if (r >= 0)
		r = shared_note_instant(s);
	if (snap_failed(s))
		return s->error; /* --strict */
	if (r == -ENOBUFS)
		return snap_fail(s, r, "more than %u MiB of memory that cannot be write-protected "
				 "would be copied while pid %d is held; not holding it that long",
				 SNAP_GATE_MAX_BYTES >> 20, s->pid), r;
	if (r < 0)
		return snap_fail(s, r, "cannot copy memory of pid %d: %s", s->pid, strerror(-r)), r;
	return 0;
}

int snap_first_hold(struct snap *s, bool registers, struct holder **ret)
{
	uint64_t t0 = sys_now_ns();
	int devfd = s->opts.devuffd_fd, k;

	if (devfd < 0) {
		devfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (devfd < 0) {
			k = -errno;
			snap_fail(s, k, "cannot open /dev/userfaultfd: %s", strerror(-k));
			return k;
		}
	}
	k = holder_start(s->pid, s->opts.pidfd, devfd, registers, ret, &s->held, s->err.msg,
			 sizeof(s->err.msg));
	if (devfd != s->opts.devuffd_fd)
		close(devfd);
	if (k < 0) {
		s->error = k; /* the message is the holder's */
		return k;
	}
	s->stats.attach_ns = sys_now_ns() - t0;
	s->uffd = s->held.uffd;
	s->held.uffd = -EBADF;
	s->stats.threads = s->held.nthreads;
	/* Pre-copy: the kernel resolves write faults itself, and keeps the dirty log. */
	s->uffd_async = s->opts.precopy;
	return snap_uffd_api(s, s->uffd, s->opts.precopy);
}

int snap_uffd_api(struct snap *s, int uffd, bool async)
{
	uint64_t features = 0;
	int k = uffd_api(uffd, UFFD_FEATURES_WANTED | (async ? UFFD_FEATURE_WP_ASYNC : 0),
			 &features);

	if (k < 0)
		snap_fail(s, k, "UFFDIO_API: %s (kernel lacks userfaultfd write-protect%s?)",
			  strerror(-k), async ? " or its asynchronous mode" : "");
	return k;
}

uint64_t snap_hold_began(const struct snap *s, uint64_t asked_ns)
{
	return s->held.held_at_ns > asked_ns ? s->held.held_at_ns : asked_ns;
}

int snap_copy_held_timed(struct snap *s)
{
	uint64_t t0 = sys_now_ns();
	int k = snap_copy_held(s);

	s->stats.copy_held_ns = sys_now_ns() - t0;
	return k;
}
