/* SPDX-License-Identifier: MIT */
/* What uffsnapd says when a snapshot ends: a human summary, or one JSON object (--json). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "engine/snapshot.h"
#include "guest/guest.h"
#include "migrate/source.h"
#include "uffsnap/image.h"

struct oneshot_report {
	pid_t pid;
	const char *where;		 /* the output file, or the receiver */
	const struct guest_stats *guest; /* a QEMU guest's snapshot, or NULL */
	const struct migrate_stats *migration; /* or a migration's (--migrate) */
	struct img_sink *stream;	 /* with --to: the stream, for its counters; or NULL */
	bool json, quiet;
	bool to_stdout; /* the image went to stdout: the summary goes to stderr */
};

/* The summary of a snapshot that ended with result (and msg, if it failed). */
void oneshot_report(const struct oneshot_report *r, const struct snap_stats *st, int result,
		    const char *msg);
