/* SPDX-License-Identifier: MIT */
/*
 * uffsnapd --pid PID --incremental --every SECONDS [--count N] --dir DIR: a chain of
 * snapshots, the first full, each later one only what changed since the one before
 * (engine/snapshot.h: snapshot_chain_*()), one image file per instant in DIR.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/snapshot.h"

struct chain_cli {
	pid_t pid;
	const char *dir;
	uint32_t every_s; /* seconds from one image's start to the next one's */
	uint32_t count;	  /* images to take; 0: until interrupted */
	bool json, quiet;
	int cancel_efd; /* readable once interrupted (the snapshot's opts.cancel says why) */
};

/*
 * Takes the chain; prints a line per image (a JSON object per image with json). Returns 0 if
 * every image it began is complete (stopping by --count or by a signal between two images),
 * else 1, having said why on stderr.
 */
int oneshot_chain(const struct chain_cli *cc, const struct snap_opts *opts);
