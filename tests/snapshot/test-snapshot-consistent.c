/* SPDX-License-Identifier: MIT */
/*
 * The engine's central claim: a live snapshot is exactly one instant's memory. For every
 * memory kind given, with 1, 4 and 8 threads, with or without background events (fork,
 * mremap, munmap, madvise, thread churn, read(2) into tracked memory), run the real uffsnapd
 * against the predictable-store workload and let the checker decide from the image alone;
 * then require the target to be unharmed.
 *
 * usage: test-snapshot-consistent UFFSNAPD WORKLOAD CHECK KINDS [--events LIST] [--pages N]
 *                                 [--arm held|live|precopy|precopy-converge|precopy-rounds]
 *                                 [--expect converged|fell-back|any] [--threads LIST]
 *                                 [-- WORKLOAD-ARGS...]
 * (--arm precopy: a pre-copy snapshot with the default budget (50 ms), which converges or
 * falls back to write protection depending on the load; precopy-converge: one whose 60 s
 * budget it always fits after the first round; precopy-rounds: one whose 1 ms budget it
 * never fits (the first hold alone, attaching and creating the userfaultfd by injected system
 * calls, takes longer), so that it copies every round it may and then falls back.)
 * (--expect converged|fell-back: how a pre-copy must end, from its JSON summary; any: that it
 * was a pre-copy, with at least one round, whichever way it ended.)
 * (--threads: comma list of store-thread counts, default 1,4,8.)
 * (--pages: data pages per thread, default 128; large enough, arming while the target runs
 * takes long and the events and stores meet it mid-way.)
 * (e.g. "-- --as-user nobody" for an unprivileged target, "-- --seccomp-deny-uffd" for one
 * whose seccomp filter denies userfaultfd(2)).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "snap-harness.h"

/* check_expect(): the run did not reach the fall-back it was meant to show: take another. */
#define TOO_LITTLE_LEFT 1
/* How many runs a fell-back expected may take before that counts as a failure. */
#define FALL_BACK_TRIES 4

struct run_opts {
	const char *events, *pages, *arm, *expect;
	char **extra;
	int nextra;
};

/*
 * Which way a pre-copy snapshot ended, from its JSON summary: "converged" (the last round
 * copied while held) or "fell-back" (write protection saved the rest). Returns 0 if as
 * expected, -1 if not, and TOO_LITTLE_LEFT for a fell-back expected where the rounds ended
 * with so little left to copy that another was not worth it (engine/precopy.c rounds(): a
 * target starved of CPU by a loaded machine writes next to nothing between two rounds).
 */
static int check_expect(const char *image, const char *expect)
{
	char path[64];
	json_t *j, *pc;
	bool fell;

	snprintf(path, sizeof(path), "%s.json", image);
	j = json_load_file(path, 0, NULL);
	pc = json_object_get(j, "precopy");
	fell = json_is_true(json_object_get(pc, "fell_back"));
	if (pc && !strcmp(expect, "fell-back") && !fell &&
	    !json_is_true(json_object_get(pc, "converged"))) {
		char *text = json_dumps(pc, JSON_COMPACT);

		printf("pre-copy ended after %lld rounds with too little left to fall back: %s\n",
		       (long long)json_integer_value(json_object_get(pc, "rounds")), text);
		free(text);
		json_decref(j);
		return TOO_LITTLE_LEFT;
	}
	if (!pc || json_integer_value(json_object_get(pc, "rounds")) < 1 ||
	    (strcmp(expect, "any") &&
	     (fell != !strcmp(expect, "fell-back") ||
	      json_is_true(json_object_get(pc, "converged")) != !strcmp(expect, "converged")))) {
		fprintf(stderr, "FAIL: expected a pre-copy that %s; its summary has %s\n", expect,
			pc ? json_dumps(pc, JSON_COMPACT) : "no \"precopy\"");
		json_decref(j);
		return -1;
	}
	printf("pre-copy %s after %lld rounds\n",
	       strcmp(expect, "any") ? expect : fell ? "fell-back" : "converged",
	       (long long)json_integer_value(json_object_get(pc, "rounds")));
	json_decref(j);
	return 0;
}

