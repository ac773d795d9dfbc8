/* SPDX-License-Identifier: MIT */
/*
 * Snapshot jobs through the real control socket of a real `uffsnapd --service`, on the
 * predictable-store workload. Scenarios (argv after the paths):
 *   concurrent   two jobs at once, one to a passed fd, one to a file: both images are one
 *                instant (uffsnap-check), both targets unharmed
 *   cancel       a job held mid-way (its output is a pipe nobody reads yet) is cancelled:
 *                JOB_CANCELLED, the image is incomplete, the target unharmed
 *   target-exit  the target is killed mid-job: JOB_FAILED, TargetError, says it exited
 *   busy         a second job on the same pid -> Busy; over --max-jobs -> LimitExceeded
 *   quit         'quit' (--allow-quit) with a job held mid-way: {}, JOB_CANCELLED, exit 0,
 *                target unharmed; without --allow-quit it is PermissionDenied (see clients)
 *   sigterm      the same through SIGTERM
 *   spawner      the daemon's holder spawner (target/spawner.h) is SIGKILLed: the next job
 *                starts another and completes, its image one instant, the target unharmed
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap-harness.h"
#include "svc-harness.h"
#include "test-check.h"
#include "uffsnap/image.h"

static const char *const wl_args[] = {"--threads", "2", "--pages", "256", NULL};

/* The image at path is complete and one instant of w; w is unharmed. */
static int image_ok(const struct svc_paths *p, struct wl_proc *w, const char *image,
		    const char *layout)
{
	int r = wl_run_check(p->check, image, layout);

	CHECK(r == 0, "uffsnap-check on %s exited %d", image, r);
	CHECK(snap_target_unharmed(w) == 0, "target %d harmed", w->pid);
	return 0;
fail:
	return -1;
}

static bool completed(struct svc_conn *c, long long id)
{
	json_t *e = svc_wait_event(c, "JOB_COMPLETED", id), *q;
	bool ok = e && json_object_get(json_object_get(e, "data"), "stats");

	json_decref(e);
	q = svc_call(c, "query-job", json_pack("{s:I}", "id", id), -1);
	ok = ok && !strcmp(json_string_value(json_object_get(json_object_get(q, "return"), "state"))
			       ?: "",
			   "completed");
	json_decref(q);
	return ok;
}

static int concurrent(const struct svc_paths *p, struct svc_daemon *d)
{
	char img1[256], img2[256], lay1[256], lay2[256];
	struct wl_proc *w1 = NULL, *w2 = NULL;
	struct svc_conn *c = NULL;
	long long j1, j2;
	json_t *r = NULL;
	int fd = -1, rc = -1;

	snprintf(img1, sizeof(img1), "%s/by-fd.img", d->dir);
	snprintf(img2, sizeof(img2), "%s/by-name.img", d->snapdir);
	snprintf(lay1, sizeof(lay1), "%s/w1.layout", d->dir);
	snprintf(lay2, sizeof(lay2), "%s/w2.layout", d->dir);
	CHECK(svc_workload(p, wl_args, lay1, &w1) >= 0, "workload 1");
	CHECK(svc_workload(p, wl_args, lay2, &w2) >= 0, "workload 2");
	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	fd = open(img1, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "create %s", img1);
	r = svc_call(c, "getfd", json_pack("{s:s}", "fdname", "out"), fd);
	CHECK(!strcmp(svc_class(r), ""), "getfd: %s", svc_class(r));
	close(fd);
	fd = -1;
	j1 = svc_snapshot(c, w1->pid, "fd", "out");
	j2 = svc_snapshot(c, w2->pid, "file", "by-name.img");
	CHECK(j1 > 0 && j2 > 0, "two jobs started");
	CHECK(completed(c, j1), "job %lld (fd) completed", j1);
	CHECK(completed(c, j2), "job %lld (file) completed", j2);
	CHECK(image_ok(p, w1, img1, lay1) == 0, "image by fd");
	CHECK(image_ok(p, w2, img2, lay2) == 0, "image by name");
	json_decref(r);
	r = svc_call(c, "query-status", NULL, -1);
	CHECK(!strcmp(svc_class(r), ""), "query-status answers");
	printf("ok: two concurrent jobs (fd and file) complete, images consistent\n");
	rc = 0;
fail:
	if (fd >= 0)
		close(fd);
	json_decref(r);
	svc_conn_free(c);
	wl_proc_free(w1);
	wl_proc_free(w2);
	return rc;
}

