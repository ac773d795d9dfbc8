/* SPDX-License-Identifier: MIT */
/*
 * A live snapshot of a QEMU guest, taken from outside QEMU (README "QEMU guests"): its RAM, a
 * shared memory backend mapped in QEMU, saved by the engine with write protection; its device
 * state saved by QEMU's own migration with x-ignore-shared (no RAM in it), while the vCPUs are
 * stopped for a moment. The image records what a stock QEMU needs to restore it
 * (proto/FORMAT.md "guest").
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "engine/snapshot.h"

struct qmp;

struct guest_stats {
	pid_t pid;		 /* QEMU's */
	char qemu_version[32];
	char machine[96]; /* the qom type less "-machine": as long as QEMU says */
	unsigned backends;
	uint64_t ram_bytes;	 /* of all backends saved */
	uint64_t downtime_ns;	 /* the guest's: `stop` sent -> `cont` answered */
	uint64_t devstate_ns;	 /* of which: `migrate` sent -> its device state all read */
	uint64_t devstate_bytes;
};

/*
 * Snapshots the guest of the QEMU at the other end of q (connected, capabilities negotiated)
 * into sink. opts are the caller's (cancel, progress, ...); the scope and hooks are set here.
 * cancel_fd (or -1) ends waits for QEMU when it becomes readable. The guest runs on at the end,
 * whatever happened: if we stopped it, we resumed it (and if we die, a guardian does).
 */
int guest_snapshot(struct qmp *q, const struct snap_opts *opts, int cancel_fd,
		   struct img_sink *sink, struct guest_stats *gs, struct snap_stats *ss,
		   struct snap_error *err);
json_t *guest_stats_json(const struct guest_stats *gs);
