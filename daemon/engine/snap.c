/* SPDX-License-Identifier: MIT */
/*
 * The primitives on one snapshot's shared state (engine/snap.h): failing it, reading the
 * target's memory, writing saved pages to the image, the layout-event ring.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sys/linux-compat.h"
#include "engine/snap.h"
#include "engine/wpmarker.h"

static const char *cancel_reason(int c)
{
	switch (c) {
	case -ECANCELED:
		return "cancelled; the image is incomplete";
	case -EINTR:
		return "interrupted; the image is incomplete";
	default:
		return "the target went away; the image is incomplete";
	}
}

/*
 * The memory opened at the start reads nothing once its process has left it (exec or exit:
 * fs/proc/base.c mem_rw(), the mm has no users), while an address space still in use fails a
 * read of address 0 with EIO.
 */
bool snap_mm_gone(struct snap *s)
{
	uint8_t probe;

	return s->memfd >= 0 && pread(s->memfd, &probe, 1, 0) == 0;
}

void snap_fail(struct snap *s, int error, const char *fmt, ...)
{
	int expect = 0, c = s->opts.cancel ? __atomic_load_n(s->opts.cancel, __ATOMIC_ACQUIRE) : 0;
	va_list ap;

	/* A write that gave up because the snapshot must end: say why it must. */
	if (error == -ECANCELED && c < 0)
		error = c;
	if (!__atomic_compare_exchange_n(&s->error, &expect, error, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return; /* the first failure is the one reported */
	va_start(ap, fmt);
	if (error == c)
		snprintf(s->err.msg, sizeof(s->err.msg), "%s", cancel_reason(c));
	else
		vsnprintf(s->err.msg, sizeof(s->err.msg), fmt, ap);
	va_end(ap);
	/* Whatever failed (a read said ESRCH, a registration ENOMEM, a scan ESRCH...), the cause
	 * may be the target leaving its address space: snap_finish() words the reason. */
	if (error != c)
		s->mm_gone = snap_mm_gone(s);
	if (s->stopfd >= 0)
		eventfd_write(s->stopfd, 1);
}

bool snap_events_overlap(const struct snap *s, uint64_t gen, uint64_t start, uint64_t end)
{
	if (s->event_gen - gen > SNAP_EVENT_RING)
		return true;
	for (uint64_t g = gen + 1; g <= s->event_gen; g++) {
		const struct snap_event_range *e = &s->events[g % SNAP_EVENT_RING];

		for (int i = 0; i < 2; i++)
			if (e->start[i] < end && start < e->end[i])
				return true;
	}
	return false;
}

int snap_cancelled(struct snap *s)
{
	int c = s->opts.cancel ? __atomic_load_n(s->opts.cancel, __ATOMIC_ACQUIRE) : 0;

	if (c >= 0)
		return 0;
	snap_fail(s, c, "%s", cancel_reason(c));
	return -ECANCELED;
}

bool snap_failed(struct snap *s)
{
	return __atomic_load_n(&s->error, __ATOMIC_ACQUIRE) != 0;
}

/*
 * Reads target memory through /proc/PID/mem, which is bound to the mm it was opened on: after
 * an exec or exit it reads nothing (fs/proc/base.c: mem_rw() fails mmget_not_zero()), so we can
 * never save pages of a different address space by mistake.
 */
int snap_read_mem(struct snap *s, uint64_t addr, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(s->memfd, (char *)buf + done, len - done, (off_t)(addr + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ESRCH;
		done += n;
	}
	return 0;
}

/*
 * process_vm_readv() names the target by pid, not by the memory snap_read_mem() opened: were
 * the target to exec (or exit, and its pid be reused) before the read, it would read another
 * program's memory. So after the read, snap_mm_gone() asks whether the memory opened at the
 * start is still its process's, and if not the read is refused. A held target
 * (ptrace-stopped) cannot exec at all.
 */
ssize_t snap_read_spans(struct snap *s, const struct snap_span *v, size_t n, uint8_t *buf)
{
	struct iovec local = {buf, 0}, remote[SNAP_READ_SPANS_MAX];
	size_t whole = 0;
	ssize_t got;

	if (n > SNAP_READ_SPANS_MAX)
		n = SNAP_READ_SPANS_MAX;
	for (size_t i = 0; i < n; i++) {
		remote[i] = (struct iovec){(void *)(uintptr_t)v[i].start, v[i].end - v[i].start};
		local.iov_len += remote[i].iov_len;
	}
	do
		got = n ? process_vm_readv(s->pid, &local, 1, remote, n, 0) : 0;
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return errno == ESRCH ? -ESRCH : 0; /* EFAULT and the like: one by one */
	for (size_t i = 0; i < n && (size_t)got >= remote[i].iov_len; i++) {
		got -= remote[i].iov_len;
		whole++;
	}
	if (whole && snap_mm_gone(s))
		return -ESRCH;
	return (ssize_t)whole;
}

/* Unmarks the granules of reg (within [start, end)) that are all uffd-wp markers. */
static void clear_markers(struct snap *s, uint64_t start, uint64_t end, uint32_t granule,
			  const struct page_region *reg, uint8_t *present)
{
	uint64_t a = reg->start / granule * granule;
	uint64_t b = (reg->end + granule - 1) / granule * granule;

	a = a < start ? start : a;
	b = b > end ? end : b;
	wpmarker_clear(s->pagemapfd, s->wp_marker, a, b, granule, present + (a - start) / granule);
}

void snap_scan_present(struct snap *s, uint64_t start, uint64_t end, uint32_t granule,
		       uint8_t *present)
{
	size_t n = (end - start) / granule;
	struct page_region regs[64];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (uintptr_t)regs,
		.vec_len = 64,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO,
	};
	long k;

	memset(present, s->pagemapfd < 0, n);
	if (s->pagemapfd < 0)
		return;
	do {
		k = ioctl(s->pagemapfd, PAGEMAP_SCAN, &arg);
		if (k < 0) {
			memset(present, 1, n); /* cannot tell: read it all */
			return;
		}
		for (long i = 0; i < k; i++) {
			if (regs[i].categories & PAGE_IS_PFNZERO)
				continue; /* the kernel's zero page, mapped by a read */
			for (uint64_t a = regs[i].start; a < regs[i].end; a += granule)
				present[(a - start) / granule] = 1;
			if (regs[i].categories == PAGE_IS_SWAPPED) /* or a marker: wpmarker.h */
				clear_markers(s, start, end, granule, &regs[i], present);
		}
		arg.start = arg.walk_end;
	} while (k == 64 && arg.walk_end < end);
}

/* len is a page size; a page with data mostly says so in its first 256 bytes. */
static bool page_is_zero(const uint8_t *p, size_t len)
{
	const uint64_t *q = (const uint64_t *)p;

	for (size_t i = 0; i < len / 8; i += 32) {
		uint64_t acc = 0;

		for (size_t k = 0; k < 32; k++)
			acc |= q[i + k];
		if (acc)
			return false;
	}
	return true;
}

bool snap_next_run(const uint8_t *flags, size_t n, size_t *i, size_t *j)
{
	while (*i < n && !flags[*i])
		(*i)++;
	for (*j = *i; *j < n && flags[*j]; (*j)++)
		;
	return *i < n;
}

int snap_emit_zero(struct snap *s, uint64_t addr, size_t len)
{
	int k = img_writer_zero(s->w, addr, len / s->page_size);

	if (k >= 0)
		__atomic_add_fetch(&s->stats.pages_zero, len / s->page_size, __ATOMIC_RELAXED);
	return k;
}

int snap_read_present(struct snap *s, uint64_t start, uint32_t granule, size_t n,
		      const uint8_t *present, uint8_t *buf)
{
	size_t i = 0, j;
	int k = 0;

	for (; k >= 0 && snap_next_run(present, n, &i, &j); i = j)
		k = snap_read_mem(s, start + i * granule, buf + i * granule, (j - i) * granule);
	return k < 0 ? k : 0;
}

int snap_emit_present(struct snap *s, uint64_t start, uint32_t granule, size_t i, size_t j,
		      const uint8_t *present, const uint8_t *buf)
{
	int k = 0;

	for (size_t e; k >= 0 && i < j; i = e) {
		uint64_t a = start + i * granule;

		for (e = i + 1; e < j && present[e] == present[i]; e++)
			;
		k = present[i] ? snap_emit(s, a, buf + i * granule, (e - i) * granule)
			       : snap_emit_zero(s, a, (e - i) * granule);
	}
	return k;
}

int snap_emit(struct snap *s, uint64_t addr, const uint8_t *buf, size_t len)
{
	size_t ps = s->page_size;

	for (size_t i = 0; i < len;) {
		bool zero = page_is_zero(buf + i, ps);
		size_t j = i + ps;
		int k;

		while (j < len && page_is_zero(buf + j, ps) == zero)
			j += ps;
		if (zero)
			k = snap_emit_zero(s, addr + i, j - i);
		else
			k = img_writer_pages(s->w, addr + i, (j - i) / ps, buf + i);
		if (k < 0)
			return k;
		i = j;
	}
	return 0;
}

int snap_dirty_add(struct snap *s, uint64_t start, uint64_t end)
{
	if (s->ndirty == s->dirty_cap) {
		size_t cap = s->dirty_cap ? s->dirty_cap * 2 : 1024;
		struct snap_span *n = realloc(s->dirty, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->dirty = n;
		s->dirty_cap = cap;
	}
	s->dirty[s->ndirty++] = (struct snap_span){start, end};
	return 0;
}
