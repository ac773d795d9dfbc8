/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/pinned.h"
#include "engine/plan.h"
#include "engine/snap.h"
#include "engine/uffd-ops.h"

/* Reading a ring's fdinfo again when its buffer list came out short (see pinned_parse_fdinfo). */
#define FDINFO_TRIES	20
#define FDINFO_RETRY_NS 100000

static int span_add(struct snap_span **v, size_t *n, size_t *cap, uint64_t start, uint64_t end)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct snap_span *nv = realloc(*v, c * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = (struct snap_span){start, end};
	return 0;
}

/*
 * io_uring/fdinfo.c (6.18): "UserBufs:\t%u\n", then per slot "%5u: 0x%llx/%u\n" or
 * "%5u: <none>\n". Older kernels print the slots only if they got ctx->uring_lock
 * (has_lock): then the list is shorter than its count.
 */
int pinned_parse_fdinfo(const char *text, struct snap_span **v, size_t *n, size_t *cap)
{
	const char *p = strstr(text, "\nUserBufs:");
	unsigned long count, seen = 0;
	int added = 0;

	if (!p)
		return text[0] ? 0 : -EAGAIN; /* not a ring (or a kernel without the list) */
	if (sscanf(p, "\nUserBufs: %lu", &count) != 1)
		return -EINVAL;
	for (p = strchr(p + 1, '\n'); p && seen < count; p = strchr(p + 1, '\n')) {
		unsigned long long addr;
		unsigned int idx, len;
		char c;

		if (sscanf(p + 1, " %u: %c", &idx, &c) != 2)
			break; /* the next section */
		seen++;
		if (sscanf(p + 1, " %u: 0x%llx/%u", &idx, &addr, &len) != 3 || !len)
			continue; /* an empty slot */
		if (span_add(v, n, cap, addr, addr + len) < 0)
			return -ENOMEM;
		added++;
	}
	return seen < count ? -EAGAIN : added;
}

int pinned_find_rings(struct snap *s)
{
	char path[64], link[64];
	struct dirent *e;
	size_t cap = 0;
	DIR *d;

	s->nrings = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", s->pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		ssize_t k;

		k = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);
		if (k < 0 || e->d_name[0] == '.')
			continue;
		link[k] = 0;
		if (strcmp(link, "anon_inode:[io_uring]"))
			continue;
		if (s->nrings == cap) {
			int *nr = realloc(s->rings, (cap = cap ? cap * 2 : 4) * sizeof(*nr));

			if (!nr) {
				closedir(d);
				return -ENOMEM;
			}
			s->rings = nr;
		}
		s->rings[s->nrings++] = fd;
	}
	closedir(d);
	return 0;
}

/* The whole of /proc/PID/fdinfo/FD (registered files can make it long), NUL-terminated. */
static int read_fdinfo(pid_t pid, int fd, char **ret)
{
	size_t len = 0, cap = 8192;
	char path[64], *buf = malloc(cap), *nb;
	int f;
	ssize_t k;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0 || !buf) {
		k = f < 0 ? -errno : -ENOMEM;
		goto fail;
	}
	while ((k = read(f, buf + len, cap - len - 1)) > 0) {
		len += k;
		if (cap - len > 1)
			continue;
		nb = realloc(buf, cap *= 2);
		if (!nb) {
			k = -ENOMEM;
			goto fail;
		}
		buf = nb;
	}
	if (k < 0) {
		k = -errno;
		goto fail;
	}
	close(f);
	buf[len] = 0;
	*ret = buf;
	return 0;
fail:
	if (f >= 0)
		close(f);
	free(buf);
	return k;
}

static int read_ring(struct snap *s, int fd, size_t *cap)
{
	struct timespec ts = {0, FDINFO_RETRY_NS};
	int k = -EAGAIN;

	for (int t = 0; t < FDINFO_TRIES && k == -EAGAIN; t++) {
		size_t n0 = s->npinned;
		char *text = NULL;

		if (t)
			nanosleep(&ts, NULL);
		k = read_fdinfo(s->pid, fd, &text);
		if (k == -ENOENT)
			return 0; /* closed since pinned_find_rings: its buffers are unregistered */
		if (k >= 0)
			k = pinned_parse_fdinfo(text, &s->pinned, &s->npinned, cap);
		if (k == -EAGAIN)
			s->npinned = n0;
		free(text);
	}
	return k;
}

int pinned_read_bufs(struct snap *s)
{
	size_t cap = 0;
	int k = 0;

	free(s->pinned);
	s->pinned = NULL;
	s->npinned = 0;
	for (size_t i = 0; i < s->nrings && k >= 0; i++)
		k = read_ring(s, s->rings[i], &cap);
	if (k < 0)
		return snap_fail(s, k, "cannot read the io_uring registered buffers of pid %d: %s",
				 s->pid, strerror(-k)),
		       k;
	for (size_t i = 0; i < s->npinned; i++) {
		s->pinned[i].start = s->pinned[i].start / s->page_size * s->page_size;
		s->pinned[i].end =
		    (s->pinned[i].end + s->page_size - 1) / s->page_size * s->page_size;
	}
	plan_merge_spans(s->pinned, &s->npinned);
	return 0;
}

