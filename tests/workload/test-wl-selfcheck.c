/* SPDX-License-Identifier: MIT */
/*
 * The workload itself: with every background event running, on every kind, its SIGUSR1 and
 * SIGTERM self-checks pass and SIGUSR2 reports progress; as another user under a seccomp filter
 * it still runs; and its self-check is not a rubber stamp: a byte changed behind its back (with
 * process_vm_writev, in bytes it never writes) makes it fail.
 *
 * usage: test-wl-selfcheck WORKLOAD
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test-proc.h"
#include "wl-harness.h"

#define RUN_NS (300 * 1000 * 1000) /* let the events run a while between checks */

static void pause_run(void)
{
	struct timespec ts = {0, RUN_NS};

	nanosleep(&ts, NULL);
}

static int expect_prefix(const char *what, const char *line, const char *prefix)
{
	if (strncmp(line, prefix, strlen(prefix)) == 0)
		return 0;
	printf("    FAIL: %s answered '%s', expected '%s...'\n", what, line, prefix);
	return -1;
}

/* Two SIGUSR1 checks with progress between them, a rate, then SIGTERM. */
static int exercise(struct wl_proc *p)
{
	uint64_t s1 = 0, s2 = 0;
	char line[1024];
	int r, status;

	pause_run();
	r = wl_proc_ask(p, SIGUSR2, line, sizeof(line));
	if (r < 0 || expect_prefix("SIGUSR2", line, "rate ") < 0 || atof(line + 5) <= 0)
		return -1;
	if (wl_proc_ask(p, SIGUSR1, line, sizeof(line)) < 0 ||
	    expect_prefix("SIGUSR1", line, "selfcheck ok stores=") < 0)
		return -1;
	s1 = strtoull(line + 20, NULL, 10);
	pause_run();
	if (wl_proc_ask(p, SIGUSR1, line, sizeof(line)) < 0 ||
	    expect_prefix("SIGUSR1", line, "selfcheck ok stores=") < 0)
		return -1;
	s2 = strtoull(line + 20, NULL, 10);
	if (s2 <= s1) {
		printf("    FAIL: no stores between two self-checks (%" PRIu64 ", %" PRIu64 ")\n", s1,
		       s2);
		return -1;
	}
	r = wl_proc_finish(p, line, sizeof(line), &status);
	if (r < 0 || expect_prefix("SIGTERM", line, "selfcheck ok stores=") < 0)
		return -1;
	printf("    %s\n", line);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int run(const char *workload, const char *const *args, int (*fn)(struct wl_proc *))
{
	struct wl_proc *p = NULL;
	int r;

	printf(" ");
	for (int i = 0; args[i]; i++)
		printf(" %s", args[i]);
	printf("\n");
	r = wl_proc_spawn(workload, args, &p);
	if (r < 0)
		printf("    FAIL: starting the workload: %s\n", strerror(-r));
	else
		r = fn(p);
	wl_proc_free(p);
	return r < 0 ? -1 : 0;
}

static int status_has(pid_t pid, const char *text)
{
	char buf[4096];

	return test_proc_read(pid, "status", buf, sizeof(buf)) >= 0 && strstr(buf, text);
}

static int check_hardened(struct wl_proc *p)
{
	if (!status_has(p->pid, "Uid:\t65534\t65534\t65534\t65534") ||
	    !status_has(p->pid, "Seccomp:\t2")) {
		printf("    FAIL: workload is not running as nobody under a seccomp filter\n");
		return -1;
	}
	return exercise(p);
}

/* Change one byte the workload never writes; its SIGUSR1 self-check must fail and exit 1. */
static int check_detects(struct wl_proc *p)
{
	const struct wl_layout_region *reg = &p->layout.regions[1];
	uint8_t junk = 0x5a;
	char line[1024];
	int r, status;

	r = wl_proc_write(p->pid, reg->addr + 7 * p->layout.page_size +
					  (uint64_t)reg->records * WL_RECORD_SIZE + 100,
			  &junk, 1);
	if (r < 0) {
		printf("    FAIL: process_vm_writev: %s\n", strerror(-r));
		return -1;
	}
	r = wl_proc_ask(p, SIGUSR1, line, sizeof(line));
	if (r < 0 || expect_prefix("SIGUSR1 after corruption", line, "selfcheck FAILED") < 0)
		return -1;
	printf("    %s\n", line);
	if (waitpid(p->pid, &status, 0) < 0)
		return -1;
	p->reaped = true;
	return WIFEXITED(status) && WEXITSTATUS(status) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const char *const kinds[] = {"anon", "thp", "shm", "memfd", "filepriv"};
	const char *hardened[] = {"--events", "all", "--as-user", "nobody", "--seccomp-deny-uffd",
				  NULL};
	const char *corrupt[] = {"--threads", "2", "--pages", "8", "--records", "128", NULL};
	int failed = 0;

	/* Line by line, so a log survives a crash or a timeout. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: %s WORKLOAD\n", argv[0]);
		return 1;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const char *args[] = {"--kind", kinds[i], "--threads", "4", "--events", "all", NULL};

		failed += run(argv[1], args, exercise) < 0;
	}
	failed += run(argv[1], hardened, check_hardened) < 0;
	failed += run(argv[1], corrupt, check_detects) < 0;
	printf("%d failed\n", failed);
	return failed ? 1 : 0;
}
