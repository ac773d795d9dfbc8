/* SPDX-License-Identifier: MIT */
/*
 * One live snapshot of one target (DESIGN.md "The way of one snapshot"). The engine returns
 * -errno and a message in struct snap_error; it never logs.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "engine/gate.h"
#include "engine/pages.h"
#include "target/holder.h"
#include "engine/vmas.h"
#include "uffsnap/image.h"

struct snap_opts {
	bool strict;	       /* fail instead of recording pages discarded after T */
	bool arm_held;	       /* arm with every thread held (slower); default: arm live */
	uint32_t window_pages; /* pages saved around each faulting address (default 16) */
	uint32_t chunk_pages;  /* copier chunk (default 512 = 2 MiB of 4 KiB pages) */
	unsigned arm_threads;  /* threads arming write protection at once (default: CPUs, <= 4) */
	int devuffd_fd;	       /* an open /dev/userfaultfd, or -1 to open it */
	/* Called periodically from the copier with progress; may be NULL. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	/*
	 * May be NULL. Another thread stores a negative errno here to end the snapshot early:
	 * -ECANCELED (asked to), -EINTR (a signal), -ESRCH (the target exited or exec'd: the
	 * message then says which). Checked before each copier chunk and before the final
	 * hold; the target is released as on any failure. An output that is stuck must give
	 * up too: the caller makes its sink watch an fd it makes readable at the same time
	 * (img_sink_fd_set_cancel(), stream_sink_abort()).
	 */
	const int *cancel;
	/*
	 * The process that was authorized, as a pidfd, or -EBADF (then whatever pid names when
	 * the snapshot attaches). Given, the snapshot attaches only if pid still names it.
	 */
	int pidfd;
	/*
	 * For tests only; NULL in uffsnapd (tests/snapshot/uffsnapd-test.c sets it). Called from
	 * the snapshot's thread at a named point, where a test changes the world under it:
	 * "start" (nothing opened or attached yet), "armed" (between the holds of live arming).
	 */
	void (*test_pause)(const char *point);
};

struct snap_error {
	char msg[512];
};

struct snap_stats {
	uint64_t held_ns;	   /* the longest time target threads were held at once */
	uint64_t hold_first_ns;	   /* live arming: first hold (attach, create the userfaultfd) */
	uint64_t hold_final_ns;	   /* live arming: final hold, ending at the instant */
	uint64_t rearm_ns;	   /* of which: protecting again what changed while arming */
	uint64_t rearm_ranges;	   /* ranges protected again */
	uint64_t attach_ns;	   /* of which: stopping every thread, creating the userfaultfd */
	uint64_t arm_ns;	   /* of which: registering and write-protecting */
	uint64_t copy_held_ns;	   /* of which: copying what cannot be tracked */
	uint64_t duration_ns;	   /* whole snapshot */
	uint64_t pages_copier;	   /* base pages saved by the background copier */
	uint64_t pages_fault;	   /* base pages saved by the fault handler */
	uint64_t pages_held;	   /* base pages copied while held */
	uint64_t pages_zero;	   /* base pages recorded as zero */
	uint64_t pages_discarded;  /* base pages discarded after T */
	uint64_t faults;	   /* write faults served */
	uint64_t fault_p50_ns, fault_p99_ns, fault_max_ns; /* fault read -> wake */
	uint64_t fault_sink_waits;	   /* faults that waited for the image sink (queue full) */
	uint64_t fault_sink_wait_max_ns; /* the longest of those waits */
	uint64_t bytes;		   /* image bytes written */
	uint64_t events_remap, events_remove, events_unmap;
	unsigned threads;
	unsigned vmas_tracked, vmas_copied;
};

/* Layout events remembered with their ranges (see struct snap.events). */
#define SNAP_EVENT_RING 64

