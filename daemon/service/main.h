/* SPDX-License-Identifier: MIT */
/* Service mode: `uffsnapd --service ...` (proto/CONTROL.md). */
#pragma once

/*
 * Runs the service until quit or SIGTERM; returns the process exit status. test_pause: NULL,
 * but in tests (struct snap_opts).
 */
int svc_main(int argc, char **argv, void (*test_pause)(const char *point));
