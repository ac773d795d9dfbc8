/* SPDX-License-Identifier: MIT */
/*
 * What a caller gives a snapshot and gets back from it: options, statistics, the error. Apart
 * from engine/snapshot.h so that the engine's own files (engine/snap.h) need not include the
 * orchestration's header to name them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct img_writer;
struct snap_round;

/* A range of addresses [start, end). */
struct snap_span {
	uint64_t start, end;
};

/*
 * What a caller adds to a snapshot (a QEMU guest's, daemon/qemu/): each may be NULL. All are
 * called from the snapshot's own thread, in this order, and only if what came before worked.
 */
struct snap_hooks {
	void *ctx;
	/*
	 * Just before the final hold, after write protection was armed while the target ran (or,
	 * arming held, before the one hold): stop the guest, save its device state. A negative
	 * return fails the snapshot with msg.
	 */
	int (*before_instant)(void *ctx, char *msg, size_t len);
	/* While held: members to add to the image's metadata (json object meta). */
	int (*meta)(void *ctx, json_t *meta);
	/* While held, right after the metadata: frames that follow it (the device state). */
	int (*after_meta)(void *ctx, struct img_writer *w);
	/* At T, once the target runs again, before the background copy: resume the guest. */
	void (*at_instant)(void *ctx);
	/*
	 * Pre-copy only: once the image is finished (its sink flushed: a stream's receiver has
	 * acknowledged all of it), before the dirty log is released, which takes a while on big
	 * memory (a migration's switch-over goes here, out of the guest's downtime). A negative
	 * return fails the snapshot with msg; the image stays complete.
	 */
	int (*image_done)(void *ctx, char *msg, size_t len);
};

struct snap_opts {
	bool strict;	       /* fail instead of recording pages discarded after T */
	bool arm_held;	       /* arm with every thread held (slower); default: arm live */
	uint32_t window_pages; /* pages saved around each faulting address (default 16) */
	uint32_t chunk_pages;  /* copier chunk (default 512 = 2 MiB of 4 KiB pages) */
	/* Copies of fault windows queued for a slow output at most (0: 32 MiB; engine/emitq.h);
	 * when they are all queued, a write fault waits for the output. */
	uint64_t fault_queue_bytes;
	unsigned arm_threads;  /* threads arming write protection at once (default: CPUs, <= 4) */
	unsigned copy_threads; /* threads of the background copy (default: half the CPUs, 1..4;
				* at most SNAP_MAX_COPY_THREADS) */
	int devuffd_fd;	       /* an open /dev/userfaultfd, or -1 to open it */
	/* Called periodically from the copier with progress; may be NULL. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	/* Pre-copy: called once each round ended (index 0: the full copy) with what it copied;
	 * may be NULL. Gets progress_ctx too. */
	void (*round)(void *ctx, unsigned index, const struct snap_round *rd);
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
	 * The only memory to save (a guest's RAM), sorted; NULL: all of it. Every VMA that meets
	 * none of these spans is recorded as layout only; one that does must be write-protected
	 * (it is never copied while held instead: the snapshot fails).
	 */
	const struct snap_span *scope;
	size_t nscope;
	const struct snap_hooks *hooks; /* may be NULL */
	/*
	 * The caller guarantees that nothing writes the scoped memory from before_instant on until
	 * at_instant (a QEMU guest whose vCPUs it stopped, its devices quiesced): arming live, the
	 * final hold is then not needed and skipped. Only with a scope and arming live (or
	 * pre-copy: its last round is then copied with no thread held).
	 */
	bool quiet_at_instant;
	/*
	 * Pre-copy (engine/precopy.c): copy everything while the target runs, then rounds of what
	 * was written meanwhile (the dirty log), then hold every thread while the last dirty pages
	 * are copied: the instant is the end of that hold. No write of the target ever waits for
	 * us. With a scope and quiet_at_instant (a QEMU guest, stopped in before_instant), the
	 * last round is copied without holding any thread, and never falls back to write
	 * protection; hooks->after_meta must be NULL (a pre-copy image holds no device state).
	 */
	bool precopy;
	uint32_t downtime_ms; /* the hold the last round must be predicted to fit (default 50) */
	unsigned max_rounds;  /* rounds after the first before giving up (default 10) */
	bool strict_downtime; /* fail instead of holding longer when it does not converge */
	/*
	 * For tests only; NULL in uffsnapd (tests/snapshot/uffsnapd-test.c sets it). Called from
	 * the snapshot's thread at a named point, where a test changes the world under it:
	 * "start" (nothing opened or attached yet), "armed" (between the holds of live arming),
	 * "instant" (just after the instant, before the background copy).
	 */
	void (*test_pause)(const char *point);
};

/* The most threads the background copy runs on (opts.copy_threads). */
#define SNAP_MAX_COPY_THREADS 8

/* One pre-copy round: what it copied and how long that took. */
struct snap_round {
	uint64_t bytes; /* memory copied (zero pages included), after collecting what to copy */
	uint64_t ns;	/* collecting and copying */
};

/* Rounds kept in the statistics (opts.max_rounds is at most this). */
#define SNAP_MAX_ROUNDS 64

struct snap_error {
	char msg[512];
};

/* Every *_ns is on CLOCK_MONOTONIC (sys/clock.h: sys_now_ns()). */
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
	uint64_t pages_unchanged;  /* a chain's increment: pages copied while held, left out
				    * because the image before holds the same bytes */
	uint64_t pages_discarded;  /* base pages discarded after T */
	uint64_t pinned_bytes_held;	/* io_uring registered buffers copied while held (exact) */
	uint64_t pinned_bytes_not_exact; /* registered buffers beyond the bound: DISCARDED */
	uint64_t faults;	   /* write faults served */
	uint64_t fault_p50_ns, fault_p99_ns, fault_max_ns; /* fault read -> wake */
	uint64_t fault_sink_waits;	   /* faults that waited for the image sink (queue full) */
	uint64_t fault_sink_wait_max_ns; /* the longest of those waits */
	uint64_t bytes;		   /* image bytes written */
	uint64_t events_remap, events_remove, events_unmap;
	unsigned threads;
	unsigned vmas_tracked, vmas_copied;
	/* Pre-copy only (rounds > 0): round[0] is the full copy. held_ns is the final hold. */
	unsigned rounds;
	struct snap_round round[SNAP_MAX_ROUNDS];
	bool converged;		 /* the last round was predicted to fit the downtime budget */
	bool fell_back;		 /* it did not: write protection saved the last set after T */
	uint64_t fell_back_bytes; /* that set (tracked memory, write-protected at T) */
	uint64_t freeze_bytes;	 /* tracked memory copied during the final hold */
	uint64_t dirty_rate_bps; /* bytes the target wrote per second, over the last round */
	uint64_t downtime_predicted_ns; /* the final hold, as predicted */
	/* Writes write protection cannot see (README): each an EVENT "may-not-be-exact". */
	uint64_t io_contexts;	  /* io_uring rings, AIO contexts: O_DIRECT reads may be in flight */
	uint64_t io_rings_hidden; /* rings that cannot be inspected (--strict fails instead) */
	uint64_t shared_writers;  /* other processes' writable mappings of saved shared memory:
				   * one per process and range (--strict fails instead) */
	uint64_t fd_writers;	  /* descriptors open for writing to saved shared memory that
				   * changed during the snapshot */
};

