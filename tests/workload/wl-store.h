/* SPDX-License-Identifier: MIT */
/* The workload's store threads: each owns one region and stores into it as fast as it can. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "wl-memory.h"
#include "wl-scheme.h"
#include "wl-status.h"
#include "wl-verify.h"

/* With readinto on, every WL_KERNEL_STORE_EVERY-th store is done by read(2) from a pipe. */
#define WL_KERNEL_STORE_EVERY 8

struct wl_region {
	struct wl_mapping map;
	uint8_t *header; /* first page of the mapping */
	uint8_t *data;	 /* the P data pages after it */
	_Atomic uint64_t *counter;
};

struct wl_store;

struct wl_worker {
	struct wl_store *store;
	uint32_t thread;
	uint64_t s; /* stores done */
	int pipe[2];
	pthread_t tid;
	bool started;
};

struct wl_store {
	struct wl_geometry geo;
	uint32_t nthreads;
	enum wl_kind kind;
	bool readinto;
	struct wl_status *status;
	struct wl_region regions[WL_MAX_THREADS];
	struct wl_worker workers[WL_MAX_THREADS];
};

/* Map every region and write its header. st's geo, nthreads, kind, readinto, status are set. */
int wl_store_setup(struct wl_store *st, const char *tmpdir);
int wl_store_start(struct wl_store *st);
/* Set status->stop first; joins every worker. */
void wl_store_join(struct wl_store *st);
void wl_store_teardown(struct wl_store *st);

/* Sum of the published counters. */
uint64_t wl_store_total(const struct wl_store *st);
/* Views of the live memory, for wl_verify (views has nthreads entries). */
void wl_store_views(const struct wl_store *st, struct wl_view *views);
/*
 * Full verification of the live memory; the workers must be parked or joined. Also checks that
 * each worker's own count matches its published counter. report gets the problem lines.
 */
int wl_store_verify(struct wl_store *st, wl_report_fn report, void *userdata,
		    struct wl_verify_result *ret);
