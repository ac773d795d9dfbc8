/* SPDX-License-Identifier: MIT */
/* The background copier (engine/copier.c): saves, after T, every page nothing saved yet. */
#pragma once

#include "engine/snap.h"

/* Runs on the main thread (and opts.copy_threads - 1 more) until every tracked page is saved;
 * -ECANCELED if asked to stop. */
int copier_run(struct snap *s);
