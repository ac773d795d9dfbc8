/* SPDX-License-Identifier: MIT */
/* The image a snapshot writes: its writer and its META frame. */
#pragma once

#include "engine/snap.h"

int snap_writer_open(struct snap *s, struct img_sink *sink);
/*
 * Builds the metadata (target, kernel, time T, threads' registers, VMA table, and the hooks'
 * members) and writes it, then what the hooks write after it.
 */
int snap_begin_image(struct snap *s);
/* Pre-copy: the instant's metadata, written as the image's last META (FORMAT.md, REWRITES). */
int snap_final_meta(struct snap *s);
/* The before_instant hook, if any (opts.hooks): a failure fails the snapshot. */
int snap_before_instant(struct snap *s);
