/* SPDX-License-Identifier: MIT */
/*
 * An output that stalls cannot hold the target. uffsnapd writes to a pipe that nobody reads
 * for 10 s (a slow `ssh`, a FIFO, a client's pipe). Nothing written while the target is held
 * goes to the output (it is queued and written after the release), so once the first bytes
 * are in the pipe the holds are over: for the whole stall the target must never be traced
 * and must keep storing. Then:
 * - drain: the image, read late, is exactly one instant, and the target is unharmed;
 * - or SIGTERM while still stalled: uffsnapd ends at once with status 1 ("interrupted"),
 *   the target released, the image incomplete.
 * The copies of the pages the target writes meanwhile wait in memory for the output: all of
 * them (4 MiB) fit the default bound of 32 MiB, so no write waited (the summary's
 * fault_sink_waits is 0). With "bound", uffsnapd runs with --mem-limit 1 instead: 16 windows
 * of 64 KiB fill it, so the target's writes must wait for the stalled output (it stops storing,
 * still never traced), and the summary counts them; drained late, the image is exact.
 *
 * usage: test-snapshot-stall UFFSNAPD WORKLOAD CHECK drain|sigterm|bound
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "snap-harness.h"
#include "uffsnap/image.h"

#define STALL_SECONDS 10

/* uffsnapd --output - into the pipe's write end; its JSON summary (stderr) into errpath. */
static pid_t start_piped(const struct snap_paths *p, pid_t pid, int wfd, const char *errpath,
			 bool bound)
{
	char pidstr[16];
	pid_t d = fork();

	snprintf(pidstr, sizeof(pidstr), "%d", pid);
	if (d == 0) {
		int err = open(errpath, O_WRONLY | O_TRUNC);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(wfd, STDOUT_FILENO);
		dup2(err, STDERR_FILENO);
		if (bound)
			execl(p->uffsnapd, "uffsnapd", "--pid", pidstr, "--output", "-", "--json",
			      "--mem-limit", "1", (char *)NULL);
		else
			execl(p->uffsnapd, "uffsnapd", "--pid", pidstr, "--output", "-", "--json",
			      (char *)NULL);
		_exit(127);
	}
	return d;
}

/*
 * Waits until the image has begun (so the holds are over: see above) and the pipe holds half
 * its capacity (a pipe is full when its page slots are, often before every byte is used).
 */
static int wait_pipe_full(int rfd, pid_t d)
{
	int cap = fcntl(rfd, F_GETPIPE_SZ), queued = 0;
	struct timespec ms = {0, 1000000};

	for (int i = 0; i < 60000; i++) {
		if (ioctl(rfd, FIONREAD, &queued) == 0 && queued >= cap / 2)
			return 0;
		if (waitpid(d, NULL, WNOHANG) == d)
			return -ECHILD;
		nanosleep(&ms, NULL);
	}
	return -ETIMEDOUT;
}

/* For STALL_SECONDS, with nobody reading: the target is never traced and keeps storing. */
static int stalled_target_runs(struct wl_proc *w)
{
	uint64_t since[64];
	struct timespec tick = {0, 100000000};

	for (int i = 0; i < STALL_SECONDS * 10; i++) {
		long tracer = snap_tracer_of(w->pid);

		if (tracer != 0) {
			fprintf(stderr, "FAIL: the target is traced (%ld) while the output is stalled\n",
				tracer);
			return -1;
		}
		if (i % 10 == 0 && (wl_proc_counters(w, since) < 0 ||
				    wl_proc_wait_stores(w, since, 100) < 0)) {
			fprintf(stderr, "FAIL: the target stopped storing while the output stalled\n");
			return -1;
		}
		nanosleep(&tick, NULL);
	}
	return 0;
}

/*
 * --mem-limit 1: the target must come to wait for the output. Its counters standing still for
 * a second ends the wait (a false "still" on a loaded machine only drains early: the summary's
 * count is what is checked); never traced meanwhile.
 */