static int one(const struct snap_paths *p, const char *kind, const char *threads,
	       const struct run_opts *o)
{
	/* hugetlb pages are 2 MiB each: fewer of them */
	const char *pages = strcmp(kind, "hugetlb") ? o->pages : "4";
	const char *events = o->events;
	char **extra = o->extra;
	int nextra = o->nextra;
	const char *args[16] = {"--threads", threads, "--kind", kind, "--pages", pages};
	int na = 6;
	char image[] = "/tmp/uffsnap-test-XXXXXX", layout[64];
	struct wl_proc *w = NULL;
	int r, fd = mkstemp(image), rc = -1, expected;

	close(fd);
	for (int i = 0; i < nextra && na < 12; i++)
		args[na++] = extra[i];
	if (events) {
		args[na++] = "--events";
		args[na++] = events;
	}
	r = wl_proc_spawn(p->workload, args, &w);
	if (r == -ENOSPC) {
		printf("SKIP %s: no free huge pages\n", kind);
		rc = 77;
		goto out;
	}
	if (r < 0) {
		fprintf(stderr, "FAIL: cannot start the workload: %s\n", strerror(-r));
		goto out;
	}
	snprintf(layout, sizeof(layout), "%s.layout", image);
	wl_write_file(layout, w->layout_json);
	r = snap_wait(snap_start(p, w->pid, image, o->arm));
	if (r != 0) {
		fprintf(stderr, "FAIL: uffsnapd exited %d (kind %s, %s threads)\n", r, kind, threads);
		goto out;
	}
	expected = o->expect ? check_expect(image, o->expect) : 0;
	if (expected < 0)
		goto out;
	r = wl_run_check(p->check, image, layout);
	if (r != 0) {
		fprintf(stderr, "FAIL: image is not one instant (kind %s, %s threads, events %s)\n",
			kind, threads, events ? events : "none");
		goto out;
	}
	if (snap_target_unharmed(w) < 0)
		goto out;
	printf("ok %s, %s threads, events %s\n", kind, threads, events ? events : "none");
	rc = expected;
out:
	wl_proc_free(w);
	unlink(image);
	unlink(layout);
	snprintf(layout, sizeof(layout), "%s.json", image);
	unlink(layout);
	return rc;
}

int main(int argc, char **argv)
{
	struct snap_paths p;
	int i = snap_paths_parse(argc, argv, &p), failed = 0, passed = 0;
	struct run_opts o = {.pages = "128"};
	long old_huge = -1;
	char *kinds, *kind, *save, *threads = strdup("1,4,8"), copy_threads[64] = "", flags[256];

	if (getuid() != 0) {
		printf("SKIP: needs root (ptrace any process, /dev/userfaultfd)\n");
		return 77;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: %s UFFSNAPD WORKLOAD CHECK KINDS [--events LIST]\n", argv[0]);
		return 2;
	}
	kinds = strdup(argv[i]);
	for (int a = i + 1; a < argc; a++) {
		if (!strcmp(argv[a], "--events") && a + 1 < argc) {
			o.events = argv[++a];
		} else if (!strcmp(argv[a], "--pages") && a + 1 < argc) {
			o.pages = argv[++a];
		} else if (!strcmp(argv[a], "--threads") && a + 1 < argc) {
			free(threads);
			threads = strdup(argv[++a]);
		} else if (!strcmp(argv[a], "--arm") && a + 1 < argc) {
			a++;
			o.arm = !strcmp(argv[a], "held")	       ? "--arm-held"
				: !strcmp(argv[a], "precopy")	       ? "--precopy"
				: !strcmp(argv[a], "precopy-converge") ? "--precopy --downtime 60000"
				: !strcmp(argv[a], "precopy-rounds") ? "--precopy --downtime 1 --max-rounds 6"
								       : NULL;
		} else if (!strcmp(argv[a], "--copy-threads") && a + 1 < argc) {
			snprintf(copy_threads, sizeof(copy_threads), "--copy-threads %s",
				 argv[++a]);
		} else if (!strcmp(argv[a], "--expect") && a + 1 < argc) {
			o.expect = argv[++a];
		} else if (!strcmp(argv[a], "--")) {
			o.extra = argv + a + 1;
			o.nextra = argc - a - 1;
			break;
		}
	}
	if (copy_threads[0]) { /* uffsnapd's own flags: both */
		snprintf(flags, sizeof(flags), "%s %s", o.arm ? o.arm : "", copy_threads);
		o.arm = flags;
	}
	if (strstr(kinds, "hugetlb"))
		wl_hugetlb_reserve(8 * 4 + 16, &old_huge);
	for (kind = strtok_r(kinds, ",", &save); kind; kind = strtok_r(NULL, ",", &save)) {
		char *list = strdup(threads), *n, *save2;

		for (n = strtok_r(list, ",", &save2); n; n = strtok_r(NULL, ",", &save2)) {
			int r = one(&p, kind, n, &o);

			for (int t = 1; r == TOO_LITTLE_LEFT && t < FALL_BACK_TRIES; t++)
				r = one(&p, kind, n, &o);
			if (r == TOO_LITTLE_LEFT)
				fprintf(stderr, "FAIL: no pre-copy fell back in %d runs\n",
					FALL_BACK_TRIES);
			failed += r != 0 && r != 77;
			passed += r == 0;
		}
		free(list);
	}
	if (old_huge >= 0)
		wl_hugetlb_restore(old_huge);
	free(threads);
	free(kinds);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : passed ? 0 : 77;
}
