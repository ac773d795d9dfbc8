/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap-harness.h"

int snap_paths_parse(int argc, char **argv, struct snap_paths *ret)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s UFFSNAPD WORKLOAD CHECK [args]\n", argv[0]);
		exit(2);
	}
	*ret = (struct snap_paths){argv[1], argv[2], argv[3]};
	return 4;
}

pid_t snap_start(const struct snap_paths *p, pid_t pid, const char *image, const char *extra)
{
	char pidstr[16];
	pid_t d;

	snprintf(pidstr, sizeof(pidstr), "%d", pid);
	d = fork();
	if (d == 0) {
		int null = open("/dev/null", 1);

		dup2(null, STDOUT_FILENO); /* the JSON summary */
		if (extra)
			execl(p->uffsnapd, "uffsnapd", "--pid", pidstr, "--output", image, "--force",
			      "--json", extra, (char *)NULL);
		else
			execl(p->uffsnapd, "uffsnapd", "--pid", pidstr, "--output", image, "--force",
			      "--json", (char *)NULL);
		_exit(127);
	}
	return d;
}

int snap_wait(pid_t daemon)
{
	int st;

	while (waitpid(daemon, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int snap_target_unharmed(struct wl_proc *w)
{
	uint64_t before[64];
	char line[256];
	int r;

	/* Every store thread makes progress again: none is left blocked on a protected page. */
	r = wl_proc_counters(w, before);
	if (r >= 0)
		r = wl_proc_wait_stores(w, before, 1000);
	if (r < 0) {
		fprintf(stderr, "FAIL: the target's threads do not make progress: %s\n",
			strerror(-r));
		return -1;
	}
	r = wl_proc_ask(w, SIGUSR1, line, sizeof(line));
	if (r < 0 || strncmp(line, "selfcheck ok", 12)) {
		fprintf(stderr, "FAIL: target self-check: %s\n", r < 0 ? strerror(-r) : line);
		return -1;
	}
	return 0;
}
