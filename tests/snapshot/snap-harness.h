/* SPDX-License-Identifier: MIT */
/* Running the real uffsnapd against the real workload, for the engine's integration tests. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "workload/wl-harness.h"

struct snap_paths {
	const char *uffsnapd, *workload, *check;
};

/* Parses argv: UFFSNAPD WORKLOAD CHECK [rest]; returns the index of the first extra arg. */
int snap_paths_parse(int argc, char **argv, struct snap_paths *ret);

/*
 * Starts uffsnapd --pid pid --output image --force --json [extra]; returns its pid. extra (may
 * be NULL): more options, separated by spaces. The JSON summary goes to IMAGE.json.
 */
pid_t snap_start(const struct snap_paths *p, pid_t pid, const char *image, const char *extra);
/* Waits for it; returns its exit code, or 128 + signal. */
int snap_wait(pid_t daemon);

/*
 * The target is unharmed: it still runs (every thread's counter advances), its full
 * self-check passes, and it is released: not traced, no userfaultfd left in it, no page left
 * write-protected (so it is not slower than before). Prints what is wrong; returns 0 or -1.
 */
int snap_target_unharmed(struct wl_proc *w);
/* TracerPid of pid (0: not traced), or -errno. */
long snap_tracer_of(pid_t pid);
/*
 * For the tests' own small targets, which obey one-byte commands on a pipe and answer 'y'
 * (done) or anything else (failed): sends c, returns 0 if it answered 'y', else -EIO.
 */
int snap_child_do(int cmd, int reply, char c);
/* Just the last part: pid is not traced, holds no userfaultfd, has no page write-protected. */
int snap_target_released(pid_t pid);

/*
 * The pause points of uffsnapd-test (uffsnapd-test.c), run with UFFSNAPD_TEST_PAUSE=POINT:DIR:
 * wait until it pauses at point (0, or -ETIMEDOUT after a hang guard); let it go on; remove
 * what it and snap_pause_go() created in dir.
 */
int snap_pause_wait(const char *dir, const char *point);
void snap_pause_go(const char *dir);
void snap_pause_clean(const char *dir, const char *point);

/* Runs argv (argv[0] a path) and waits: its exit status, or 128 + signal, or -1. */
int snap_run(const char *const argv[]);
/* As snap_run(), its stdout into the file out (created or truncated). */
int snap_run_to(const char *const argv[], const char *out);
/*
 * An image of a chain, read through its parents: `uffsnapctl image verify` checks every link,
 * and flattened (`uffsnapctl image flatten`, to IMG.flat, removed after) the checker finds it
 * one instant of the workload whose layout is at layout. Prints what is wrong; 0 or -1.
 */
int snap_chain_image_ok(const char *uffsnapctl, const char *check, const char *img,
			const char *layout);
/* Does the file at path contain needle (in its first 8 KiB)? */
bool snap_file_has(const char *path, const char *needle);
/* Does the image at path verify as complete (`uffsnapctl image verify` would say ok)? */
bool snap_image_complete(const char *path);

/* Starts uffsnapd --pid pid --output image --force --json [extra], its summary into json. */
pid_t snap_start_json(const char *uffsnapd, pid_t pid, const char *image, const char *json,
		      const char *extra);
/* A number of the --json summary in file json (0 if absent). */
uint64_t snap_json_stat(const char *json, const char *name);
/* The EVENT frames of the image at path whose "event" is event (NULL: all), as an array. */
json_t *snap_image_events(const char *path, const char *event);
/* How many of events have that "why" (NULL: any) and that "pid" (0: any). */
size_t snap_events_count(const json_t *events, const char *why, pid_t pid);
/* Waits until thread tid is traced (uffsnapd's holder seized it); false after a hang guard. */
bool snap_wait_traced(pid_t tid);
