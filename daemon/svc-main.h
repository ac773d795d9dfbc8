/* SPDX-License-Identifier: MIT */
/* Service mode: `uffsnapd --service ...` (proto/CONTROL.md). */
#pragma once

/* Runs the service until quit or SIGTERM; returns the process exit status. */
int svc_main(int argc, char **argv);