static int cancel(const struct svc_paths *p, struct svc_daemon *d)
{
	static const char *const big[] = {"--threads", "2", "--pages", "16384", NULL};
	char lay[256], img[256];
	struct wl_proc *w = NULL;
	struct svc_conn *c = NULL;
	json_t *r = NULL, *e = NULL;
	int rd = -1, rc = -1;
	long long id;

	snprintf(lay, sizeof(lay), "%s/w.layout", d->dir);
	snprintf(img, sizeof(img), "%s/cancelled.img", d->dir);
	CHECK(svc_workload(p, big, lay, &w) >= 0, "workload");
	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	id = svc_stalled_job(c, w->pid, "pipe", &rd);
	CHECK(id > 0, "job started");
	r = svc_call(c, "cancel", json_pack("{s:I}", "id", id), -1);
	CHECK(!strcmp(svc_class(r), ""), "cancel: %s", svc_class(r));
	/* Nobody reads the pipe until the job has ended: a stuck output must not keep it. */
	e = svc_wait_event(c, "JOB_CANCELLED", id);
	CHECK(e, "JOB_CANCELLED while the output is stuck");
	CHECK(snap_target_released(w->pid) == 0, "the target is not released after the cancel");
	CHECK(svc_drain(rd, img) > 0, "the rest of the image");
	CHECK(!snap_image_complete(img), "a cancelled job's image must not verify as complete");
	CHECK(snap_target_unharmed(w) == 0, "target harmed");
	json_decref(r);
	r = svc_call(c, "cancel", json_pack("{s:I}", "id", id), -1);
	CHECK(!strcmp(svc_class(r), "GenericError"), "cancel of an ended job: %s", svc_class(r));
	printf("ok: cancel mid-job, image incomplete, target unharmed\n");
	rc = 0;
fail:
	if (rd >= 0)
		close(rd);
	json_decref(r);
	json_decref(e);
	svc_conn_free(c);
	wl_proc_free(w);
	return rc;
}

static int target_exit(const struct svc_paths *p, struct svc_daemon *d)
{
	static const char *const big[] = {"--threads", "2", "--pages", "16384", NULL};
	struct wl_proc *w = NULL;
	struct svc_conn *c = NULL;
	json_t *e = NULL, *data;
	char lay[256], want[64];
	const char *desc;
	int rd = -1, rc = -1;
	long long id;

	snprintf(lay, sizeof(lay), "%s/w.layout", d->dir);
	CHECK(svc_workload(p, big, lay, &w) >= 0, "workload");
	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	id = svc_stalled_job(c, w->pid, "pipe", &rd);
	CHECK(id > 0, "job started");
	kill(w->pid, SIGKILL);
	CHECK(svc_drain(rd, NULL) > 0, "the rest of the image");
	e = svc_wait_event(c, "JOB_FAILED", id);
	CHECK(e, "JOB_FAILED");
	data = json_object_get(e, "data");
	desc = json_string_value(json_object_get(data, "desc")) ?: "";
	printf("JOB_FAILED: %s: %s\n", json_string_value(json_object_get(data, "class")), desc);
	CHECK(!strcmp(json_string_value(json_object_get(data, "class")) ?: "", "TargetError"),
	      "class");
	snprintf(want, sizeof(want), "pid %d exited during the snapshot", w->pid);
	CHECK(!strncmp(desc, want, strlen(want)) && !strstr(desc, "exec"),
	      "desc says the target exited, and only that");
	printf("ok: target exit mid-job -> JOB_FAILED\n");
	rc = 0;
fail:
	if (rd >= 0)
		close(rd);
	json_decref(e);
	svc_conn_free(c);
	wl_proc_free(w);
	return rc;
}

