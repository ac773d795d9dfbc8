/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "wl-store.h"

/* Stores between two looks at the stop and pause flags: a pause lands between whole stores. */
#define WL_BATCH 256
/* A worker re-reads its last S records after every WL_SELFCHECK_ROUNDS * S stores. */
#define WL_SELFCHECK_ROUNDS 8

int wl_store_setup(struct wl_store *st, const char *tmpdir)
{
	size_t ps = st->geo.page_size;
	int r;

	for (uint32_t t = 0; t < st->nthreads; t++) {
		struct wl_region *reg = &st->regions[t];
		struct wl_header h = {WL_HEADER_MAGIC, t, st->nthreads, st->geo.pages,
				      st->geo.records, st->geo.page_size};

		r = wl_memory_map(st->kind, ps * (st->geo.pages + 1), tmpdir, &reg->map);
		if (r < 0)
			return r;
		reg->header = reg->map.addr;
		reg->data = reg->map.addr + ps;
		reg->counter = (_Atomic uint64_t *)(reg->header + WL_COUNTER_OFFSET);
		memcpy(reg->header, &h, sizeof(h));
		atomic_store(reg->counter, 0);
	}
	for (uint32_t t = 0; t < st->nthreads; t++)
		st->workers[t] = (struct wl_worker){.store = st, .thread = t, .pipe = {-EBADF, -EBADF}};
	return 0;
}

/* The kernel writes the record: same bytes as a user store, written by read(2). */
static void wl_worker_kernel_store(struct wl_worker *w, uint8_t *slot, uint64_t tag, uint64_t seen)
{
	struct wl_record rec = {tag, seen}, junk;
	ssize_t n = write(w->pipe[1], &rec, sizeof(rec)), m;
	int err = errno;

	if (n != (ssize_t)sizeof(rec)) {
		wl_status_fail(w->store->status, "thread %" PRIu32 ": write(2) to its pipe: %s",
			       w->thread, n < 0 ? strerror(err) : "short write");
		if (n <= 0)
			goto user;
	}
	n = read(w->pipe[0], slot, sizeof(rec));
	err = errno;
	if (n == (ssize_t)sizeof(rec))
		return;
	wl_status_fail(w->store->status,
		       "thread %" PRIu32 ": read(2) into tracked memory at %p returned %zd (%s): "
		       "a kernel write into the region failed",
		       w->thread, (void *)slot, n, n < 0 ? strerror(err) : "short read");
	/* Drain what the read left in the pipe and keep the scheme whole from user space. */
	m = read(w->pipe[0], &junk, sizeof(rec) - (size_t)(n > 0 ? n : 0));
	(void)m;
user:
	wl_record_store(slot, tag, seen);
}

static void wl_worker_store(struct wl_worker *w, const struct wl_region *reg,
			    const _Atomic uint64_t *neighbour)
{
	const struct wl_geometry *g = &w->store->geo;
	uint64_t s = w->s + 1, seen, tag = wl_tag(w->thread, s);
	uint8_t *slot = reg->data + wl_slot_offset(g, wl_slot_of_store(g, s));

	seen = atomic_load_explicit(neighbour, memory_order_acquire);
	if (w->store->readinto && s % WL_KERNEL_STORE_EVERY == 0)
		wl_worker_kernel_store(w, slot, tag, seen);
	else
		wl_record_store(slot, tag, seen);
	atomic_store_explicit(reg->counter, s, memory_order_release);
	w->s = s;
}

/* Re-read the last S records: exact tags, monotone seen, none ahead of the neighbour. */
static void wl_worker_selfcheck(struct wl_worker *w, const struct wl_region *reg,
				const _Atomic uint64_t *neighbour)
{
	const struct wl_geometry *g = &w->store->geo;
	uint64_t n = wl_slots(g), prev = 0, nb;

	for (uint64_t s = w->s > n ? w->s - n + 1 : 1; s <= w->s; s++) {
		struct wl_record r;

		wl_record_load(reg->data + wl_slot_offset(g, wl_slot_of_store(g, s)), &r);
		if (r.tag != wl_tag(w->thread, s) || r.seen < prev) {
			wl_status_fail(w->store->status,
				       "thread %" PRIu32 ": own store %" PRIu64 " reads back as tag "
				       "0x%" PRIx64 " seen %" PRIu64 " (previous seen %" PRIu64 ")",
				       w->thread, s, r.tag, r.seen, prev);
			return;
		}
		prev = r.seen;
	}
	nb = atomic_load_explicit(neighbour, memory_order_acquire);
	if (prev > nb)
		wl_status_fail(w->store->status,
			       "thread %" PRIu32 ": saw its neighbour at %" PRIu64
			       " but the neighbour's counter is now %" PRIu64,
			       w->thread, prev, nb);
}

