/* SPDX-License-Identifier: MIT */
/*
 * What the workload's threads share besides memory: the stop and pause requests, and the
 * failures its self-checks found (the first one's text, and how many).
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct wl_status {
	atomic_bool stop;
	atomic_bool pause;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned parked;
	atomic_uint_fast64_t failures;
	char first_failure[512];
};

void wl_status_init(struct wl_status *s);
void wl_status_destroy(struct wl_status *s);
/* Record a failure; the first one's text is kept. %m means the caller's errno. */
void wl_status_fail(struct wl_status *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t wl_status_failures(struct wl_status *s, char *ret_first, size_t len);

/* A worker that sees pause set calls this; it returns once pause is cleared. */
void wl_status_park(struct wl_status *s);
/* Ask nworkers workers to park and wait until they all have. */
void wl_status_pause(struct wl_status *s, unsigned nworkers);
void wl_status_resume(struct wl_status *s);
