/* SPDX-License-Identifier: MIT */
/*
 * Background events: each runs in its own thread, on its own scratch memory (never in the store
 * regions, except fork's child writing its private copy), with content it verifies itself.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "wl-memory.h"
#include "wl-status.h"
#include "wl-store.h"

enum wl_event {
	WL_EV_FORK,
	WL_EV_MREMAP,
	WL_EV_MUNMAP,
	WL_EV_MADVISE,
	WL_EV_THREADS,
	WL_EV_READINTO, /* not a thread: the store workers do every 8th store with read(2) */
	WL_EV_COUNT,
};

#define WL_EV_BIT(e) (1u << (e))
#define WL_EV_ALL    ((1u << WL_EV_COUNT) - 1)

/* "all" or a comma list of event names; -EINVAL names the bad one in ret_bad. */
int wl_events_parse(const char *list, unsigned *ret_mask, const char **ret_bad);
const char *wl_event_name(enum wl_event e);

struct wl_scratch_info {
	const char *event;
	uint64_t addr; /* 0: no fixed address (munmap maps a new one each time) */
	uint64_t alt;  /* mremap: the other address */
	uint32_t pages;
};

struct wl_events {
	unsigned mask;
	uint64_t seed;
	size_t page_size;
	struct wl_store *store;
	struct wl_status *status;
	atomic_bool stop;
	pthread_t tids[WL_EV_COUNT];
	bool started[WL_EV_COUNT];
	struct wl_mapping fork_scratch;
	struct wl_mapping madvise_scratch;
	struct wl_mapping threads_scratch;
	struct wl_mapping mremap_area; /* [guard][a][b][guard]: the scratch is in a or b */
	uint8_t *mremap_cur;
	atomic_uint_fast64_t iterations[WL_EV_COUNT];
};

/* Scratch content: word i of generation gen of an event is wl_scratch_word(event, gen, i). */
void wl_scratch_fill(uint8_t *p, size_t len, uint32_t event, uint64_t gen);
/* Index of the first word that differs, or len / 8 when none does. */
size_t wl_scratch_verify(const uint8_t *p, size_t len, uint32_t event, uint64_t gen);

/* mask, seed, page_size, store and status set; maps the scratch areas. */
int wl_events_setup(struct wl_events *ev);
int wl_events_start(struct wl_events *ev);
/* Stop and join every event thread (waits for a running fork child). */
void wl_events_stop(struct wl_events *ev);
void wl_events_teardown(struct wl_events *ev);
/* Describe the scratch areas; returns how many (at most max). */
size_t wl_events_scratch(const struct wl_events *ev, struct wl_scratch_info *out, size_t max);