static void *wl_worker_main(void *arg)
{
	struct wl_worker *w = arg;
	struct wl_store *st = w->store;
	const struct wl_region *reg = &st->regions[w->thread];
	const _Atomic uint64_t *nb = st->regions[(w->thread + 1) % st->nthreads].counter;
	uint64_t every = WL_SELFCHECK_ROUNDS * wl_slots(&st->geo), next = every;

	while (!atomic_load_explicit(&st->status->stop, memory_order_relaxed)) {
		if (atomic_load_explicit(&st->status->pause, memory_order_relaxed)) {
			wl_status_park(st->status);
			continue;
		}
		for (unsigned i = 0; i < WL_BATCH; i++)
			wl_worker_store(w, reg, nb);
		if (w->s >= next) {
			wl_worker_selfcheck(w, reg, nb);
			next = w->s + every;
		}
	}
	return NULL;
}

int wl_store_start(struct wl_store *st)
{
	for (uint32_t t = 0; t < st->nthreads; t++) {
		struct wl_worker *w = &st->workers[t];
		int r;

		if (st->readinto && pipe2(w->pipe, O_CLOEXEC) < 0)
			return -errno;
		r = -pthread_create(&w->tid, NULL, wl_worker_main, w);
		if (r < 0)
			return r;
		w->started = true;
	}
	return 0;
}

void wl_store_join(struct wl_store *st)
{
	for (uint32_t t = 0; t < st->nthreads; t++) {
		if (!st->workers[t].started)
			continue;
		pthread_join(st->workers[t].tid, NULL);
		st->workers[t].started = false;
	}
}

void wl_store_teardown(struct wl_store *st)
{
	if (!st)
		return;
	for (uint32_t t = 0; t < st->nthreads; t++) {
		for (int i = 0; i < 2; i++)
			if (st->workers[t].pipe[i] >= 0)
				close(st->workers[t].pipe[i]);
		wl_memory_unmap(&st->regions[t].map);
	}
}

uint64_t wl_store_total(const struct wl_store *st)
{
	uint64_t sum = 0;

	for (uint32_t t = 0; t < st->nthreads; t++)
		sum += atomic_load_explicit(st->regions[t].counter, memory_order_relaxed);
	return sum;
}

void wl_store_views(const struct wl_store *st, struct wl_view *views)
{
	for (uint32_t t = 0; t < st->nthreads; t++)
		views[t] = (struct wl_view){.thread = t,
					    .geo = st->geo,
					    .header_addr = (uintptr_t)st->regions[t].header,
					    .data_addr = (uintptr_t)st->regions[t].data,
					    .header = st->regions[t].header,
					    .data = st->regions[t].data};
}

int wl_store_verify(struct wl_store *st, wl_report_fn report, void *userdata,
		    struct wl_verify_result *ret)
{
	struct wl_verify_opts o = {.exact_counter = true, .report = report, .userdata = userdata};
	struct wl_view views[WL_MAX_THREADS];
	char line[200];
	int r;

	wl_store_views(st, views);
	r = wl_verify(views, st->nthreads, &o, ret);
	if (r < 0)
		return r;
	for (uint32_t t = 0; t < st->nthreads; t++) {
		if (ret->k[t] == st->workers[t].s)
			continue;
		ret->problems++;
		ret->consistent = false;
		snprintf(line, sizeof(line),
			 "thread %" PRIu32 " made %" PRIu64 " stores but its memory holds %" PRIu64,
			 t, st->workers[t].s, ret->k[t]);
		if (report)
			report(userdata, line);
	}
	return 0;
}
