/* SPDX-License-Identifier: MIT */
/*
 * Internal to pre-copy: engine/precopy.c (rounds, the freeze), engine/precopy-copy.c (the
 * copying) and engine/precopy-fallback.c.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "engine/dirtylog.h"
#include "engine/heldcopy.h"
#include "engine/snap.h"

struct holder;

/* The copy buffer's size at first: larger when a huge page is. */
#define PRECOPY_COPY_CHUNK (1u << 20)

/* Held: small pieces waiting to be read together (precopy-copy.c, batch_flush()). */
struct piece_batch {
	struct pages_range *r[SNAP_READ_SPANS_MAX];
	struct snap_span v[SNAP_READ_SPANS_MAX];
	size_t n, bytes;
};

struct precopy {
	struct snap *s;
	struct span_set armed;	 /* tracked ranges protected and then copied whole */
	struct span_set retry;	 /* ranges to treat as never armed at the next collection */
	struct span_set covered; /* every range a round wrote pages of */
	struct span_set pending; /* collected (so protected again), not yet copied */
	uint8_t *buf, *present;
	size_t buf_len;
	uint64_t read_bytes, copy_ns; /* over every round: the copy rate (bytes read per ns) */
	uint64_t collected_ns;	      /* when the last collection began */
	struct holder *h;
	uint64_t first_hold_ns; /* attaching, for the prediction of the final hold (a chain's
				 * later images have no first hold of their own in s->stats) */
	uint64_t pending_cost;	/* bytes pc->pending would copy, as last predicted */
	bool chain;		/* images follow: never fall back (the dirty log must live on) */
	unsigned images;	/* images taken */
	struct span_set saved;	/* what the last image saved: its child marks the rest UNMAPPED */
	struct span_set wrote;	/* every range this image's rounds wrote pages of */
	/* A chain: what the last image and this one copied while held (engine/heldcopy.h),
	 * this one's in held[images % 2] */
	struct held_copies held[2];
	struct piece_batch batch;
};

typedef int (*piece_fn)(void *ctx, struct pages_range *r, uint64_t a, uint64_t b);
/*
 * Calls fn for each part of set (sorted, merged) that lies in a tracked range, granule-aligned
 * within it, until fn fails.
 */
int precopy_each_piece(struct snap *s, const struct span_set *set, piece_fn fn, void *ctx);
/*
 * Copies the spans of set that lie in tracked ranges (held: the target's threads are, and
 * small pieces are read together); the bytes copied in *ret. Fails the snapshot on failure.
 */
int precopy_copy_set(struct precopy *pc, const struct span_set *set, bool held, uint64_t *ret);
/* Copying pc->pending while held, at the copy rate so far; sets pc->pending_cost. */
uint64_t precopy_predict_copy_ns(struct precopy *pc);
/* Did not converge: write protection saves what is left from the instant on (see there). */
int precopy_fall_back(struct precopy *pc, struct holder *h);
