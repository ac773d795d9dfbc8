/* SPDX-License-Identifier: MIT */
/*
 * The workload's store scheme (tests/workload/README.md): where thread t's store s lands and
 * what it writes. Shared by the workload (which stores), its self-checks and the checker (which
 * decides from an image alone whether the memory is one instant's).
 *
 * Region of thread t = one header page (identity + the store counter) followed by P data pages.
 * Slot i (0 <= i < S = P * R) is record (i / P) of page (i % P): consecutive stores go round
 * robin across the pages, so every P consecutive stores touch every data page once.
 * Store s (s = 1, 2, ...) writes the 16-byte record {tag(t, s), seen} into slot (s - 1) % S.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define WL_MAX_THREADS 64
#define WL_RECORD_SIZE 16

/* tag = magic (16 bits) | thread (8 bits) | store number (40 bits): never zero. */
#define WL_TAG_MAGIC	    0xa55aULL
#define WL_TAG_MAGIC_SHIFT  48
#define WL_TAG_THREAD_SHIFT 40
#define WL_TAG_THREAD_MASK  0xffULL
#define WL_TAG_STORE_MASK   ((1ULL << WL_TAG_THREAD_SHIFT) - 1)

/* The header page: struct wl_header at offset 0, the counter alone on the next cache line. */
#define WL_HEADER_MAGIC	   0x64616f6c6b726f77ULL /* "workload" little-endian */
#define WL_COUNTER_OFFSET  64

struct wl_header {
	uint64_t magic;
	uint32_t thread;
	uint32_t nthreads;
	uint32_t pages;
	uint32_t records;
	uint64_t page_size;
};
_Static_assert(sizeof(struct wl_header) <= WL_COUNTER_OFFSET, "header overlaps the counter");

struct wl_record {
	uint64_t tag;
	uint64_t seen;
};
_Static_assert(sizeof(struct wl_record) == WL_RECORD_SIZE, "record is 16 bytes");

struct wl_geometry {
	uint64_t page_size;
	uint32_t pages;	  /* P: data pages per region */
	uint32_t records; /* R: records used per page */
};

static inline uint64_t wl_slots(const struct wl_geometry *g)
{
	return (uint64_t)g->pages * g->records;
}

static inline uint64_t wl_slot_of_store(const struct wl_geometry *g, uint64_t s)
{
	return (s - 1) % wl_slots(g);
}

/* Byte offset of a slot from the start of the region's data pages. */
static inline uint64_t wl_slot_offset(const struct wl_geometry *g, uint64_t slot)
{
	return (slot % g->pages) * g->page_size + (slot / g->pages) * WL_RECORD_SIZE;
}

static inline uint32_t wl_slot_page(const struct wl_geometry *g, uint64_t slot)
{
	return (uint32_t)(slot % g->pages);
}

/* The latest store s <= k that maps to slot, or 0 when no store up to k touched it. */
static inline uint64_t wl_latest_store(const struct wl_geometry *g, uint64_t slot, uint64_t k)
{
	uint64_t first = slot + 1, n = wl_slots(g);

	if (k < first)
		return 0;
	return first + (k - first) / n * n;
}

static inline uint64_t wl_tag(uint32_t thread, uint64_t s)
{
	return WL_TAG_MAGIC << WL_TAG_MAGIC_SHIFT | (uint64_t)thread << WL_TAG_THREAD_SHIFT |
	       (s & WL_TAG_STORE_MASK);
}

/* False when tag is not a workload tag (wrong magic or store 0). */
static inline bool wl_tag_decode(uint64_t tag, uint32_t *ret_thread, uint64_t *ret_store)
{
	if (tag >> WL_TAG_MAGIC_SHIFT != WL_TAG_MAGIC || (tag & WL_TAG_STORE_MASK) == 0)
		return false;
	*ret_thread = (uint32_t)(tag >> WL_TAG_THREAD_SHIFT & WL_TAG_THREAD_MASK);
	*ret_store = tag & WL_TAG_STORE_MASK;
	return true;
}

static inline void wl_record_load(const void *slot, struct wl_record *ret)
{
	memcpy(ret, slot, sizeof(*ret));
}

/*
 * One instruction writes the whole record. A thread is stopped (ptrace, SIGSTOP, fork's page
 * table copy, a uffd-wp fault) only between instructions, and a faulting store is restarted
 * whole, so any instant sees either all 16 bytes of a store or none of them. Two 8-byte stores
 * would let a correct snapshot catch a half-written record.
 */
static inline void wl_record_store(void *slot, uint64_t tag, uint64_t seen)
{
#if defined(__x86_64__)
	typedef long long v2di __attribute__((vector_size(16)));
	v2di v = {(long long)tag, (long long)seen};

	__asm__ volatile("movdqa %1, %0" : "=m"(*(v2di *)slot) : "x"(v));
#elif defined(__aarch64__)
	__asm__ volatile("stp %1, %2, %0" : "=Q"(*(unsigned __int128 *)slot) : "r"(tag), "r"(seen));
#else
#error "wl_record_store needs a single-instruction 16-byte store on this architecture"
#endif
}

/* Pattern word of the scratch areas: which event, which generation, which word. */
#define WL_SCRATCH_MAGIC 0x5cULL

static inline uint64_t wl_scratch_word(uint32_t event, uint64_t gen, uint64_t word)
{
	return WL_SCRATCH_MAGIC << 56 | (uint64_t)(event & 0xff) << 48 | (gen & 0xffffff) << 24 |
	       (word & 0xffffff);
}
