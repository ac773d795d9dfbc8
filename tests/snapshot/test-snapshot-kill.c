/* SPDX-License-Identifier: MIT */
/*
 * uffsnapd's whole process group signalled at chosen and random moments of a snapshot, as a
 * terminal's Ctrl-C (SIGINT), a hang-up (SIGHUP), `kill -PGID` or `kill -9 -PGID` does: the
 * target must continue with correct memory every time, and nothing may stay traced.
 * - SIGKILL: uffsnapd dies; its holder child (in a session of its own) sees the socket close,
 *   finishes or undoes what it was doing and releases the target; the kernel drops all
 *   protection with the last reference to the userfaultfd.
 * - SIGINT, SIGTERM, SIGHUP, SIGQUIT: the snapshot ends as on any failure: exit status 1 and
 *   one line saying it was interrupted (or 0, if it had completed first). Each is sent twice:
 *   a second Ctrl-C changes nothing.
 * Every round records the phase the signal hit: the first hold, the final hold (both seen as
 * the target being traced), running armed (untraced, uffsnapd alive) or done. One round in
 * three waits for the first hold and one for the final hold, so that the holds are hit for
 * certain, not by chance; the rest are random moments.
 *
 * OPTION is one more option for uffsnapd. With --precopy, the snapshots are pre-copy ones:
 * between the holds the rounds run (the phase "running armed"), the target registered with an
 * asynchronous userfaultfd. With --copy-threads=3, "running armed" is three copier threads.
 *
 * usage: test-snapshot-kill UFFSNAPD WORKLOAD CHECK SIGNAL ROUNDS [OPTION]
 *        (SIGNAL: KILL, INT, ...)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "snap-harness.h"
#include "test-proc.h"

static const char *option; /* one more for uffsnapd, or NULL */

enum phase { PH_FIRST_HOLD, PH_FINAL_HOLD, PH_RUNNING, PH_DONE, PH_N };
static const char *const phase_names[PH_N] = {"first hold", "final hold", "running armed",
					      "done"};

/* uffsnapd in a process group of its own (which the signal goes to), stderr to errpath. */
static pid_t start_group(const struct snap_paths *p, pid_t pid, const char *image,
			 const char *errpath)
{
	char pidstr[16];
	pid_t d;

	snprintf(pidstr, sizeof(pidstr), "%d", pid);
	d = fork();
	if (d == 0) {
		int null = open("/dev/null", O_WRONLY), err = open(errpath, O_WRONLY | O_TRUNC);

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a test killed on a timeout */
		dup2(null, STDOUT_FILENO);
		dup2(err, STDERR_FILENO);
		execl(p->uffsnapd, "uffsnapd", "--pid", pidstr, "--output", image, "--force",
		      "--json", option, (char *)NULL);
		_exit(127);
	}
	if (d > 0)
		setpgid(d, d); /* also here: the signal may go before the child ran setpgid */
	return d;
}

static bool daemon_alive(pid_t d)
{
	int state = test_proc_state(d, "stat");

	return state >= 0 && state != '?' && state != 'Z' && state != 'X';
}

/*
 * Until uffsnapd has blocked the signals it handles (its first act, long before it touches
 * the target), a signal kills it the default way: harmless, and not what is tested here.
 */
static void wait_signals_blocked(pid_t d, int sig)
{
	char v[32] = "0";

	while (!(strtoull(v, NULL, 16) & (1ull << (sig - 1))) && daemon_alive(d))
		test_proc_field(d, "status", "SigBlk", v, sizeof(v));
}

/* Polls until the target is traced (held) for the n-th time: true; false if uffsnapd ended. */
static bool wait_hold(pid_t target, pid_t d, int n)
{
	bool traced = false;

	while (daemon_alive(d)) {
		bool now = snap_tracer_of(target) > 0;

		if (now && !traced && --n == 0)
			return true;
		traced = now;
	}
	return false;
}

static enum phase phase_now(pid_t target, pid_t d, bool *ever_traced)
{
	if (!daemon_alive(d))
		return PH_DONE;
	if (snap_tracer_of(target) > 0)
		return *ever_traced ? PH_FINAL_HOLD : PH_FIRST_HOLD;
	return PH_RUNNING;
}

/* Did uffsnapd end as it must after sig at that phase? */
static bool ended_right(int sig, int status, enum phase ph, const char *errpath)
{
	if (sig == SIGKILL)
		return status == 128 + SIGKILL || (ph == PH_DONE && status == 0);
	if (status == 0) /* it completed before the signal came */
		return true;
	return status == 1 && snap_file_has(errpath, "interrupted by SIG");
}

