/* SPDX-License-Identifier: MIT */
/*
 * Telling an untouched write-protected page from a swapped one. Write-protecting an
 * unpopulated page (UFFD_FEATURE_WP_UNPOPULATED) leaves a uffd-wp PTE marker, and PAGEMAP_SCAN
 * reports a marker as PAGE_IS_SWAPPED (fs/proc/task_mmu.c pagemap_page_category(): any
 * non-present, non-none PTE is "swapped"). So a scan for what must be read counts every marked
 * page of a never-touched thread stack, and the copier faults zero pages in by the gigabyte.
 *
 * /proc/PID/pagemap tells them apart, but only through the swap type and offset, which it shows
 * only to an opener with CAP_SYS_ADMIN (pagemap_read(): show_pfn). Their values for a marker
 * depend on the kernel's configuration (SWP_PTE_MARKER counts the other special swap types),
 * so they are not assumed: wpmarker_probe() makes a marker of its own and reads what pagemap
 * shows for it.
 */
#pragma once

#include <stdint.h>

/*
 * The pagemap frame bits (type and offset) of a uffd-wp marker as this process's pagemap shows
 * them, or 0 if they are hidden (no CAP_SYS_ADMIN) or the kernel cannot make one.
 */
uint64_t wpmarker_probe(void);

/*
 * For each granule of the private anonymous range [start, end) with present[i] set: clears it
 * if every page of the granule is a uffd-wp marker (marker, from wpmarker_probe()), which reads
 * as zero. pagemapfd is the target's /proc/PID/pagemap, opened with the same credentials as the
 * probe. Granules it cannot check stay set. A no-op when marker is 0.
 */
void wpmarker_clear(int pagemapfd, uint64_t marker, uint64_t start, uint64_t end, uint32_t granule,
		    uint8_t *present);
/* Bytes of [start, end) that are uffd-wp markers; 0 when marker is 0 or pagemap fails. */
uint64_t wpmarker_bytes(int pagemapfd, uint64_t marker, uint64_t start, uint64_t end);