static int bounded_target_waits(struct wl_proc *w)
{
	uint64_t before[64], now[64];
	struct timespec tick = {1, 0};
	size_t n = w->layout.nthreads * sizeof(now[0]);

	for (int i = 0; i < 120; i++) {
		long tracer = snap_tracer_of(w->pid);

		if (tracer != 0) {
			fprintf(stderr,
				"FAIL: the target is traced (%ld) while the output is stalled\n",
				tracer);
			return -1;
		}
		if (wl_proc_counters(w, before) < 0)
			return -1;
		nanosleep(&tick, NULL);
		if (wl_proc_counters(w, now) < 0)
			return -1;
		if (!memcmp(before, now, n))
			return 0;
	}
	fprintf(stderr, "FAIL: with --mem-limit 1 the target stores on, 2 minutes into a stalled "
			"output\n");
	return -1;
}

static int drain_to(int rfd, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char buf[65536];
	ssize_t n;

	if (fd < 0)
		return -errno;
	while ((n = read(rfd, buf, sizeof(buf))) > 0)
		if (write(fd, buf, n) != n)
			break;
	close(fd);
	return n == 0 ? 0 : -EIO;
}

static int run(const struct snap_paths *p, struct wl_proc *w, const char *mode, const char *image)
{
	bool sigterm = !strcmp(mode, "sigterm"), bound = !strcmp(mode, "bound");
	uint64_t waits;
	char errpath[80], layout[80];
	int pfd[2], status, rc = -1;
	pid_t d;

	snprintf(errpath, sizeof(errpath), "%s.json", image);
	snprintf(layout, sizeof(layout), "%s.layout", image);
	close(open(errpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	wl_write_file(layout, w->layout_json);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		goto out;
	d = start_piped(p, w->pid, pfd[1], errpath, bound);
	close(pfd[1]);
	if (wait_pipe_full(pfd[0], d) < 0) {
		fprintf(stderr, "FAIL: uffsnapd never filled the pipe\n");
		goto out;
	}
	if ((bound ? bounded_target_waits(w) : stalled_target_runs(w)) < 0)
		goto out;
	if (sigterm)
		kill(d, SIGTERM);
	else if (drain_to(pfd[0], image) < 0)
		goto out;
	status = snap_wait(d);
	if (sigterm) {
		if (status != 1 || !snap_file_has(errpath, "interrupted by SIGTERM")) {
			fprintf(stderr, "FAIL: uffsnapd exit %d after SIGTERM with its output stalled\n",
				status);
			goto out;
		}
		if (snap_target_released(w->pid) < 0 || drain_to(pfd[0], image) < 0 ||
		    snap_image_complete(image)) {
			fprintf(stderr, "FAIL: not released, or the image says complete\n");
			goto out;
		}
	} else if (status != 0 || wl_run_check(p->check, image, layout) != 0) {
		fprintf(stderr, "FAIL: exit %d, or the image drained late is not one instant\n",
			status);
		goto out;
	} else if (((waits = snap_json_stat(errpath, "fault_sink_waits")) != 0) != bound) {
		fprintf(stderr, "FAIL: %" PRIu64 " write faults waited for the output (%s)\n",
			waits,
			bound ? "--mem-limit 1: some must" : "all fit the default bound: none may");
		goto out;
	}
	if (snap_target_unharmed(w) < 0)
		goto out;
	rc = 0;
out:
	close(pfd[0]);
	unlink(errpath);
	unlink(layout);
	return rc;
}

int main(int argc, char **argv)
{
	struct snap_paths p;
	int i = snap_paths_parse(argc, argv, &p), r;
	const char *args[] = {"--threads", "4", "--kind", "anon", "--pages", "1024", NULL};
	char image[] = "/tmp/uffsnap-stall-XXXXXX";
	struct wl_proc *w = NULL;

	if (i >= argc ||
	    (strcmp(argv[i], "drain") && strcmp(argv[i], "sigterm") && strcmp(argv[i], "bound"))) {
		fprintf(stderr, "usage: %s UFFSNAPD WORKLOAD CHECK drain|sigterm|bound\n", argv[0]);
		return 2;
	}
	if (getuid() != 0) {
		printf("SKIP: needs root\n");
		return 77;
	}
	close(mkstemp(image));
	if (wl_proc_spawn(p.workload, args, &w) < 0) {
		fprintf(stderr, "FAIL: cannot start the workload\n");
		return 1;
	}
	r = run(&p, w, argv[i], image);
	wl_proc_free(w);
	unlink(image);
	printf("%s: %s\n", argv[i], r == 0 ? "ok" : "failed");
	printf("%d passed, %d failed\n", r == 0, r != 0);
	return r == 0 ? 0 : 1;
}