static int busy(const struct svc_paths *p, struct svc_daemon *d)
{
	char lay1[256], lay2[256], img[256];
	struct wl_proc *w1 = NULL, *w2 = NULL;
	struct svc_conn *c = NULL;
	json_t *r = NULL, *e = NULL;
	int rd = -1, rc = -1;
	long long id, id2;

	snprintf(lay1, sizeof(lay1), "%s/w1.layout", d->dir);
	snprintf(lay2, sizeof(lay2), "%s/w2.layout", d->dir);
	snprintf(img, sizeof(img), "%s/after.img", d->snapdir);
	CHECK(svc_workload(p, wl_args, lay1, &w1) >= 0, "workload 1");
	CHECK(svc_workload(p, wl_args, lay2, &w2) >= 0, "workload 2");
	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	id = svc_stalled_job(c, w1->pid, "pipe", &rd);
	CHECK(id > 0, "job started");
	r = svc_call(c, "snapshot", json_pack("{s:i, s:s}", "pid", w1->pid, "file", "x.img"), -1);
	CHECK(!strcmp(svc_class(r), "Busy"), "same pid again: %s", svc_class(r));
	json_decref(r);
	r = svc_call(c, "snapshot", json_pack("{s:i, s:s}", "pid", w2->pid, "file", "y.img"), -1);
	CHECK(!strcmp(svc_class(r), "LimitExceeded"), "over --max-jobs: %s", svc_class(r));
	CHECK(access(img, F_OK) < 0, "a refused job created no file");
	CHECK(svc_drain(rd, NULL) > 0, "drain");
	e = svc_wait_event(c, "JOB_COMPLETED", id);
	CHECK(e, "the first job completed");
	id2 = svc_snapshot(c, w2->pid, "file", "after.img");
	CHECK(id2 > 0 && completed(c, id2), "a job once the first ended");
	CHECK(image_ok(p, w2, img, lay2) == 0, "image");
	CHECK(snap_target_unharmed(w1) == 0, "target 1 harmed");
	printf("ok: Busy on the same pid, LimitExceeded over --max-jobs\n");
	rc = 0;
fail:
	if (rd >= 0)
		close(rd);
	json_decref(r);
	json_decref(e);
	svc_conn_free(c);
	wl_proc_free(w1);
	wl_proc_free(w2);
	return rc;
}

/* Stops the daemon mid-job (quit or SIGTERM): the job is cancelled, the daemon exits 0. */
static int stop_mid_job(const struct svc_paths *p, struct svc_daemon *d, bool quit)
{
	struct wl_proc *w = NULL;
	struct svc_conn *c = NULL;
	json_t *r = NULL, *e = NULL;
	char lay[256];
	int rd = -1, rc = -1, st;
	long long id;

	snprintf(lay, sizeof(lay), "%s/w.layout", d->dir);
	CHECK(svc_workload(p, wl_args, lay, &w) >= 0, "workload");
	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	id = svc_stalled_job(c, w->pid, "pipe", &rd);
	CHECK(id > 0, "job started");
	if (quit) {
		r = svc_call(c, "quit", NULL, -1);
		CHECK(!strcmp(svc_class(r), ""), "quit: %s", svc_class(r));
	} else {
		CHECK(kill(d->pid, SIGTERM) == 0, "SIGTERM");
	}
	/* The output stays stuck (nobody reads the pipe) until the daemon has gone. */
	e = svc_wait_event(c, "JOB_CANCELLED", id);
	CHECK(e, "JOB_CANCELLED before the daemon exits");
	CHECK(waitpid(d->pid, &st, 0) == d->pid, "wait for the daemon");
	CHECK(svc_drain(rd, NULL) > 0, "drain");
	d->pid = -1;
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exit status %#x", st);
	CHECK(access(d->sock, F_OK) < 0, "the daemon removes its socket");
	CHECK(snap_target_unharmed(w) == 0, "target harmed");
	printf("ok: %s mid-job: job cancelled, exit 0, target unharmed\n",
	       quit ? "quit" : "SIGTERM");
	rc = 0;
fail:
	if (rd >= 0)
		close(rd);
	json_decref(r);
	json_decref(e);
	svc_conn_free(c);
	wl_proc_free(w);
	return rc;
}

