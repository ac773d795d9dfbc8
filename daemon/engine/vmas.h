/* SPDX-License-Identifier: MIT */
/* The target's memory layout at the snapshot instant, from /proc/PID/smaps, and its plan. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "engine/snap-types.h"

enum vma_kind {
	VMA_ANON,	  /* private anonymous: heap, stacks, THP */
	VMA_SHM,	  /* shared anonymous, memfd, tmpfs */
	VMA_HUGETLB,	  /* hugetlbfs, private or shared */
	VMA_FILE_PRIVATE, /* writable private file mapping */
	VMA_FILE_SHARED,  /* shared mapping of a regular file */
	VMA_TEXT,	  /* read-only file mapping */
	VMA_VDSO,
	VMA_VVAR,
	VMA_VSYSCALL,
	VMA_IO,	   /* VM_IO / VM_PFNMAP */
	VMA_OTHER, /* PROT_NONE, VM_DONTDUMP, anything unreadable */
};

/* What the snapshot does with a VMA. */
enum vma_plan {
	VMA_PLAN_TRACK,	    /* register + write-protect; copier and fault handler save it */
	VMA_PLAN_COPY,	    /* copy while the target is held */
	VMA_PLAN_REFERENCE, /* record (path, offset): the file holds the content */
	VMA_PLAN_NONE,	    /* layout only */
};

struct vma {
	uint64_t start, end;
	uint64_t offset;
	char prot[5]; /* "rw-p" */
	unsigned dev_major, dev_minor;
	uint64_t inode;
	char *path; /* NULL for anonymous */
	enum vma_kind kind;
	enum vma_plan plan;
	uint32_t granule; /* write-protection granularity: page size, or the huge page size */
	bool thread_stack; /* holds a thread's stack or TLS: copied while held (DESIGN.md) */
	char note[64];	   /* why the plan differs from the kind's default ("EBUSY: ...") */
};

struct vma_list {
	struct vma *v;
	size_t n;
};

int vma_scan(pid_t pid, struct vma_list *ret);
/* vma_scan() on smaps text read from fp (to its end): the list, each VMA classified. */
int vma_parse(FILE *fp, struct vma_list *ret);
/*
 * Brings l up to date from /proc/PID/maps (cheap: no page-table walk, unlike smaps) when that
 * is enough, so that the smaps scan runs before the target is held. For a snapshot saving only
 * [keep] (a guest's RAM): 0 if l is unchanged, or if what changed are private anonymous VMAs
 * outside keep (QEMU starting its migration thread maps a stack) and VMAs gone from outside
 * keep. The VMAs that came are classified from maps (plan VMA_PLAN_NONE, kind anon, or other
 * when unreadable: maps has no VmFlags, so an MADV_DONTDUMP one reads as anon, where smaps
 * would say other: nothing saved differs). -ESTALE when only vma_scan() can tell: anything
 * changed and keep is empty (every VMA may be saved), anything inside keep changed, or a VMA
 * with a path or a shared one came. Else -errno.
 */
int vma_list_refresh(pid_t pid, struct vma_list *l, const struct snap_span *keep, size_t nkeep);
void vma_list_free(struct vma_list *l);
/* Marks VMAs that contain one of the addresses (thread stack pointers, TLS bases). */
void vma_mark_thread_stacks(struct vma_list *l, const uint64_t *addrs, size_t n);
/* Index of the VMA containing addr, or -1. The list is sorted by address. */
ssize_t vma_find(const struct vma_list *l, uint64_t addr);
const char *vma_kind_name(enum vma_kind k);
const char *vma_plan_name(enum vma_plan p);
/*
 * The list as the image's "vmas" member (FORMAT.md): compact JSON text, NUL-terminated, built
 * without jansson (it runs while the target is held: ~6 ms for 1,100 VMAs with jansson).
 * Each VMA: start, end, prot, offset, dev, inode, path, kind, content, granule[, note].
 * Malloc'd; NULL when out of memory. *ret_len (if not NULL): its length.
 */
char *vma_list_json_text(const struct vma_list *l, size_t *ret_len);
