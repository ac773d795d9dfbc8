/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wl-memory.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

struct wl_kind_ops {
	const char *name;
	size_t granule; /* 0: the page size */
	bool forks_copy;
	bool child_writes;
	int (*map)(size_t size, const char *tmpdir, uint8_t **ret);
};

static int wl_mmap(size_t size, int flags, int fd, uint8_t **ret)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	*ret = p;
	return 0;
}

static int wl_map_anon(size_t size, const char *tmpdir, uint8_t **ret)
{
	int r = wl_mmap(size, MAP_PRIVATE | MAP_ANONYMOUS, -1, ret);

	/* Small pages on purpose: every page is its own protection and copy unit. */
	if (r >= 0 && madvise(*ret, size, MADV_NOHUGEPAGE) < 0) {
		r = -errno;
		munmap(*ret, size);
	}
	return r;
}

static int wl_map_thp(size_t size, const char *tmpdir, uint8_t **ret)
{
	uint8_t *p = NULL, *aligned;
	int r;

	/* Over-map by one huge page and trim, so the region starts 2 MiB aligned. */
	r = wl_mmap(size + WL_HUGE_SIZE, MAP_PRIVATE | MAP_ANONYMOUS, -1, &p);
	if (r < 0)
		return r;
	aligned = (uint8_t *)(((uintptr_t)p + WL_HUGE_SIZE - 1) & ~(WL_HUGE_SIZE - 1));
	if (aligned > p)
		munmap(p, (size_t)(aligned - p));
	if (p + WL_HUGE_SIZE > aligned)
		munmap(aligned + size, (size_t)(p + WL_HUGE_SIZE - aligned));
	if (madvise(aligned, size, MADV_HUGEPAGE) < 0) {
		r = -errno;
		munmap(aligned, size);
		return r;
	}
	*ret = aligned;
	return 0;
}

static int wl_map_shm(size_t size, const char *tmpdir, uint8_t **ret)
{
	return wl_mmap(size, MAP_SHARED | MAP_ANONYMOUS, -1, ret);
}

static int wl_map_memfd(size_t size, const char *tmpdir, uint8_t **ret)
{
	int fd = memfd_create("uffsnap-wl", MFD_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	if (r >= 0)
		r = wl_mmap(size, MAP_SHARED, fd, ret);
	close(fd);
	return r;
}

static int wl_map_hugetlb(size_t size, const char *tmpdir, uint8_t **ret)
{
	int r = wl_mmap(size, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, ret);

	/* A private hugetlb mapping reserves its pages at mmap: no free pages is ENOMEM here. */
	return r == -EINVAL ? -ENOMEM : r;
}

static int wl_map_filepriv(size_t size, const char *tmpdir, uint8_t **ret)
{
	char path[4096];
	int fd = -EBADF, r;

	if (!tmpdir)
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/region-XXXXXX", tmpdir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	if (r >= 0)
		r = wl_mmap(size, MAP_PRIVATE, fd, ret);
	/* The mapping keeps the file alive; nothing else should find it. */
	unlink(path);
	close(fd);
	return r;
}

static const struct wl_kind_ops wl_kinds[WL_KIND_COUNT] = {
	[WL_KIND_ANON] = {"anon", 0, true, true, wl_map_anon},
	[WL_KIND_THP] = {"thp", WL_HUGE_SIZE, true, true, wl_map_thp},
	[WL_KIND_SHM] = {"shm", 0, false, false, wl_map_shm},
	[WL_KIND_MEMFD] = {"memfd", 0, false, false, wl_map_memfd},
	[WL_KIND_HUGETLB] = {"hugetlb", WL_HUGE_SIZE, true, false, wl_map_hugetlb},
	[WL_KIND_FILEPRIV] = {"filepriv", 0, true, true, wl_map_filepriv},
};

int wl_kind_from_name(const char *name)
{
	for (int k = 0; k < WL_KIND_COUNT; k++)
		if (strcmp(name, wl_kinds[k].name) == 0)
			return k;
	return -EINVAL;
}

const char *wl_kind_name(enum wl_kind kind)
{
	return kind < WL_KIND_COUNT ? wl_kinds[kind].name : "?";
}

bool wl_kind_forks_copy(enum wl_kind kind)
{
	return kind < WL_KIND_COUNT && wl_kinds[kind].forks_copy;
}

bool wl_kind_child_writes(enum wl_kind kind)
{
	return kind < WL_KIND_COUNT && wl_kinds[kind].child_writes;
}

int wl_memory_map(enum wl_kind kind, size_t size, const char *tmpdir, struct wl_mapping *ret)
{
	size_t granule;
	uint8_t *p = NULL;
	int r;

	if (kind >= WL_KIND_COUNT || size == 0)
		return -EINVAL;
	granule = wl_kinds[kind].granule ? wl_kinds[kind].granule : (size_t)getpagesize();
	size = (size + granule - 1) / granule * granule;
	r = wl_kinds[kind].map(size, tmpdir, &p);
	if (r < 0)
		return r;
	*ret = (struct wl_mapping){p, size};
	return 0;
}

void wl_memory_unmap(struct wl_mapping *m)
{
	if (!m || !m->addr)
		return;
	munmap(m->addr, m->size);
	*m = (struct wl_mapping){0};
}
