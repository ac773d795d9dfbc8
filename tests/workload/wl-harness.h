/* SPDX-License-Identifier: MIT */
/*
 * Test helpers: run uffsnap-workload as a child, talk to it through its stdout and signals,
 * stop it, read its memory, reserve huge pages. Not part of any product.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wl-check.h"

/* A hang guard for reading the workload's lines (never a measurement). */
#define WL_HARNESS_LINE_TIMEOUT_MS 60000

struct wl_proc {
	pid_t pid;
	int out_fd; /* the workload's stdout */
	bool reaped;
	size_t len;
	char buf[1u << 16];
	char *layout_json; /* its first line */
	struct wl_layout layout;
};

/*
 * Start exe with args (NULL-terminated, without argv[0]) and wait for its layout and "ready".
 * -ENOSPC: the workload said "no free huge pages" (ret_proc is still set, for wl_proc_free).
 */
int wl_proc_spawn(const char *exe, const char *const *args, struct wl_proc **ret_proc);
/* Read one line (without the newline). -ETIMEDOUT, -EPIPE at end of output. */
int wl_proc_line(struct wl_proc *p, char *ret_line, size_t len);
/* Send sig and read the one line it answers with. */
int wl_proc_ask(struct wl_proc *p, int sig, char *ret_line, size_t len);
/* SIGTERM, read the final line, reap; ret_status is the wait status. */
int wl_proc_finish(struct wl_proc *p, char *ret_line, size_t len, int *ret_status);
/* Kill (if still running) and reap, close. Accepts NULL. */
void wl_proc_free(struct wl_proc *p);

/* SIGSTOP and wait until every thread of pid is stopped; SIGCONT. */
int wl_proc_stop(pid_t pid);
int wl_proc_cont(pid_t pid);
/* process_vm_readv all of [addr, addr + len); process_vm_writev. */
int wl_proc_read(pid_t pid, uint64_t addr, void *buf, size_t len);
int wl_proc_write(pid_t pid, uint64_t addr, const void *buf, size_t len);
/* Read every thread's counter into ret (layout.nthreads entries). */
int wl_proc_counters(const struct wl_proc *p, uint64_t *ret);
/* Wait until every thread's counter is greater than since[t] + delta (since NULL: 0). */
int wl_proc_wait_stores(const struct wl_proc *p, const uint64_t *since, uint64_t delta);
/* Run uffsnap-check IMAGE LAYOUT; returns its exit code, or -errno. */
int wl_run_check(const char *check_exe, const char *image, const char *layout_path);

int wl_write_file(const char *path, const char *text);

/* Raise vm.nr_hugepages so that need pages are free; ret_old is the value to restore. */
int wl_hugetlb_reserve(unsigned need, long *ret_old);
void wl_hugetlb_restore(long old);
