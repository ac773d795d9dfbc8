/* SPDX-License-Identifier: MIT */
/*
 * The daemon is no way around the kernel's rules. Scenarios (argv after the paths):
 *   perm   a client running as nobody may not snapshot a root process (PermissionDenied),
 *          may snapshot its own (nobody's) process, and neither sees nor cancels root's job
 *   names  'file' names that leave the snapshot directory or hide in it are refused with
 *          InvalidParameter and create nothing; a planted symlink is not followed; an
 *          existing file is never overwritten
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap-harness.h"
#include "svc-harness.h"
#include "test-check.h"

/* In a child running as nobody: the checks on a root target and a nobody target. */
static int as_nobody(struct svc_daemon *d, pid_t root_pid, pid_t nobody_pid, long long root_job)
{
	struct svc_conn *c = NULL;
	json_t *r = NULL, *e = NULL;
	long long id;
	int rc = -1;

	CHECK(svc_connect(d->sock, &c) >= 0, "nobody connects");
	r = svc_call(c, "snapshot", json_pack("{s:i, s:s}", "pid", root_pid, "file", "r.img"), -1);
	CHECK(!strcmp(svc_class(r), "PermissionDenied"), "nobody -> root's pid: %s", svc_class(r));
	printf("nobody -> root: %s\n",
	       json_string_value(json_object_get(json_object_get(r, "error"), "desc")));
	json_decref(r);
	r = svc_call(c, "query-jobs", NULL, -1);
	CHECK(json_array_size(json_object_get(r, "return")) == 0, "nobody sees root's job");
	json_decref(r);
	r = svc_call(c, "cancel", json_pack("{s:I}", "id", root_job), -1);
	CHECK(!strcmp(svc_class(r), "NotFound"), "nobody cancels root's job: %s", svc_class(r));
	id = svc_snapshot(c, nobody_pid, "file", "nobody.img");
	CHECK(id > 0, "nobody snapshots its own process");
	e = svc_wait_event(c, "JOB_COMPLETED", id);
	CHECK(e, "nobody's job completed");
	rc = 0;
fail:
	json_decref(r);
	json_decref(e);
	svc_conn_free(c);
	return rc;
}

struct nobody_args {
	struct svc_daemon *d;
	pid_t root_pid, nobody_pid;
	long long job;
};

static int nobody_main(void *ctx)
{
	struct nobody_args *a = ctx;

	return as_nobody(a->d, a->root_pid, a->nobody_pid, a->job);
}

static int run_as_nobody(struct svc_daemon *d, pid_t root_pid, pid_t nobody_pid, long long job)
{
	struct nobody_args a = {d, root_pid, nobody_pid, job};

	return svc_wait_child(svc_fork_nobody(nobody_main, &a));
}

static int perm(const struct svc_paths *p, struct svc_daemon *d)
{
	static const char *const root_args[] = {"--threads", "1", NULL};
	static const char *const nobody_args[] = {"--threads", "1", "--as-user", "nobody", NULL};
	char lay1[256], lay2[256], img[256];
	struct wl_proc *wr = NULL, *wn = NULL;
	struct svc_conn *c = NULL;
	int pfd[2] = {-1, -1}, rc = -1;
	char head[4096];
	json_t *r = NULL;
	long long id;

	snprintf(lay1, sizeof(lay1), "%s/root.layout", d->dir);
	snprintf(lay2, sizeof(lay2), "%s/nobody.layout", d->dir);
	snprintf(img, sizeof(img), "%s/nobody.img", d->snapdir);
	/* nobody must reach the socket: the test directory and the socket itself */
	CHECK(chmod(d->dir, 0755) == 0 && chmod(d->sock, 0666) == 0, "chmod");
	CHECK(svc_workload(p, root_args, lay1, &wr) >= 0, "root workload");
	CHECK(svc_workload(p, nobody_args, lay2, &wn) >= 0, "nobody workload");
	CHECK(chmod(lay2, 0644) == 0, "chmod layout");
	/* A job of root's, held on a pipe, that nobody must not see or cancel. */
	CHECK(svc_connect(d->sock, &c) >= 0, "root connects");
	CHECK(pipe2(pfd, O_CLOEXEC) == 0, "pipe");
	r = svc_call(c, "getfd", json_pack("{s:s}", "fdname", "p"), pfd[1]);
	close(pfd[1]);
	id = svc_snapshot(c, wr->pid, "fd", "p");
	CHECK(id > 0 && read(pfd[0], head, sizeof(head)) > 0, "root's job runs");
	CHECK(run_as_nobody(d, wr->pid, wn->pid, id) == 0, "checks as nobody");
	CHECK(wl_run_check(p->check, img, lay2) == 0, "nobody's image is one instant");
	CHECK(svc_drain(pfd[0], NULL) > 0, "drain root's job");
	json_decref(r);
	r = svc_wait_event(c, "JOB_COMPLETED", id);
	CHECK(r, "root's job completed");
	CHECK(snap_target_unharmed(wr) == 0 && snap_target_unharmed(wn) == 0, "targets harmed");
	printf("ok: PermissionDenied for nobody -> root; nobody -> nobody works; jobs private\n");
	rc = 0;
fail:
	if (pfd[0] >= 0)
		close(pfd[0]);
	json_decref(r);
	svc_conn_free(c);
	wl_proc_free(wr);
	wl_proc_free(wn);
	return rc;
}

