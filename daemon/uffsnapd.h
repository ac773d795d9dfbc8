/* SPDX-License-Identifier: MIT */
/* The uffsnapd program, for its main() and for the test build of it (uffsnapd-test). */
#pragma once

/*
 * Everything uffsnapd does; returns its exit status. test_pause: NULL in uffsnapd; the pause
 * points of tests/snapshot/uffsnapd-test.c (struct snap_opts.test_pause) there.
 */
int uffsnapd_main(int argc, char **argv, void (*test_pause)(const char *point));
