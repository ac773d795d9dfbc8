/* SPDX-License-Identifier: MIT */
/* The workload's memory kinds: one table entry per kind, as in the kernel's uffd selftests. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WL_HUGE_SIZE (2UL << 20)

enum wl_kind {
	WL_KIND_ANON,
	WL_KIND_THP,
	WL_KIND_SHM,
	WL_KIND_MEMFD,
	WL_KIND_HUGETLB,
	WL_KIND_FILEPRIV,
	WL_KIND_COUNT,
};

struct wl_mapping {
	uint8_t *addr;
	size_t size;
};

/* The kind for a name, or -EINVAL. */
int wl_kind_from_name(const char *name);
const char *wl_kind_name(enum wl_kind kind);
/* fork() gives the child its own copy (private mapping), so the child may check it. */
bool wl_kind_forks_copy(enum wl_kind kind);
/* The child may also write its copy (private, and not hugetlb: a hugetlb copy-on-write in a
 * child that finds no free huge page is killed with SIGBUS). */
bool wl_kind_child_writes(enum wl_kind kind);

/*
 * Map size bytes (rounded up to the kind's granule) of the kind, readable and writable.
 * tmpdir: a directory for filepriv's backing files (they are unlinked once mapped).
 * -ENOMEM for hugetlb means no free huge pages.
 */
int wl_memory_map(enum wl_kind kind, size_t size, const char *tmpdir, struct wl_mapping *ret);
void wl_memory_unmap(struct wl_mapping *m);
