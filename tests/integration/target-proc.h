/* SPDX-License-Identifier: MIT */
/* What /proc shows of a test's target, as text to compare before and after. Return -errno. */
#pragma once
#include <stdint.h>
#include <stdbool.h>

#include <stddef.h>
#include <sys/types.h>

/* "fd -> what" for every fd of pid, sorted, one per line. */
int proc_fds(pid_t pid, char *out, size_t size);
/* /proc/PID/maps as it is. */
int proc_maps(pid_t pid, char *out, size_t size);
/* "TID SigPnd ShdPnd SigBlk SigIgn SigCgt" for every thread, sorted, one per line. */
int proc_signals(pid_t pid, char *out, size_t size);

/* The tests' own /dev/userfaultfd; -1 after printing why the test must skip (exit 77). */
int proc_devuffd_or_skip(void);

/* UFFDIO_WRITEPROTECT [start, start + len) on or off, retrying while an event is pending. */
int proc_writeprotect(int uffd, uint64_t start, uint64_t len, bool on);
/* One byte of pid's memory at addr (process_vm_readv), 0 if unreadable. */
char proc_peek(pid_t pid, uint64_t addr);
