/* SPDX-License-Identifier: MIT */
/*
 * The images of a chain (engine/snapshot.h: snapshot_chain_*(), proto/FORMAT.md "Chains") as
 * files: the steps every taker of a chain shares, whoever names the files (uffsnapd
 * --incremental, oneshot-chain.c; a service chain job, service/job-chain.c). Each returns 0 or
 * -errno with a sentence in msg; none logs.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/snapshot.h"

/* Longest "parent" member a chain image's META holds (digest, time, file name). */
#define CHAIN_IMAGE_PARENT_MAX 512

/* Sleeps until at (CLOCK_MONOTONIC): 0; -EINTR as soon as wake_fd is readable. */
int chain_image_wait(int wake_fd, uint64_t at);
/*
 * Reads the image written to fd back, front to back, as `uffsnapctl image verify` would,
 * through a new open file (fd may be write-only, and unnamed): 0 if it is complete.
 */
int chain_image_verify(int fd, const char *name, char *msg, size_t len);
/*
 * The chain's next image into fd (a new, empty file named name once complete): taken with the
 * output giving up once cancel_fd is readable, synced, verified. parent_json as for
 * snapshot_chain_take() (NULL for the first image).
 */
int chain_image_write(struct snapshot_chain *c, int fd, int cancel_fd, const char *name,
		      const char *parent_json, struct snap_stats *ret_stats, char *msg, size_t len);
/*
 * The parent of the next image (FORMAT.md "Chains"): the complete image in fd, named name, as
 * a JSON object (its trailer's digest, its time, name) in ret (CHAIN_IMAGE_PARENT_MAX bytes).
 */
int chain_image_parent(int fd, const char *name, char *ret, size_t len);
