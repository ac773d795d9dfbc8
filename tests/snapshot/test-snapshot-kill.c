/* SPDX-License-Identifier: MIT */
/*
 * uffsnapd killed with SIGKILL at random moments of a snapshot: the target must continue with
 * correct memory every time. The kernel drops all protection when the last reference to the
 * userfaultfd goes (the target's copy is closed right after creation) and detaches a dead
 * tracer's tracees.
 *
 * usage: test-snapshot-kill UFFSNAPD WORKLOAD CHECK [ROUNDS]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snap-harness.h"

int main(int argc, char **argv)
{
	struct snap_paths p;
	int i = snap_paths_parse(argc, argv, &p), rounds = i < argc ? atoi(argv[i]) : 20;
	const char *args[] = {"--threads", "4", "--kind", "anon", "--pages", "4096", NULL};
	char image[] = "/tmp/uffsnap-kill-XXXXXX";
	struct wl_proc *w = NULL;
	int fd = mkstemp(image), failed = 0, r;

	close(fd);
	if (getuid() != 0) {
		printf("SKIP: needs root\n");
		return 77;
	}
	srand(time(NULL));
	r = wl_proc_spawn(p.workload, args, &w);
	if (r < 0) {
		fprintf(stderr, "FAIL: cannot start the workload\n");
		return 1;
	}
	for (int n = 0; n < rounds && !failed; n++) {
		/* The moment is random on purpose; nothing is measured. */
		useconds_t delay = rand() % 60000;
		pid_t d = snap_start(&p, w->pid, image, NULL);

		usleep(delay);
		kill(d, SIGKILL);
		r = snap_wait(d);
		if (snap_target_unharmed(w) < 0) {
			fprintf(stderr, "FAIL: round %d, uffsnapd killed after %u us (exit %d)\n", n,
				delay, r);
			failed = 1;
		}
	}
	/* And a snapshot after all that still works and is exact. */
	if (!failed) {
		char layout[64];

		snprintf(layout, sizeof(layout), "%s.layout", image);
		wl_write_file(layout, w->layout_json);
		r = snap_wait(snap_start(&p, w->pid, image, NULL));
		if (r != 0 || wl_run_check(p.check, image, layout) != 0 ||
		    snap_target_unharmed(w) < 0) {
			fprintf(stderr, "FAIL: snapshot after the kills: exit %d\n", r);
			failed = 1;
		}
		unlink(layout);
	}
	wl_proc_free(w);
	unlink(image);
	printf("%d passed, %d failed\n", failed ? 0 : 1, failed);
	return failed;
}
