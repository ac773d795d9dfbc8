/* SPDX-License-Identifier: MIT */
/*
 * The fault handler's write-behind queue. A target thread blocked on a write fault waits only
 * for the handler to read, claim and unprotect its window; writing the copy to the image (which
 * may wait for the image writer's lock, held by the copier, or for the sink) happens on the
 * emitter thread. Without it, every fault read after a slow write waited for that write too.
 *
 * Memory is bounded: at most max_bytes of window buffers exist (EMITQ_DEFAULT_BYTES unless
 * the user chose: `--mem-limit` with a file output), never fewer than EMITQ_MIN_SLOTS windows;
 * when all are queued, the handler waits for one (the sink is then the bottleneck). A larger
 * bound trades memory for shorter waits of the target when its output is slower than its
 * writes.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct snap;
struct emitq;

#define EMITQ_DEFAULT_BYTES (32ull << 20)
#define EMITQ_MIN_SLOTS	    4
#define EMITQ_MAX_GRANULES 512 /* a window is at most 512 granules (--window <= 512) */

/* One window: won[i] says which granules of [start, start + n * granule) buf holds to write. */
struct emit_slot {
	struct emit_slot *next;
	uint64_t start;
	uint32_t granule, n;
	uint8_t won[EMITQ_MAX_GRANULES];
	uint8_t *buf; /* buf_len bytes */
};

/* Starts the emitter thread; windows are at most buf_len bytes, at most max_bytes of them in
 * all (0: EMITQ_DEFAULT_BYTES). 0 or -errno. */
int emitq_start(struct snap *s, size_t buf_len, uint64_t max_bytes, struct emitq **ret);
/*
 * A free slot, waiting for one if all are in use (the sink is behind: *ret_waited_ns says how
 * long, 0 if it did not wait); NULL if out of memory.
 */
struct emit_slot *emitq_get(struct emitq *q, uint64_t *ret_waited_ns);
/* Queues a filled slot for writing; the emitter then frees it. */
void emitq_push(struct emitq *q, struct emit_slot *slot);
/* Gives back a slot with nothing to write. */
void emitq_put_back(struct emitq *q, struct emit_slot *slot);
/* Writes everything queued, stops the thread, frees all. Errors went to snap_fail(). */
void emitq_finish(struct emitq *q);