/* Nothing but what the test made may exist in dir (and its parent). */
static int names(const struct svc_paths *p, struct svc_daemon *d)
{
	static const char *const bad[] = {
	    "../../etc/x", "../x",	  "..",	  ".",		 ".hidden", "",
	    "a/b",	   "/etc/passwd", "x\ny", "caf\xc3\xa9", "sp ace",  "x\\y",
	};
	static const char *const args[] = {"--threads", "1", NULL};
	char longname[300], link[256], victim[256], exists[256];
	struct wl_proc *w = NULL;
	struct svc_conn *c = NULL;
	json_t *r = NULL;
	struct stat st;
	int rc = -1;

	snprintf(link, sizeof(link), "%s/link.img", d->snapdir);
	snprintf(victim, sizeof(victim), "%s/victim", d->dir);
	snprintf(exists, sizeof(exists), "%s/exists.img", d->snapdir);
	memset(longname, 'a', 256);
	longname[256] = '\0';
	CHECK(wl_proc_spawn(p->workload, args, &w) >= 0, "workload");
	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	for (size_t i = 0; i <= sizeof(bad) / sizeof(bad[0]); i++) {
		const char *name = i < sizeof(bad) / sizeof(bad[0]) ? bad[i] : longname;

		r = svc_call(c, "snapshot", json_pack("{s:i, s:s}", "pid", w->pid, "file", name),
			     -1);
		CHECK(!strcmp(svc_class(r), "InvalidParameter"), "file '%.40s': %s", name,
		      svc_class(r));
		json_decref(r);
		r = NULL;
	}
	CHECK(access("/etc/x", F_OK) < 0, "/etc/x was created");
	CHECK(symlink(victim, link) == 0, "plant a symlink");
	CHECK(wl_write_file(exists, "keep") == 0, "an existing file");
	r = svc_call(c, "snapshot", json_pack("{s:i, s:s}", "pid", w->pid, "file", "link.img"), -1);
	CHECK(!strcmp(svc_class(r), "InvalidParameter"), "symlink: %s", svc_class(r));
	CHECK(lstat(victim, &st) < 0, "the symlink's target was created");
	json_decref(r);
	r = svc_call(c, "snapshot", json_pack("{s:i, s:s}", "pid", w->pid, "file", "exists.img"),
		     -1);
	CHECK(!strcmp(svc_class(r), "InvalidParameter"), "existing file: %s", svc_class(r));
	CHECK(stat(exists, &st) == 0 && st.st_size == 4, "the existing file was changed");
	CHECK(snap_target_unharmed(w) == 0, "target harmed");
	printf("ok: bad names refused, symlink not followed, nothing overwritten\n");
	rc = 0;
fail:
	json_decref(r);
	svc_conn_free(c);
	wl_proc_free(w);
	return rc;
}

int main(int argc, char **argv)
{
	struct svc_paths p;
	int i = svc_paths_parse(argc, argv, &p), r = -1, st;
	const char *what = i < argc ? argv[i] : "";
	struct svc_daemon d = {0};

	if (getuid() != 0) {
		printf("SKIP: needs root (switches to nobody; the daemon ptraces)\n");
		return 77;
	}
	if (svc_daemon_start(&p, NULL, &d) < 0) {
		printf("FAIL: cannot start uffsnapd --service\n");
		svc_daemon_stop(&d);
		return 1;
	}
	if (!strcmp(what, "perm"))
		r = perm(&p, &d);
	else if (!strcmp(what, "names"))
		r = names(&p, &d);
	else
		fprintf(stderr, "unknown scenario '%s'\n", what);
	st = svc_daemon_stop(&d);
	if (st != 0)
		printf("FAIL: uffsnapd exited %d on SIGTERM (want 0)\n", st);
	return r == 0 && st == 0 ? 0 : 1;
}