static int one_round(const struct snap_paths *p, struct wl_proc *w, int sig, int n,
		     const char *image, const char *errpath, int hits[PH_N])
{
	pid_t d = start_group(p, w->pid, image, errpath);
	bool ever = false;
	enum phase ph;
	int status;

	if (sig != SIGKILL)
		wait_signals_blocked(d, sig);
	if (n % 3 == 0) {
		ph = wait_hold(w->pid, d, 1) ? PH_FIRST_HOLD : PH_DONE;
	} else if (n % 3 == 1) {
		ph = wait_hold(w->pid, d, 2) ? PH_FINAL_HOLD : PH_DONE;
	} else {
		usleep(rand() % 60000); /* a random moment; nothing is measured */
		ph = phase_now(w->pid, d, &ever);
	}
	kill(-d, sig);
	if (sig != SIGKILL)
		kill(-d, sig); /* a second Ctrl-C changes nothing */
	status = snap_wait(d);
	hits[ph]++;
	printf("round %d: SIG%s during %s: exit %d\n", n, sigabbrev_np(sig), phase_names[ph],
	       status);
	if (!ended_right(sig, status, ph, errpath)) {
		fprintf(stderr, "FAIL: round %d: uffsnapd exit %d after SIG%s during %s\n", n,
			status, sigabbrev_np(sig), phase_names[ph]);
		return -1;
	}
	if (snap_target_unharmed(w) < 0) {
		fprintf(stderr, "FAIL: round %d: target harmed by SIG%s during %s\n", n,
			sigabbrev_np(sig), phase_names[ph]);
		return -1;
	}
	return 0;
}

static int parse_signal(const char *name)
{
	for (int s = 1; s < 32; s++)
		if (sigabbrev_np(s) && !strcmp(sigabbrev_np(s), name))
			return s;
	return -EINVAL;
}

/* And a snapshot after all that still works and is exact. */
static int final_snapshot(const struct snap_paths *p, struct wl_proc *w, const char *image)
{
	char layout[64];
	int r;

	snprintf(layout, sizeof(layout), "%s.layout", image);
	wl_write_file(layout, w->layout_json);
	r = snap_wait(snap_start(p, w->pid, image, NULL));
	if (r == 0)
		r = wl_run_check(p->check, image, layout);
	if (r == 0)
		r = snap_target_unharmed(w);
	unlink(layout);
	if (r != 0)
		fprintf(stderr, "FAIL: snapshot after the signals: %d\n", r);
	return r;
}

int main(int argc, char **argv)
{
	struct snap_paths p;
	int i = snap_paths_parse(argc, argv, &p), failed = 0, hits[PH_N] = {0}, sig, rounds;
	const char *args[] = {"--threads", "4", "--kind", "anon", "--pages", "4096", NULL};
	char image[] = "/tmp/uffsnap-kill-XXXXXX", errpath[64];
	struct wl_proc *w = NULL;
	int fd = mkstemp(image);

	close(fd);
	option = i + 3 == argc && !strncmp(argv[i + 2], "--", 2) ? argv[i + 2] : NULL;
	if (i + 1 >= argc || (i + 2 != argc && !option) || (sig = parse_signal(argv[i])) < 0 ||
	    (rounds = atoi(argv[i + 1])) < 3) {
		fprintf(stderr, "usage: %s UFFSNAPD WORKLOAD CHECK SIGNAL ROUNDS (>= 3) [OPTION]\n",
			argv[0]);
		return 2;
	}
	if (getuid() != 0) {
		printf("SKIP: needs root\n");
		return 77;
	}
	snprintf(errpath, sizeof(errpath), "%s.err", image);
	close(open(errpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	srand(time(NULL));
	if (wl_proc_spawn(p.workload, args, &w) < 0) {
		fprintf(stderr, "FAIL: cannot start the workload\n");
		return 1;
	}
	for (int n = 0; n < rounds && !failed; n++)
		failed = one_round(&p, w, sig, n, image, errpath, hits) < 0;
	if (!failed)
		failed = final_snapshot(&p, w, image) != 0;
	printf("SIG%s hit: first hold %d, final hold %d, running armed %d, done %d\n",
	       sigabbrev_np(sig), hits[PH_FIRST_HOLD], hits[PH_FINAL_HOLD], hits[PH_RUNNING],
	       hits[PH_DONE]);
	if (!failed && !hits[PH_FIRST_HOLD]) {
		fprintf(stderr, "FAIL: no round hit a hold: the test did not test what it claims\n");
		failed = 1;
	}
	wl_proc_free(w);
	unlink(image);
	unlink(errpath);
	snprintf(errpath, sizeof(errpath), "%s.json", image);
	unlink(errpath);
	printf("%d passed, %d failed\n", failed ? 0 : 1, failed);
	return failed;
}