/* One EVENT frame per range that could not be saved exactly. */
static int note_not_exact(struct snap *s, uint64_t start, uint64_t end)
{
	char note[160];

	snprintf(note, sizeof(note),
		 "{\"event\":\"not-exact\",\"start\":\"0x%" PRIx64 "\",\"end\":\"0x%" PRIx64
		 "\",\"why\":\"io_uring registered buffer\"}",
		 start, end);
	return img_writer_event(s->w, note, strlen(note));
}

/* Saves (or, not exact, discards) the granules [i, j) this call claimed; unprotects them. */
static int save_run(struct snap *s, uint64_t i, uint64_t j, const uint8_t *data, bool exact)
{
	int k = uffd_protect(s->uffd, i, j - i, 0);

	if (k < 0)
		return k;
	if (!exact) {
		s->stats.pinned_bytes_not_exact += j - i;
		return img_writer_discarded(s->w, i, (j - i) / s->page_size);
	}
	s->stats.pinned_bytes_held += j - i;
	s->stats.pages_held += (j - i) / s->page_size;
	return snap_emit(s, i, data, j - i);
}

/*
 * [a, b) of tracked range r, granule-aligned: read while protected, then claim granule by
 * granule (a hot span may have saved some already), then save and unprotect what we claimed.
 * Nothing else runs while held, so no claim is lost to a fault or the copier.
 */
static int save_piece(struct snap *s, struct pages_range *r, uint64_t a, uint64_t b, uint8_t *buf,
		      size_t cap, uint64_t *ne_start, uint64_t *ne_end)
{
	int k = 0;

	for (uint64_t x = a, len; x < b && k >= 0; x += len) {
		enum page_state to = PAGE_SAVED;
		uint64_t i = x, j;

		len = b - x < cap ? b - x : cap;
		if (s->stats.pinned_bytes_held + len > PINNED_HELD_MAX ||
		    snap_read_mem(s, x, buf, len) < 0)
			to = PAGE_DISCARDED; /* over the bound, or unreadable: say so */
		while (i < x + len && k >= 0) {
			if (!pages_claim(r, pages_index(r, i), to)) {
				i += r->granule;
				continue;
			}
			for (j = i + r->granule;
			     j < x + len && pages_claim(r, pages_index(r, j), to); j += r->granule)
				;
			k = save_run(s, i, j, buf + (i - x), to == PAGE_SAVED);
			if (to == PAGE_DISCARDED) {
				*ne_start = *ne_end ? *ne_start : i;
				*ne_end = j;
			}
			i = j;
		}
	}
	return k;
}

/* The parts of span p in tracked ranges, widened to their granules. */
static int save_span(struct snap *s, const struct snap_span *p, uint8_t *buf, size_t cap)
{
	uint64_t ne_start = 0, ne_end = 0;
	int k = 0;

	for (size_t i = 0; i < s->pages.n && k >= 0; i++) {
		struct pages_range *r = &s->pages.r[i];
		uint64_t a = p->start > r->start ? p->start : r->start;
		uint64_t b = p->end < r->end ? p->end : r->end;

		if (a >= b)
			continue;
		a = r->start + (a - r->start) / r->granule * r->granule;
		b = r->start + (b - r->start + r->granule - 1) / r->granule * r->granule;
		k = save_piece(s, r, a, b, buf, cap, &ne_start, &ne_end);
	}
	if (k >= 0 && ne_end)
		k = note_not_exact(s, ne_start, ne_end);
	return k;
}

static int cmp_len(const void *a, const void *b)
{
	const struct snap_span *x = a, *y = b;

	return x->end - x->start < y->end - y->start ? -1 : x->end - x->start > y->end - y->start;
}

int pinned_save_held(struct snap *s)
{
	size_t cap = 1 << 20;
	uint8_t *buf;
	int k = 0;

	if (!s->npinned)
		return 0;
	for (size_t i = 0; i < s->pages.n; i++)
		if (s->pages.r[i].granule > cap)
			cap = s->pages.r[i].granule; /* hugetlb */
	buf = aligned_alloc(4096, cap);
	if (!buf)
		return -ENOMEM;
	/* Smallest first: the bound then leaves as many buffers exact as it can. */
	qsort(s->pinned, s->npinned, sizeof(*s->pinned), cmp_len);
	for (size_t i = 0; i < s->npinned && k >= 0; i++)
		k = save_span(s, &s->pinned[i], buf, cap);
	free(buf);
	if (k >= 0 && s->opts.strict && s->stats.pinned_bytes_not_exact)
		return snap_fail(
			   s, -EOPNOTSUPP,
			   "pid %d has %" PRIu64 " KiB of io_uring registered buffers beyond the "
			   "%llu MiB copied while it is held: they cannot be saved exactly "
			   "(--strict)",
			   s->pid, s->stats.pinned_bytes_not_exact >> 10, PINNED_HELD_MAX >> 20),
		       -EOPNOTSUPP;
	return k;
}