/* The pid of the daemon's child named uffsnapd-spawn that is not a zombie, or -1. */
static pid_t find_spawner(pid_t daemon)
{
	char path[64], comm[64], state;
	pid_t child, found = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", daemon, daemon);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (found < 0 && fscanf(f, "%d", &child) == 1) {
		FILE *st;

		snprintf(path, sizeof(path), "/proc/%d/stat", child);
		st = fopen(path, "re");
		if (st && fscanf(st, "%*d (%63[^)]) %c", comm, &state) == 2 &&
		    !strcmp(comm, "uffsnapd-spawn") && state != 'Z')
			found = child;
		if (st)
			fclose(st);
	}
	fclose(f);
	return found;
}

static int spawner_killed(const struct svc_paths *p, struct svc_daemon *d)
{
	char img[256], lay[256];
	struct wl_proc *w = NULL;
	struct svc_conn *c = NULL;
	pid_t sp = -1, again;
	long long id;
	int rc = -1;

	/* The spawner names itself once forked: under a sanitizer that can come after the
	 * daemon is ready. A minute is no wait a loaded machine makes. */
	for (int ms = 0; ms < 60000 && (sp = find_spawner(d->pid)) < 0; ms++)
		usleep(1000);
	CHECK(sp > 0, "uffsnapd %d has no uffsnapd-spawn child", d->pid);
	CHECK(kill(sp, SIGKILL) == 0, "kill %d", sp);
	while (find_spawner(d->pid) == sp) /* until it is a zombie */
		usleep(1000);
	snprintf(img, sizeof(img), "%s/after-spawner.img", d->snapdir);
	snprintf(lay, sizeof(lay), "%s/w.layout", d->dir);
	CHECK(svc_workload(p, wl_args, lay, &w) >= 0, "workload");
	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	id = svc_snapshot(c, w->pid, "file", "after-spawner.img");
	CHECK(id > 0, "job started");
	CHECK(completed(c, id), "job %lld completed with its spawner killed before", id);
	CHECK(image_ok(p, w, img, lay) == 0, "image");
	for (int ms = 0; ms < 60000 && ((again = find_spawner(d->pid)) < 0 || again == sp); ms++)
		usleep(1000);
	CHECK(again > 0 && again != sp, "a new spawner (%d, the killed one %d)", again, sp);
	printf("ok: spawner %d killed, the next job started spawner %d and completed\n", sp,
	       again);
	rc = 0;
fail:
	svc_conn_free(c);
	wl_proc_free(w);
	return rc;
}

int main(int argc, char **argv)
{
	static const char *const one_job[] = {"--max-jobs", "1", NULL};
	static const char *const quit_ok[] = {"--allow-quit", NULL};
	struct svc_paths p;
	int i = svc_paths_parse(argc, argv, &p), r = -1, st;
	const char *what = i < argc ? argv[i] : "";
	struct svc_daemon d = {0};

	if (getuid() != 0) {
		printf("SKIP: needs root (the daemon ptraces, opens /dev/userfaultfd)\n");
		return 77;
	}
	if (svc_daemon_start(&p,
			     !strcmp(what, "busy")   ? one_job
			     : !strcmp(what, "quit") ? quit_ok
						     : NULL,
			     &d) < 0) {
		printf("FAIL: cannot start uffsnapd --service\n");
		svc_daemon_stop(&d);
		return 1;
	}
	if (!strcmp(what, "concurrent"))
		r = concurrent(&p, &d);
	else if (!strcmp(what, "cancel"))
		r = cancel(&p, &d);
	else if (!strcmp(what, "target-exit"))
		r = target_exit(&p, &d);
	else if (!strcmp(what, "busy"))
		r = busy(&p, &d);
	else if (!strcmp(what, "spawner"))
		r = spawner_killed(&p, &d);
	else if (!strcmp(what, "quit") || !strcmp(what, "sigterm"))
		r = stop_mid_job(&p, &d, !strcmp(what, "quit"));
	else
		fprintf(stderr, "unknown scenario '%s'\n", what);
	st = d.pid > 0 || r < 0 ? svc_daemon_stop(&d) : (svc_daemon_stop(&d), 0);
	if (st != 0)
		printf("FAIL: uffsnapd exited %d on SIGTERM (want 0)\n", st);
	return r == 0 && st == 0 ? 0 : 1;
}
