/* SPDX-License-Identifier: MIT */
/*
 * The authorized pid is the attached pid. A job is authorized for a victim; before the job
 * attaches (paused by the test build of uffsnapd, UFFSNAPD_TEST_PAUSE=start:DIR), the victim
 * exits and an impostor is given its pid (ns_last_pid, in a pid namespace of the test's own,
 * where nothing else takes pids). The job must fail saying so, and the impostor must be
 * untouched: never traced, never interrupted (its epoll_wait() would return EINTR: a ptrace
 * interrupt makes it), its fd table as it was (no userfaultfd injected).
 *
 * usage: test-svc-pidreuse UFFSNAPD-TEST WORKLOAD CHECK
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap-harness.h"
#include "svc-harness.h"
#include "test-check.h"
#include "test-proc.h"

/* A process blocked in epoll_wait() on in, once it says 'r' (ready) on out: when in is
 * readable it writes to out whether the wait was ever interrupted ('i') or not ('k'). */
static pid_t impostor_start(int in, int out)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct epoll_event ev = {.events = EPOLLIN}, got;
		int ep = epoll_create1(EPOLL_CLOEXEC), n;
		char c = 'k';

		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev) < 0 || write(out, "r", 1) != 1)
			_exit(1);
		while ((n = epoll_wait(ep, &got, 1, -1)) != 1)
			if (n < 0 && errno == EINTR)
				c = 'i';
		_exit(write(out, &c, 1) == 1 ? 0 : 1);
	}
	return pid;
}

static int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	test_proc_path(path, sizeof(path), pid, "fd");
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The next process forked gets pid (nothing else forks in this pid namespace). */
static int next_pid_is(pid_t pid)
{
	FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "we");
	int r;

	if (!f)
		return -errno;
	r = fprintf(f, "%d", pid - 1) > 0 ? 0 : -EIO;
	return fclose(f) < 0 ? -errno : r;
}

/* The job is authorized for victim and paused; the impostor takes the victim's pid. */
static pid_t swap_in_impostor(pid_t victim, int victim_go, int in, int out, int ready)
{
	pid_t imp;
	char c = 0;

	if (write(victim_go, "x", 1) != 1 || waitpid(victim, NULL, 0) != victim) /* pid freed */
		return -1;
	if (next_pid_is(victim) < 0)
		return -1;
	imp = impostor_start(in, out);
	if (imp > 0 && (read(ready, &c, 1) != 1 || c != 'r'))
		printf("FAIL: the impostor did not start\n");
	else if (imp != victim)
		printf("FAIL: the impostor got pid %d, not the victim's %d\n", imp, victim);
	return imp;
}

static int run(const struct svc_paths *p, const char *pausedir)
{
	int vgo[2], iin[2], iout[2], fds = -1, rc = -1;
	struct svc_daemon d = {0};
	struct svc_conn *c = NULL;
	json_t *e = NULL;
	pid_t victim = -1, imp = -1;
	const char *desc, *class;
	char reply = 0;
	long long id;

	CHECK(pipe2(vgo, O_CLOEXEC) == 0 && pipe2(iin, O_CLOEXEC) == 0 &&
		  pipe2(iout, O_CLOEXEC) == 0,
	      "pipes");
	CHECK(svc_daemon_start(p, NULL, &d) >= 0, "uffsnapd-test --service starts");
	victim = fork();
	if (victim == 0) {
		char x;

		_exit(read(vgo[0], &x, 1) == 1 ? 0 : 1);
	}
	CHECK(victim > 0, "fork the victim");
	CHECK(svc_connect(d.sock, &c) >= 0, "connect");
	id = svc_snapshot(c, victim, "file", "v.img");
	CHECK(id > 0, "the job for the victim is authorized");
	CHECK(snap_pause_wait(pausedir, "start") == 0, "the job pauses before it attaches");
	imp = swap_in_impostor(victim, vgo[1], iin[0], iout[1], iout[0]);
	CHECK(imp == victim, "the impostor has the victim's pid");
	fds = count_fds(imp);
	snap_pause_go(pausedir);
	e = svc_wait_event(c, "JOB_FAILED", id);
	CHECK(e, "the job fails");
	desc = json_string_value(json_object_get(json_object_get(e, "data"), "desc")) ?: "";
	class = json_string_value(json_object_get(json_object_get(e, "data"), "class")) ?: "";
	printf("JOB_FAILED: %s: %s\n", class, desc);
	CHECK(!strcmp(class, "TargetError") && strstr(desc, "not the process that was authorized"),
	      "the job says the pid was reused");
	CHECK(snap_tracer_of(imp) == 0, "the impostor is not traced");
	CHECK(count_fds(imp) == fds, "the impostor's fd table changed (%d fds, was %d)",
	      count_fds(imp), fds);
	CHECK(write(iin[1], "x", 1) == 1 && read(iout[0], &reply, 1) == 1, "ask the impostor");
	CHECK(reply == 'k', "the impostor's epoll_wait() was interrupted: it was attached to");
	CHECK(waitpid(imp, NULL, 0) == imp, "the impostor ends as it should");
	imp = -1;
	printf("ok: a job whose pid was reused before it attached fails; the other process is "
	       "untouched\n");
	rc = 0;
fail:
	if (imp > 0)
		kill(imp, SIGKILL);
	json_decref(e);
	svc_conn_free(c);
	if (svc_daemon_stop(&d) != 0)
		rc = -1;
	return rc;
}

/* Pid 1 of a new pid namespace, with its own /proc: the daemon, victim and impostor live here. */
static int in_namespace(const struct svc_paths *p)
{
	char dir[] = "/tmp/uffsnap-pidreuse-XXXXXX", spec[64];
	int rc;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return printf("FAIL: cannot mount /proc in the new namespaces: %m\n"), 1;
	if (!mkdtemp(dir))
		return 1;
	snprintf(spec, sizeof(spec), "start:%s", dir);
	setenv("UFFSNAPD_TEST_PAUSE", spec, 1);
	rc = run(p, dir) == 0 ? 0 : 1;
	snap_pause_clean(dir, "start");
	return rc;
}

int main(int argc, char **argv)
{
	struct svc_paths p;
	pid_t init;
	int st;

	svc_paths_parse(argc, argv, &p);
	if (getuid() != 0) {
		printf("SKIP: needs root (pid and mount namespaces, ns_last_pid, ptrace)\n");
		return 77;
	}
	if (unshare(CLONE_NEWPID | CLONE_NEWNS) < 0) {
		printf("SKIP: cannot create pid and mount namespaces: %m\n");
		return 77;
	}
	init = fork();
	if (init == 0)
		exit(in_namespace(&p));
	if (init < 0 || waitpid(init, &st, 0) != init)
		st = 1 << 8;
	/* Not exit(): with the namespace's init gone this process can create no child any more
	 * (fork() fails with ENOMEM), and LeakSanitizer's check at exit needs one. */
	fflush(stdout);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}
