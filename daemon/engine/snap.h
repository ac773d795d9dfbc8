/* SPDX-License-Identifier: MIT */
/*
 * The shared state of one snapshot and the primitives on it, used by every engine file below
 * the orchestration (engine/snapshot.c). Private to the engine: callers see engine/snapshot.h.
 *
 * Three threads share struct snap once T nears: the main thread (the caller of
 * snapshot_take(): scan, arm, holds, then the background copier), the fault handler thread
 * (engine/faults.c, started before T when arming live, at T when arming held) and its emitter
 * thread (engine/emitq.c). Each field says who may write it: one thread ("main", "handler"),
 * "under lock" (s->lock, which the handler holds while it reads and acts on messages),
 * "atomic", or "fixed" (set by main before the handler starts, then only read).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "engine/plan.h"
#include "engine/gate.h"
#include "engine/pages.h"
#include "engine/snap-types.h"
#include "engine/vmas.h"
#include "target/holder.h"
#include "uffsnap/image.h"

struct held_copies;
struct span_set;

/* Layout events remembered with their ranges (see struct snap.events). */
#define SNAP_EVENT_RING 64

struct snap {
	pid_t pid;  /* fixed */
	int memfd;  /* /proc/PID/mem: bound to the target's mm at open, so exec cannot fool it.
		     * Fixed; closed by main (snap_cleanup) after the handler stopped */
	int uffd;   /* main: set at the first hold, before the handler starts; closed after it
		     * stopped. The handler is its only reader */
	bool uffd_async; /* uffd is the dirty log (UFFD_FEATURE_WP_ASYNC): no fault ever waits on
			  * it. Main */
	int pagemapfd; /* /proc/PID/pagemap, for PAGEMAP_SCAN; -1 if unavailable. Fixed */
	uint64_t wp_marker; /* what pagemapfd shows for a uffd-wp marker, 0 if it cannot tell
			     * (engine/wpmarker.h). Fixed */
	int pidfd;     /* fixed */
	int stopfd;    /* eventfd: wakes the fault handler to stop. Fixed; written by any thread */
	struct snap_opts opts; /* fixed (snap_defaults() fills it in before anything starts) */
	struct holder_info held; /* from the holder: uffd, registers, stacks. Main, while held */
	uint32_t page_size;	 /* fixed */
	struct vma_list vmas;	 /* main; after the handler starts, changed only under lock */
	struct pages pages;	 /* main; after the handler starts, replaced only under lock.
				  * Page states themselves change by atomic claims (engine/pages.h) */
	/* Tracked ranges saved while held: around threads' stack pointers and TLS (snap_plan).
	 * Main. */
	struct snap_span *hot;
	size_t nhot;
	/* io_uring fds, found before the hold, and their registered buffers, read while held,
	 * page-aligned and merged (engine/pinned.h). Main. */
	int *rings;
	size_t nrings;
	struct snap_span *pinned;
	size_t npinned;
	/*
	 * Arming while the target runs (engine/live.c): until the final hold, faults are resolved
	 * at once and the ranges unprotected so, or whose protection an event dropped, are
	 * remembered here to be protected again during the final hold. Under lock.
	 */
	bool pre_t;
	struct snap_span *dirty;
	size_t ndirty, dirty_cap;
	pthread_t handler;	/* main (snap_handler_start/stop) */
	bool handler_started;	/* main */
	struct img_writer *w;	/* fixed (opened before any hold); the writer locks itself */
	struct snap_gate *gate; /* in front of the caller's sink: nothing is written while held.
				 * Fixed; the gate locks itself */
	pthread_mutex_t lock; /* held by the fault handler while it reads and acts on messages */
	uint64_t event_gen;   /* layout events processed; written under lock by the handler,
			       * read atomically by the copier without it */
	/* The current-address ranges each recent event touched, by event_gen % SNAP_EVENT_RING:
	 * a copier read is void only if an event since it began overlaps it. Under lock. */
	struct snap_event_range {
		uint64_t gen;
		uint64_t start[2], end[2];
	} events[SNAP_EVENT_RING];
	int copier_waiting; /* copier threads wanting the lock: the handler steps aside (atomic) */
	int fault_waiting;  /* the handler waits for a write-behind slot: the copier writes
			     * nothing until it has one (atomic; engine/emitq.c) */
	int error;	    /* first fatal error (atomic; main alone stores it plainly while no
			     * other thread runs) */
	bool after_t;	    /* the target was released: the snapshot instant has passed. Main */
	bool image_finished; /* img_writer_finish() done early (a pre-copy: finish_early()). Main */
	bool rounds_lost_target; /* a pre-copy round found the address space gone (exit or exec:
				  * the summary says which). Main */
	bool mm_gone; /* at the first failure, the address space opened at the start had no users
		       * left (exit or exec: the summary says which). Set once, in snap_fail() */
	json_t *parent;	    /* a chain's increment: META "parent" (FORMAT.md "Chains"). Main */
	/*
	 * A chain's image (engine/precopy.c sets them around snap_copy_held(); else NULL):
	 * held_rec keeps what the VMAs copied while held hold now; an increment writes only the
	 * pages of them that differ from held_prev (the image before's), or that its own rounds
	 * wrote (held_wrote: a round's copy there would read as the instant's). Main.
	 */
	struct held_copies *held_rec;
	const struct held_copies *held_prev;
	const struct span_set *held_wrote;
	struct snap_error err; /* written once, by the thread that set error first */
	uint64_t start_ns;     /* fixed */
	/* Per counter: pages_copier, pages_fault, pages_zero are atomic adds (any thread);
	 * faults, fault_sink_*, pages_discarded, events_* are the handler's; the rest main's.
	 * Main reads them all after the handler stopped. */
	struct snap_stats stats;
	uint64_t *fault_ns; /* fault service times, for percentiles. Handler; main after it */
	size_t nfault_ns, fault_ns_cap;
	/* The shared memory the image saves and who else may write it (engine/shared.h). Main. */
	struct shared_state *shared;
};

