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

/* /proc/PID/FILE opened with flags (O_CLOEXEC added): the fd, or -errno. */
int test_proc_open(pid_t pid, const char *file, int flags);

/*
 * The value of the line "FIELD:  VALUE" of a file such as "status" or "meminfo" (pid 0) into buf:
 * VALUE without the blanks before it and the newline after it. -ENOENT if no line has FIELD,
 * -errno if the file cannot be read.
 */
int test_proc_field(pid_t pid, const char *file, const char *field, char *buf, size_t len);

/*
 * The fds of pid whose link starts with prefix (say "/memfd:memory-backend-memfd"): how many
 * there are, the "/proc/PID/fd/N" of the last in ret_path; -errno if fd/ cannot be read.
 */
int test_proc_find_fd(pid_t pid, const char *prefix, char *ret_path, size_t len);
