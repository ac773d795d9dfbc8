/* SPDX-License-Identifier: MIT */
/*
 * The guest program's memory scheme, shared by the guest (tests/guest/guest-counter.c, which
 * writes and checks it) and the harness's oracle (guest-oracle.c, which checks a copy of the
 * guest's RAM against it). Pure arithmetic: no I/O, no libc beyond the types.
 *
 * The working set is one control page followed by `pages` data pages. Tick 0 (start-up) writes
 * every data page. Tick t >= 1 writes the `per_tick` pages of stripe (t - 1) % stripes, in page
 * order, each page word by word from word 0 up; tick_started is stored before the first word
 * and tick_done after the last. So at any instant the data pages hold exactly "the state after
 * tick T" plus a prefix of tick T + 1: its first j pages whole and the first w words of page j.
 */
#pragma once

#include <stdint.h>

#define GP_PAGE_SIZE  4096u
#define GP_WORDS      (GP_PAGE_SIZE / 8)
#define GP_CTL_MAGIC  0x72746e636b637567ull /* "guckcntr" */
#define GP_WORD_TICK  0 /* word 0 of a data page: the tick that wrote it */
#define GP_WORD_INDEX 1 /* word 1: the page's index */

/* The control page (first page of the working set). */
struct gp_ctl {
	uint64_t magic;
	uint64_t pages;
	uint64_t per_tick;
	uint64_t tick_started; /* the tick being written, or the last one written */
	uint64_t tick_done;    /* the last tick whose writes are all complete */
	uint64_t bad;          /* pages found wrong by the guest's own check */
};

static inline uint64_t gp_mix(uint64_t x)
{
	/* splitmix64's finaliser: every input bit flips half the output bits. */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Word w of data page i as tick t writes it. */
static inline uint64_t gp_word(uint64_t t, uint64_t i, unsigned w)
{
	if (w == GP_WORD_TICK)
		return t;
	if (w == GP_WORD_INDEX)
		return i;
	return gp_mix(t * 0x100000001b3ull ^ i) + w * 0x9e3779b97f4a7c15ull;
}

static inline uint64_t gp_stripes(uint64_t pages, uint64_t per_tick)
{
	return pages / per_tick;
}

/* The first data page tick t >= 1 writes. */
static inline uint64_t gp_first_page(uint64_t t, uint64_t pages, uint64_t per_tick)
{
	return ((t - 1) % gp_stripes(pages, per_tick)) * per_tick;
}

/* The last tick <= t that wrote data page i (0: only start-up wrote it). */
static inline uint64_t gp_last_writer(uint64_t t, uint64_t i, uint64_t pages, uint64_t per_tick)
{
	uint64_t stripes = gp_stripes(pages, per_tick), s = i / per_tick;

	if (t == 0)
		return 0;
	/* Ticks writing stripe s: s + 1, s + 1 + stripes, ... */
	if (t < s + 1)
		return 0;
	return t - ((t - 1 - s) % stripes);
}
