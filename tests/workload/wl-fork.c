/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "wl-events.h"
#include "wl-fork.h"

static void wl_fork_report(void *userdata, const char *line)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "uffsnap-workload: fork child: %s\n", line);
	ssize_t w = write(STDERR_FILENO, buf, n > 0 && (size_t)n < sizeof(buf) ? (size_t)n : 0);

	(void)w;
}

static int wl_fork_check_copy(struct wl_store *st)
{
	struct wl_verify_opts o = {
		.kernel_store_every = st->readinto ? WL_KERNEL_STORE_EVERY : 0,
		.max_reports = 5,
		.report = wl_fork_report,
	};
	struct wl_view views[WL_MAX_THREADS];
	struct wl_verify_result res;

	wl_store_views(st, views);
	if (wl_verify(views, st->nthreads, &o, &res) < 0 || !res.consistent)
		return 1;
	return 0;
}

static int wl_fork_scribble(uint8_t *p, size_t len, uint64_t gen)
{
	wl_scratch_fill(p, len, WL_EV_FORK, gen);
	if (wl_scratch_verify(p, len, WL_EV_FORK, gen) == len / 8)
		return 0;
	wl_fork_report(NULL, "its own writes read back wrong");
	return 2;
}

int wl_fork_child(struct wl_events *ev, uint64_t gen)
{
	struct wl_store *st = ev->store;
	int r;

	/* Shared kinds: the parent's threads still write the same pages; nothing to check. */
	if (wl_kind_forks_copy(st->kind)) {
		r = wl_fork_check_copy(st);
		if (r)
			return r;
	}
	for (uint32_t t = 0; wl_kind_child_writes(st->kind) && t < st->nthreads; t++) {
		r = wl_fork_scribble(st->regions[t].map.addr, st->regions[t].map.size, gen);
		if (r)
			return r;
	}
	return wl_fork_scribble(ev->fork_scratch.addr, ev->fork_scratch.size, gen);
}
