/* SPDX-License-Identifier: MIT */
/*
 * Reference dumpers of the workload's regions (test code, not a product feature), to prove the
 * checker honest:
 * - stopped: SIGSTOP, wait until every thread is stopped, read all regions, SIGCONT. The image is
 *   one instant's memory by construction: the checker must accept it.
 * - torn: read data page 0 of every region, wait until every thread has made more than S further
 *   stores, then read the rest page by page with pauses. Page 0 then holds stores that the rest
 *   of the region proves overwritten: the checker must reject it, every time.
 */
#pragma once

#include "wl-harness.h"

int wl_refdump_stopped(const struct wl_proc *p, const char *image_path);
int wl_refdump_torn(const struct wl_proc *p, const char *image_path);