static inline void snap_test_pause(const struct snap *s, const char *point)
{
	if (s->opts.test_pause)
		s->opts.test_pause(point);
}
/* Fails the snapshot (the first failure is the one reported) and wakes the handler to stop. */
void snap_fail(struct snap *s, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The address space /proc/PID/mem was opened on has been left (exec or exit). */
bool snap_mm_gone(struct snap *s);
bool snap_failed(struct snap *s);
/* -ECANCELED (and the snapshot failed with opts.cancel's reason) if asked to stop, else 0. */
int snap_cancelled(struct snap *s);
int snap_read_mem(struct snap *s, uint64_t addr, void *buf, size_t len);
#define SNAP_READ_SPANS_MAX 1024 /* UIO_MAXIOV */
/*
 * Reads up to SNAP_READ_SPANS_MAX spans back to back into buf in one system call (each
 * snap_read_mem() is one): returns how many from the first were read whole (the rest are
 * for snap_read_mem(), one by one), or -ESRCH if the target's memory is gone.
 */
ssize_t snap_read_spans(struct snap *s, const struct snap_span *v, size_t n, uint8_t *buf);
/*
 * present[i] = 1 for each granule of the private anonymous range [start, end) that must be
 * read: present or swapped. A page that is neither is zero (its loss after T would be an event
 * we see), and so is one that maps the kernel's zero page (PAGE_IS_PFNZERO) and a uffd-wp
 * marker, where s->wp_marker can tell one from a swapped page.
 * Without PAGEMAP_SCAN everything is marked present.
 */
void snap_scan_present(struct snap *s, uint64_t start, uint64_t end, uint32_t granule,
		       uint8_t *present);
/* Finds the next run of set bytes in flags at or after *i: [*i, *j). False if none. */
bool snap_next_run(const uint8_t *flags, size_t n, size_t *i, size_t *j);
/* Writes claimed granules [addr, addr + n * granule) from buf, as data or zero runs. */
int snap_emit(struct snap *s, uint64_t addr, const uint8_t *buf, size_t len);
/* Writes claimed granules [addr, addr + len) known to be zero, without looking at them. */
int snap_emit_zero(struct snap *s, uint64_t addr, size_t len);
/*
 * Reads granules i of [start, start + n * granule) with present[i] set (snap_scan_present())
 * into buf at the same offsets, run by run: 0, or the first failed read's error
 * (snap_read_mem()).
 */
int snap_read_present(struct snap *s, uint64_t start, uint32_t granule, size_t n,
		      const uint8_t *present, uint8_t *buf);
/* Writes claimed granules [i, j) of them: what was read from buf, the others as zero. */
int snap_emit_present(struct snap *s, uint64_t start, uint32_t granule, size_t i, size_t j,
		      const uint8_t *present, const uint8_t *buf);
/* Under lock, before T: remember [start, end) to protect again at T. */
int snap_dirty_add(struct snap *s, uint64_t start, uint64_t end);
/* Under lock: did an event after gen touch [start, end)? True also if the ring lost track. */
bool snap_events_overlap(const struct snap *s, uint64_t gen, uint64_t start, uint64_t end);
