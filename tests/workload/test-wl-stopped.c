/* SPDX-License-Identifier: MIT */
/*
 * The checker accepts what is one instant's memory: a stop-the-world dump (SIGSTOP, read every
 * region with process_vm_readv, SIGCONT) of the running workload, for every memory kind given
 * and 1, 4 and 8 threads. The workload's own self-check must pass afterwards.
 *
 * usage: test-wl-stopped WORKLOAD CHECK KINDS [WORKLOAD-ARGS...]
 *        KINDS is a comma list; hugetlb reserves huge pages and restores vm.nr_hugepages.
 * exit: 0 pass, 1 fail, 77 skip (no huge pages for a hugetlb-only run)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wl-refdump.h"

#define ROUNDS	     3
#define MAX_ARGS     24
/* One 2 MiB page per thread, 8 threads at most, and as many again for the fork event. */
#define HUGE_NEEDED  18

struct test_ctx {
	const char *workload;
	const char *check;
	const char *const *extra;
	int nextra;
	char dir[64];
	bool cli_done;
};

static void test_report(void *userdata, const char *line)
{
	printf("    checker: %s\n", line);
}

/* One stopped dump, checked by the library (and the first time also by the CLI). */
static int dump_and_check(struct test_ctx *c, struct wl_proc *p, int round)
{
	struct wl_check_opts o = {.max_reports = 5, .report = test_report};
	char image[128], layout[128];
	struct wl_verify_result res;
	int r;

	snprintf(image, sizeof(image), "%s/stopped-%d.img", c->dir, round);
	r = wl_refdump_stopped(p, image);
	if (r < 0) {
		printf("    reference dump failed: %s\n", strerror(-r));
		return -1;
	}
	r = wl_check_image_file(image, &p->layout, &o, &res);
	if (r < 0 || !res.consistent) {
		printf("    FAIL: checker rejected a stopped dump (%s)\n", r < 0 ? strerror(-r) : "");
		return -1;
	}
	printf("    round %d: consistent, stores=%llu\n", round, (unsigned long long)res.stores);
	if (!c->cli_done) {
		snprintf(layout, sizeof(layout), "%s/layout.json", c->dir);
		c->cli_done = true;
		if (wl_write_file(layout, p->layout_json) < 0 ||
		    wl_run_check(c->check, image, layout) != 0) {
			printf("    FAIL: uffsnap-check did not exit 0 on a stopped dump\n");
			return -1;
		}
	}
	unlink(image);
	return 0;
}

static int finish(struct wl_proc *p)
{
	char line[512];
	int status, r = wl_proc_finish(p, line, sizeof(line), &status);

	if (r < 0 || strncmp(line, "selfcheck ok", 12) != 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		printf("    FAIL: workload's final self-check: %s\n", r < 0 ? strerror(-r) : line);
		return -1;
	}
	return 0;
}

/* 1: pass, 0: skipped (no huge pages), -1: fail. */
static int run_case(struct test_ctx *c, const char *kind, const char *threads)
{
	const char *args[MAX_ARGS] = {"--kind", kind, "--threads", threads};
	struct wl_proc *p = NULL;
	struct wl_geometry g;
	int n = 4, r;

	for (int i = 0; i < c->nextra && n < MAX_ARGS - 1; i++)
		args[n++] = c->extra[i];
	printf("  kind=%s threads=%s\n", kind, threads);
	r = wl_proc_spawn(c->workload, args, &p);
	if (r == -ENOSPC) {
		printf("    skipped: no free huge pages\n");
		wl_proc_free(p);
		return 0;
	}
	if (r < 0) {
		printf("    FAIL: starting the workload: %s\n", strerror(-r));
		wl_proc_free(p);
		return -1;
	}
	/* Let every region fill up once (two rounds of S stores) so that every slot counts. */
	g = wl_layout_geometry(&p->layout, 0);
	r = wl_proc_wait_stores(p, NULL, 2 * wl_slots(&g));
	for (int round = 0; r >= 0 && round < ROUNDS; round++)
		r = dump_and_check(c, p, round);
	if (r >= 0)
		r = finish(p);
	wl_proc_free(p);
	return r < 0 ? -1 : 1;
}

int main(int argc, char **argv)
{
	static const char *const threads[] = {"1", "4", "8"};
	struct test_ctx c = {0};
	char kinds[256], *save = NULL;
	int passed = 0, failed = 0;
	long old_huge = -1;

	/* Line by line, so a log survives a crash or a timeout. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 4) {
		fprintf(stderr, "usage: %s WORKLOAD CHECK KINDS [WORKLOAD-ARGS...]\n", argv[0]);
		return 1;
	}
	c = (struct test_ctx){argv[1], argv[2], (const char *const *)argv + 4, argc - 4};
	snprintf(c.dir, sizeof(c.dir), "/tmp/wl-stopped.XXXXXX");
	if (!mkdtemp(c.dir))
		return 1;
	if (strstr(argv[3], "hugetlb") && wl_hugetlb_reserve(HUGE_NEEDED, &old_huge) < 0)
		printf("cannot reserve %d huge pages\n", HUGE_NEEDED);
	snprintf(kinds, sizeof(kinds), "%s", argv[3]);
	for (char *k = strtok_r(kinds, ",", &save); k; k = strtok_r(NULL, ",", &save))
		for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
			int r = run_case(&c, k, threads[i]);

			passed += r > 0;
			failed += r < 0;
		}
	if (old_huge >= 0)
		wl_hugetlb_restore(old_huge);
	rmdir(c.dir);
	printf("%d passed, %d failed\n", passed, failed);
	if (failed)
		return 1;
	if (!passed) {
		printf("SKIP: no case could run (no free huge pages)\n");
		return 77;
	}
	return 0;
}
