/* SPDX-License-Identifier: MIT */
/*
 * Live migration of a QEMU guest whose RAM uffsnapd moves (README "Live migration"): the
 * guest's RAM as a pre-copy image streamed to a migration receiver, which writes it into the
 * destination QEMU's memory backends; QEMU's own migration, with x-ignore-shared, carries
 * only the device state. Every failure before the switch-over leaves the guest running here
 * as if nothing had happened; after it, the guest is the destination's and is never resumed
 * here by us.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "engine/snapshot.h"
#include "guest/guest.h"
#include "uffsnap/image.h"

struct qmp;

struct migrate_stats {
	struct guest_stats guest;
	char uri[128];		   /* where the destination QEMU listened */
	int64_t stop_realtime_ns;  /* QEMU's STOP event here: the vCPUs stopped */
	int64_t done_realtime_ns;  /* QEMU's MIGRATION "completed" event here */
	uint64_t to_switchover_ns; /* `migrate` sent -> status pre-switchover (QEMU's own part) */
	uint64_t final_ns;	   /* pre-switchover -> the receiver holds all RAM (last round) */
	uint64_t switchover_ns;	   /* `migrate-continue` -> completed (device state) */
	int64_t qemu_downtime_ms;  /* QEMU's own figure (query-migrate "downtime"), or -1 */
	bool switched;		   /* migrate-continue accepted: the guest left this QEMU */
};

/*
 * Migrates the guest of the QEMU at the other end of q (connected) through sink (a stream
 * sink opened with stream_opts.migrate). opts are the caller's (downtime, rounds, cancel,
 * progress); precopy, scope and hooks are set here. cancel_fd (or -1) ends waits for QEMU.
 */
int migrate_source(struct qmp *q, const struct snap_opts *opts, int cancel_fd,
		   struct img_sink *sink, struct migrate_stats *ms, struct snap_stats *ss,
		   struct snap_error *err);
json_t *migrate_stats_json(const struct migrate_stats *ms);
