/* SPDX-License-Identifier: MIT */
/*
 * The checker rejects what is not one instant's memory: a dump read page by page from the
 * running workload, built to be torn for certain (wl-refdump.h says why), every time, for
 * several kinds and thread counts. A stopped dump of the same process right after must pass,
 * so the rejection is about the tearing and nothing else.
 *
 * usage: test-wl-torn WORKLOAD CHECK
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wl-refdump.h"

#define ROUNDS 3

struct test_ctx {
	const char *workload;
	const char *check;
	char dir[64];
	bool cli_done;
};

static void test_report(void *userdata, const char *line)
{
	unsigned *n = userdata;

	if ((*n)++ < 2)
		printf("    checker: %s\n", line);
}

/* 0: as expected; -1: not. */
static int check_image(struct test_ctx *c, struct wl_proc *p, const char *image, bool want)
{
	unsigned lines = 0;
	struct wl_check_opts o = {.max_reports = 2, .report = test_report, .userdata = &lines};
	struct wl_verify_result res;
	int r = wl_check_image_file(image, &p->layout, &o, &res);

	if (r < 0) {
		printf("    FAIL: checker error %s\n", strerror(-r));
		return -1;
	}
	printf("    %s dump: %s (%llu problems)\n", want ? "stopped" : "torn",
	       res.consistent ? "consistent" : "inconsistent", (unsigned long long)res.problems);
	return res.consistent == want ? 0 : -1;
}

static int cli_once(struct test_ctx *c, struct wl_proc *p, const char *image)
{
	char layout[128];
	int code;

	if (c->cli_done)
		return 0;
	c->cli_done = true;
	snprintf(layout, sizeof(layout), "%s/layout.json", c->dir);
	if (wl_write_file(layout, p->layout_json) < 0)
		return -1;
	code = wl_run_check(c->check, image, layout);
	unlink(layout);
	if (code != 1)
		printf("    FAIL: uffsnap-check exited %d on a torn dump, not 1\n", code);
	return code == 1 ? 0 : -1;
}

static int rounds(struct test_ctx *c, struct wl_proc *p)
{
	char image[128];
	int r = 0;

	snprintf(image, sizeof(image), "%s/dump.img", c->dir);
	for (int i = 0; r >= 0 && i < ROUNDS; i++) {
		r = wl_refdump_torn(p, image);
		if (r < 0)
			printf("    FAIL: torn dump: %s\n", strerror(-r));
		if (r >= 0)
			r = check_image(c, p, image, false);
		if (r >= 0)
			r = cli_once(c, p, image);
	}
	if (r >= 0 && (r = wl_refdump_stopped(p, image)) < 0)
		printf("    FAIL: stopped dump: %s\n", strerror(-r));
	if (r >= 0)
		r = check_image(c, p, image, true);
	unlink(image);
	return r;
}

static int run_case(struct test_ctx *c, const char *kind, const char *threads, const char *events)
{
	const char *args[] = {"--kind", kind, "--threads", threads, "--events", events, NULL};
	struct wl_proc *p = NULL;
	char line[512];
	int r, status;

	printf("  kind=%s threads=%s events=%s\n", kind, threads, events);
	r = wl_proc_spawn(c->workload, args, &p);
	if (r < 0)
		printf("    FAIL: starting the workload: %s\n", strerror(-r));
	if (r >= 0)
		r = rounds(c, p);
	if (r >= 0) {
		r = wl_proc_finish(p, line, sizeof(line), &status);
		if (r < 0 || strncmp(line, "selfcheck ok", 12) != 0 || status != 0) {
			printf("    FAIL: final self-check: %s\n", r < 0 ? strerror(-r) : line);
			r = -1;
		}
	}
	wl_proc_free(p);
	return r < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	static const char *const cases[][3] = {
		{"anon", "1", "threads"},	{"anon", "4", "readinto"}, {"shm", "4", "fork"},
		{"thp", "8", "madvise,mremap"}, {"memfd", "1", "munmap"},  {"filepriv", "4", "all"},
	};
	struct test_ctx c = {0};
	int failed = 0;

	/* Line by line, so a log survives a crash or a timeout. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: %s WORKLOAD CHECK\n", argv[0]);
		return 1;
	}
	c.workload = argv[1];
	c.check = argv[2];
	snprintf(c.dir, sizeof(c.dir), "/tmp/wl-torn.XXXXXX");
	if (!mkdtemp(c.dir))
		return 1;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		failed += run_case(&c, cases[i][0], cases[i][1], cases[i][2]) < 0;
	rmdir(c.dir);
	printf("%d of %zu cases failed\n", failed, sizeof(cases) / sizeof(cases[0]));
	return failed ? 1 : 0;
}