/* Shared between the copier and the fault handler; see engine/snapshot.c for the protocol. */
struct snap {
	pid_t pid;
	int memfd;  /* /proc/PID/mem: bound to the target's mm at open, so exec cannot fool it */
	int uffd;
	int pagemapfd; /* /proc/PID/pagemap, for PAGEMAP_SCAN; -1 if unavailable */
	int pidfd;
	int stopfd; /* eventfd: wakes the fault handler to stop */
	struct snap_opts opts;
	struct holder_info held; /* from the holder: uffd, registers, stacks */
	uint32_t page_size;
	struct vma_list vmas;
	struct pages pages;
	/* Tracked ranges saved while held: around threads' stack pointers and TLS (snap_plan). */
	struct snap_span {
		uint64_t start, end;
	} *hot;
	size_t nhot;
	/*
	 * Arming while the target runs (engine/live.c): until the final hold, faults are resolved
	 * at once and the ranges unprotected so, or whose protection an event dropped, are
	 * remembered here to be protected again during the final hold. Under lock.
	 */
	bool pre_t;
	struct snap_span *dirty;
	size_t ndirty, dirty_cap;
	pthread_t handler;
	bool handler_started;
	struct img_writer *w;
	struct snap_gate *gate; /* in front of the caller's sink: nothing is written while held */
	pthread_mutex_t lock; /* held by the fault handler while it reads and acts on messages */
	uint64_t event_gen;   /* layout events processed; written under lock */
	/* The current-address ranges each recent event touched, by event_gen % SNAP_EVENT_RING:
	 * a copier read is void only if an event since it began overlaps it. Under lock. */
	struct snap_event_range {
		uint64_t gen;
		uint64_t start[2], end[2];
	} events[SNAP_EVENT_RING];
	int copier_waiting; /* the copier wants the lock: the handler steps aside (atomic) */
	int error;	      /* first fatal error (atomic) */
	bool after_t;	      /* the target was released: the snapshot instant has passed */
	struct snap_error err;
	uint64_t start_ns;
	struct snap_stats stats;
	uint64_t *fault_ns; /* fault service times, for percentiles */
	size_t nfault_ns, fault_ns_cap;
};

int snapshot_take(pid_t pid, const struct snap_opts *opts, struct img_sink *sink,
		  struct snap_stats *ret_stats, struct snap_error *err);
int snapshot_stats_to_json(const struct snap_stats *s, json_t **ret);

/* Internal to the engine (engine/copier.c, engine/faults.c, engine/snapshot.c). */
uint64_t snap_now_ns(void);
static inline void snap_test_pause(const struct snap *s, const char *point)
{
	if (s->opts.test_pause)
		s->opts.test_pause(point);
}
void snap_fail(struct snap *s, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool snap_failed(struct snap *s);
/* -ECANCELED (and the snapshot failed with opts.cancel's reason) if asked to stop, else 0. */
int snap_cancelled(struct snap *s);
int snap_read_mem(struct snap *s, uint64_t addr, void *buf, size_t len);
/*
 * present[i] = 1 for each granule of [start, end) that must be read: present or swapped.
 * A private anonymous page that is neither is zero (its loss after T would be an event we
 * see). Without PAGEMAP_SCAN everything is marked present.
 */
void snap_scan_present(struct snap *s, uint64_t start, uint64_t end, uint32_t granule,
		       uint8_t *present);
/* Finds the next run of set bytes in flags at or after *i: [*i, *j). False if none. */
bool snap_next_run(const uint8_t *flags, size_t n, size_t *i, size_t *j);
/* Writes claimed granules [addr, addr + n * granule) from buf, as data or zero runs. */
int snap_emit(struct snap *s, uint64_t addr, const uint8_t *buf, size_t len);
int copier_run(struct snap *s);
void *fault_handler_main(void *arg);
/* Under lock, before T: remember [start, end) to protect again at T. */
int snap_dirty_add(struct snap *s, uint64_t start, uint64_t end);
/* Stops the handler, closes the uffd (dropping all protection, waking every waiter) and the
 * other fds. Safe at any point, held or not. */
void snap_cleanup(struct snap *s);
struct holder;
/* Attaches through a new holder, gets the userfaultfd and calls UFFDIO_API: the first hold. */
int snap_first_hold(struct snap *s, struct holder **ret);
/* snap_copy_held(), timed into stats.copy_held_ns. */
int snap_copy_held_timed(struct snap *s);
/* Starts the fault handler thread (once); stops and joins it. */
int snap_handler_start(struct snap *s);
void snap_handler_stop(struct snap *s);
/* Arming while the target runs (engine/live.c). On success the target runs and T has passed. */
int snap_hold_and_arm_live(struct snap *s);
/* Under lock: did an event after gen touch [start, end)? True also if the ring lost track. */
bool snap_events_overlap(const struct snap *s, uint64_t gen, uint64_t start, uint64_t end);
