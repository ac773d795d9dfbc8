/* SPDX-License-Identifier: MIT */
/*
 * How often does killing uffsnapd harm its target? uffsnapd snapshots a multi-threaded
 * writer and is killed with SIGKILL at a random moment 0-45 ms in, ROUNDS times:
 * - pgid:   kill -9 -PGID, as a terminal's session or a script's `kill -9 -$pid` does;
 * - cgroup: every process of uffsnapd at once, its holder child included (cgroup.kill of a
 *           cgroup made for it), as systemd's final SIGKILL or the OOM killer of a cgroup do.
 * The moment is random either from uffsnapd's start (0-45 ms: most fall outside the holds),
 * or (`hold`) 0-5 ms after the first hold began, seen as the target being traced: that
 * samples the window in which the holder injects system calls into the target.
 * A round harms the target if the target dies or its own full self-check fails afterwards;
 * then it is started again. Prints the harm rate and, per phase hit (the target traced: a
 * hold; else running), the rounds and harms.
 *
 * usage: bench-harm UFFSNAPD WORKLOAD pgid|cgroup ROUNDS [start|hold]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "snap-harness.h"

#define CGROUP_ROOT "/sys/fs/cgroup/unified"
#ifndef CGROUP_ROOT_FALLBACK
#define CGROUP_ROOT_FALLBACK "/sys/fs/cgroup"
#endif

static char cg[256];

static int write_str(const char *dir, const char *file, const char *s)
{
	char path[320];
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int cgroup_make(void)
{
	const char *roots[] = {CGROUP_ROOT, CGROUP_ROOT_FALLBACK};

	for (int i = 0; i < 2; i++) {
		char probe[300];

		snprintf(cg, sizeof(cg), "%s/uffsnap-bench-harm-%d", roots[i], getpid());
		snprintf(probe, sizeof(probe), "%s/cgroup.kill", cg);
		if (mkdir(cg, 0755) == 0 && access(probe, W_OK) == 0)
			return 0;
		rmdir(cg);
	}
	return -ENOTSUP;
}

/* uffsnapd in a process group of its own and, for cgroup mode, in the bench's cgroup. */
static pid_t start(const char *uffsnapd, pid_t target, bool in_cgroup)
{
	char pidstr[16], self[16];
	int go[2];
	pid_t d;

	if (pipe2(go, O_CLOEXEC) < 0)
		return -1;
	snprintf(pidstr, sizeof(pidstr), "%d", target);
	d = fork();
	if (d == 0) {
		int null = open("/dev/null", O_WRONLY);
		char c;

		setpgid(0, 0);
		close(go[1]);
		if (read(go[0], &c, 1) != 1) /* until the parent moved us into the cgroup */
			_exit(126);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execl(uffsnapd, "uffsnapd", "--pid", pidstr, "--output", "/dev/null", "--force", "--quiet",
		      (char *)NULL);
		_exit(127);
	}
	close(go[0]);
	setpgid(d, d);
	snprintf(self, sizeof(self), "%d", d);
	if (in_cgroup)
		write_str(cg, "cgroup.procs", self);
	if (write(go[1], "g", 1) != 1)
		d = -1;
	close(go[1]);
	return d;
}

/* Waits until no process is left in the cgroup (the holder may outlive uffsnapd). */
static void cgroup_wait_empty(void)
{
	char path[300], buf[64];
	struct timespec ms = {0, 1000000};

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	for (;;) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : 0;

		if (fd >= 0)
			close(fd);
		if (n <= 0)
			return;
		nanosleep(&ms, NULL);
	}
}

int main(int argc, char **argv)
{
	const char *args[] = {"--threads", "4", "--kind", "anon", "--pages", "4096", NULL};
	int rounds, harmed = 0, hits[2] = {0}, harms[2] = {0};
	struct wl_proc *w = NULL;
	bool cgroup, at_hold = argc == 6 && !strcmp(argv[5], "hold");

	if (argc < 5 || argc > 6 || (strcmp(argv[3], "pgid") && strcmp(argv[3], "cgroup")) ||
	    (rounds = atoi(argv[4])) < 1) {
		fprintf(stderr, "usage: %s UFFSNAPD WORKLOAD pgid|cgroup ROUNDS [start|hold]\n",
			argv[0]);
		return 2;
	}
	cgroup = !strcmp(argv[3], "cgroup");
	if (cgroup && cgroup_make() < 0) {
		fprintf(stderr, "bench-harm: no cgroup v2 with cgroup.kill here\n");
		return 77;
	}
	srand(time(NULL) ^ getpid());
	for (int n = 0; n < rounds; n++) {
		pid_t d;
		int traced;

		if (!w && wl_proc_spawn(argv[2], args, &w) < 0)
			return fprintf(stderr, "bench-harm: cannot start the workload\n"), 1;
		d = start(argv[1], w->pid, cgroup);
		if (at_hold) {
			while (snap_tracer_of(w->pid) <= 0 && waitpid(d, NULL, WNOHANG) == 0)
				;
			usleep(rand() % 5000);
		} else {
			usleep(rand() % 45000);
		}
		traced = snap_tracer_of(w->pid) > 0;
		if (cgroup)
			write_str(cg, "cgroup.kill", "1");
		else
			kill(-d, SIGKILL);
		snap_wait(d);
		if (cgroup)
			cgroup_wait_empty();
		hits[traced]++;
		if (snap_target_unharmed(w) < 0) {
			harmed++;
			harms[traced]++;
			kill(w->pid, SIGKILL);
			wl_proc_free(w);
			w = NULL;
		}
	}
	wl_proc_free(w);
	if (cgroup)
		rmdir(cg);
	printf("{\"mode\": \"%s\", \"moment\": \"%s\", \"rounds\": %d, \"harmed\": %d, \"rate\": %.4f, "
	       "\"held_rounds\": %d, \"held_harmed\": %d, \"running_rounds\": %d, "
	       "\"running_harmed\": %d}\n",
	       argv[3], at_hold ? "hold" : "start", rounds, harmed, (double)harmed / rounds, hits[1], harms[1], hits[0],
	       harms[0]);
	return 0;
}
