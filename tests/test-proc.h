/* SPDX-License-Identifier: MIT */
/*
 * What the tests read of /proc: one way to name a file of a process and read it whole, so a
 * test says what it looks for instead of opening, reading and closing by hand. Return -errno.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* "/proc/PID/FILE" into buf (pid 0: "/proc/FILE", for "self/..." or "meminfo"). */
int test_proc_path(char *buf, size_t len, pid_t pid, const char *file);

/*
 * /proc/PID/FILE into buf, NUL-terminated: the bytes read (at most len - 1; a caller that needs
 * the file whole checks it did not fill buf), or -errno.
 */
ssize_t test_proc_read(pid_t pid, const char *file, char *buf, size_t len);

/*
 * The state letter of a stat file ("stat", "task/TID/stat"): the field after the last ')', as
 * the command name before it may hold spaces and parentheses. '?' if that field is not there,
 * -errno if the file cannot be read (the task is gone).
 */
int test_proc_state(pid_t pid, const char *file);
