/* SPDX-License-Identifier: MIT */
/*
 * Snapshot jobs on QEMU guests ("qemu": the client's QMP connection, passed with getfd), against
 * real QEMUs that run their firmware only (as tests/qemu/test-qemu-refuse.c: no guest kernel is
 * needed for a running guest with shared RAM). Scenarios (argv after the paths):
 *   complete  a guest job completes: JOB_CREATED and JOB_COMPLETED name the guest, the image
 *             records it (META "guest"), the guest runs on with its capabilities as they were;
 *             a plain snapshot job still completes beside it
 *   refused   each refusal in one line: not a socket, 'pid' and 'qemu' together, a client
 *             (nobody) that could not ptrace QEMU, a second job on a guest that has one (by
 *             'qemu' or by its 'pid'), a socket that is not QEMU's, a greeting already read,
 *             a paused guest; the guest is as it was after each
 *   cancel    cancelled at each pause point of the guest's snapshot (armed, guest-stopped,
 *             guest-saved: uffsnapd-test), the job ends cancelled and the guest runs on with
 *             its migration capabilities as they were (x-ignore-shared off, events on)
 *   killed    the daemon killed (SIGKILL) or stopped (SIGTERM) with a guest job paused while
 *             the guest is stopped (guest-stopped, guest-saved): the guest runs again, its
 *             capabilities as they were
 *
 * usage: test-svc-guest UFFSNAPD-TEST WORKLOAD CHECK SCENARIO
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qmp.h"
#include "snap-harness.h"
#include "svc-guest.h"
#include "svc-harness.h"
#include "test-check.h"
#include "uffsnap/image.h"

/* snapshot {"qemu": name, "file": file}: the reply (a new reference). */
static json_t *guest_job(struct svc_conn *c, const char *name, const char *file)
{
	return svc_call(c, "snapshot", json_pack("{s:s, s:s}", "qemu", name, "file", file), -1);
}

/* The image is complete and its META says which guest it holds. */
static int image_is_guest(const char *path)
{
	struct img_summary sum;
	char *meta = NULL;
	json_t *m = NULL, *g;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = -1;

	if (fd >= 0 && img_verify_fd(fd, &sum, &meta) >= 0 && meta)
		m = json_loads(meta, 0, NULL);
	g = json_object_get(m, "guest");
	if (g && !strcmp(json_string_value(json_object_get(g, "machine")) ?: "", "pc-i440fx-7.2") &&
	    json_array_size(json_object_get(g, "backends")) == 1)
		r = 0;
	else
		printf("image %s: no guest in its META (%s)\n", path, meta ? meta : "unreadable");
	json_decref(m);
	free(meta);
	if (fd >= 0)
		close(fd);
	return r;
}

static int complete(const struct svc_paths *p, const char *dir)
{
	static const char *const wl_args[] = {"--threads", "1", NULL};
	struct svc_daemon d = {0};
	struct svc_conn *c = NULL;
	struct svc_guest g = {0};
	struct wl_proc *wl = NULL;
	json_t *r = NULL, *e = NULL, *gs;
	char img[300], lay[300];
	long long id, pid_job;
	int rc = -1;

	CHECK(svc_guest_start(&g, dir, "complete", SVC_GUEST_RUN) == 0, "QEMU starts");
	CHECK(svc_guest_set_events(&g) == 0, "set 'events' before");
	CHECK(svc_daemon_start(p, NULL, &d) >= 0, "uffsnapd --service starts");
	CHECK(svc_connect(d.sock, &c) >= 0, "connect");
	CHECK(svc_pass_socket(c, g.sock, "qmp") == 0, "getfd the QMP connection");
	r = guest_job(c, "qmp", "guest.img");
	id = svc_job_id(r);
	CHECK(id > 0, "the guest job is created: %s", svc_desc_of(r));
	json_decref(r);
	r = svc_wait_event(c, "JOB_CREATED", id);
	CHECK(r &&
		  json_integer_value(json_object_get(json_object_get(r, "data"), "pid")) == g.pid &&
		  !strcmp(json_string_value(json_object_get(json_object_get(r, "data"), "qemu"))
			      ?: "",
			  "qmp"),
	      "JOB_CREATED names QEMU's pid and the QMP fd");
	e = svc_wait_event(c, "JOB_COMPLETED", id);
	CHECK(e, "the guest job completes");
	gs = json_object_get(json_object_get(e, "data"), "guest");
	CHECK(json_integer_value(json_object_get(gs, "pid")) == g.pid &&
		  json_integer_value(json_object_get(gs, "downtime_ns")) > 0 &&
		  json_integer_value(json_object_get(gs, "devstate_bytes")) > 0,
	      "JOB_COMPLETED carries the guest's stats");
	printf("guest job: downtime %.3f ms, device state %lld bytes\n",
	       json_integer_value(json_object_get(gs, "downtime_ns")) / 1e6,
	       json_integer_value(json_object_get(gs, "devstate_bytes")));
	snprintf(img, sizeof(img), "%s/guest.img", d.snapdir);
	CHECK(image_is_guest(img) == 0, "the image holds the guest");
	CHECK(svc_guest_status_is(&g, "running"), "the guest runs on");
	CHECK(svc_guest_cap(&g, "x-ignore-shared") == 0 && svc_guest_cap(&g, "events") == 1,
	      "the migration capabilities are as they were");
	json_decref(r);
	r = svc_call(c, "query-job", json_pack("{s:I}", "id", id), -1);
	CHECK(json_object_get(json_object_get(r, "return"), "guest") &&
		  json_object_get(json_object_get(r, "return"), "qemu"),
	      "query-job shows the guest");
	/* a plain snapshot job, as before */
	snprintf(lay, sizeof(lay), "%s/wl.layout", dir);
	CHECK(svc_workload(p, wl_args, lay, &wl) >= 0, "workload");
	pid_job = svc_snapshot(c, wl->pid, "file", "plain.img");
	CHECK(pid_job > 0, "a plain job is created");
	json_decref(e);
	e = svc_wait_event(c, "JOB_COMPLETED", pid_job);
	CHECK(e && !json_object_get(json_object_get(e, "data"), "guest"),
	      "the plain job completes");
	snprintf(img, sizeof(img), "%s/plain.img", d.snapdir);
	CHECK(wl_run_check(p->check, img, lay) == 0, "the plain image is one instant");
	CHECK(snap_target_unharmed(wl) == 0, "the workload is unharmed");
	printf("ok: a guest job completes, its image holds the guest, the guest runs on; a plain "
	       "job still works\n");
	rc = 0;
fail:
	json_decref(r);
	json_decref(e);
	svc_conn_free(c);
	wl_proc_free(wl);
	if (svc_daemon_stop(&d) != 0)
		rc = -1;
	svc_guest_kill(&g);
	return rc;
}

struct nobody_args {
	const char *sock;
	int qmp_fd; /* connected by root before the fork: nobody could not reach the socket */
};

static int nobody_main(void *ctx)
{
	struct nobody_args *a = ctx;
	struct svc_conn *c = NULL;
	json_t *r = NULL;
	int rc = -1;

	CHECK(svc_connect(a->sock, &c) >= 0, "nobody connects");
	r = svc_call(c, "getfd", json_pack("{s:s}", "fdname", "qmp"), a->qmp_fd);
	CHECK(!strcmp(svc_class(r), ""), "getfd");
	json_decref(r);
	r = guest_job(c, "qmp", "nobody.img");
	CHECK(!strcmp(svc_class(r), "PermissionDenied"), "nobody -> root's QEMU: %s: %s",
	      svc_class(r), svc_desc_of(r));
	printf("nobody -> root's QEMU: %s\n", svc_desc_of(r));
	rc = 0;
fail:
	json_decref(r);
	svc_conn_free(c);
	return rc;
}

/* Refused up front: a reply error, in one line, and no job. */
static int refused_now(struct svc_conn *c, json_t *args, const char *class, const char *needle)
{
	json_t *r = svc_call(c, "snapshot", args, -1);
	int ok =
	    !strcmp(svc_class(r), class) && strstr(svc_desc_of(r), needle) && !strchr(svc_desc_of(r), '\n');

	printf("%s: %s: %s\n", ok ? "refused" : "FAIL: not refused as expected", svc_class(r),
	       svc_desc_of(r));
	json_decref(r);
	return ok ? 0 : -1;
}

/* Accepted, then failed by its thread: JOB_FAILED in one line. */
static int failed_job(struct svc_conn *c, const char *path, const char *needle)
{
	json_t *r, *e = NULL;
	long long id;
	int ok = 0;

	if (svc_pass_socket(c, path, "late") < 0)
		return -1;
	r = guest_job(c, "late", "late.img");
	id = svc_job_id(r);
	json_decref(r);
	if (id > 0)
		e = svc_wait_event(c, "JOB_FAILED", id);
	ok = e && strstr(svc_desc_of(e), needle) && !strchr(svc_desc_of(e), '\n');
	printf("%s: JOB_FAILED: %s\n", ok ? "failed" : "FAIL: did not fail as expected",
	       e ? svc_desc_of(e) : "(no event)");
	json_decref(e);
	return ok ? 0 : -1;
}

static int refused_read_greeting(struct svc_conn *c, const struct svc_guest *g)
{
	char buf[4096];
	int fd = svc_connect_raw(g->sock), rc = -1;
	json_t *r = NULL, *e = NULL;
	long long id;

	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) > 0, "read the greeting ourselves");
	r = svc_call(c, "getfd", json_pack("{s:s}", "fdname", "read"), fd);
	close(fd);
	json_decref(r);
	r = guest_job(c, "read", "read.img");
	id = svc_job_id(r);
	CHECK(id > 0, "accepted");
	e = svc_wait_event(c, "JOB_FAILED", id);
	CHECK(e && strstr(svc_desc_of(e), "no QMP greeting"), "a read greeting: %s",
	      e ? svc_desc_of(e) : "(no event)");
	printf("failed: JOB_FAILED: %s\n", svc_desc_of(e));
	rc = 0;
fail:
	json_decref(r);
	json_decref(e);
	return rc;
}

/* A second job on the guest while the first is paused at "armed" (by 'qemu', by 'pid'). */
static int refused_second(struct svc_conn *c, const struct svc_guest *g, const char *pausedir)
{
	json_t *r = NULL, *e = NULL;
	long long id;
	int rc = -1;

	CHECK(svc_pass_socket(c, g->sock, "first") == 0, "getfd");
	r = guest_job(c, "first", "first.img");
	id = svc_job_id(r);
	CHECK(id > 0, "the first job: %s", svc_desc_of(r));
	CHECK(snap_pause_wait(pausedir, "armed") == 0, "the first job reaches armed");
	CHECK(svc_pass_socket(c, g->sock, "second") == 0, "getfd");
	CHECK(refused_now(c, json_pack("{s:s, s:s}", "qemu", "second", "file", "2.img"), "Busy",
			  "already has a running job") == 0,
	      "a second guest job");
	CHECK(refused_now(c, json_pack("{s:i, s:s}", "pid", g->pid, "file", "3.img"), "Busy",
			  "already has a running job") == 0,
	      "a plain job on QEMU's pid");
	json_decref(svc_call(c, "closefd", json_pack("{s:s}", "fdname", "second"), -1));
	snap_pause_go(pausedir);
	e = svc_wait_event(c, "JOB_COMPLETED", id);
	CHECK(e, "the first job completes");
	rc = 0;
fail:
	snap_pause_go(pausedir);
	json_decref(r);
	json_decref(e);
	return rc;
}

static int refused(const struct svc_paths *p, const char *dir)
{
	char pausedir[300], spec[320];
	struct svc_daemon d = {0};
	struct svc_conn *c = NULL;
	struct svc_guest g = {0}, paused = {0};
	struct nobody_args na = {0};
	int pfd[2] = {-1, -1}, rc = -1;
	json_t *r = NULL;

	snprintf(pausedir, sizeof(pausedir), "%s/pause", dir);
	CHECK(mkdir(pausedir, 0700) == 0, "mkdir");
	snprintf(spec, sizeof(spec), "armed:%s", pausedir);
	setenv("UFFSNAPD_TEST_PAUSE", spec, 1);
	CHECK(svc_guest_start(&g, dir, "refused", SVC_GUEST_RUN) == 0, "QEMU starts");
	CHECK(svc_daemon_start(p, NULL, &d) >= 0, "uffsnapd-test --service starts");
	CHECK(chmod(d.dir, 0755) == 0 && chmod(d.sock, 0666) == 0, "chmod for nobody");
	CHECK(svc_connect(d.sock, &c) >= 0, "connect");

	CHECK(pipe2(pfd, O_CLOEXEC) == 0, "pipe");
	r = svc_call(c, "getfd", json_pack("{s:s}", "fdname", "pipe"), pfd[0]);
	json_decref(r);
	r = NULL;
	CHECK(refused_now(c, json_pack("{s:s, s:s}", "qemu", "pipe", "file", "p.img"),
			  "InvalidParameter", "not a connected unix stream socket") == 0,
	      "a pipe as 'qemu'");
	CHECK(refused_now(c, json_pack("{s:s, s:s}", "qemu", "nosuch", "file", "p.img"), "NotFound",
			  "no fd named 'nosuch'") == 0,
	      "an unknown fd name");
	CHECK(refused_now(
		  c, json_pack("{s:i, s:s, s:s}", "pid", g.pid, "qemu", "pipe", "file", "p.img"),
		  "InvalidParameter", "exactly one of 'pid'") == 0,
	      "'pid' and 'qemu' together");
	CHECK(refused_now(c, json_pack("{s:s, s:s}", "qemu", "pipe", "fd", "pipe"),
			  "InvalidParameter", "name the same fd") == 0,
	      "'qemu' and 'fd' the same");

	na.sock = d.sock;
	na.qmp_fd = svc_connect_raw(g.sock);
	CHECK(na.qmp_fd >= 0, "connect to QMP for nobody");
	fflush(stdout); /* the child must not print our lines again */
	CHECK(svc_wait_child(svc_fork_nobody(nobody_main, &na)) == 0, "checks as nobody");
	close(na.qmp_fd);
	na.qmp_fd = -1;
	CHECK(svc_guest_status_is(&g, "running"), "the guest is untouched");

	CHECK(refused_second(c, &g, pausedir) == 0, "a second job on one guest");
	CHECK(svc_guest_status_is(&g, "running"), "the guest runs on");

	CHECK(failed_job(c, d.sock, "not a QMP socket") == 0, "uffsnapd's own socket as 'qemu'");
	CHECK(refused_read_greeting(c, &g) == 0, "a greeting already read");
	CHECK(svc_guest_status_is(&g, "running"), "the guest runs on");
	CHECK(svc_guest_start(&paused, dir, "paused", SVC_GUEST_PAUSED) == 0, "a paused QEMU starts");
	CHECK(failed_job(c, paused.sock, "paused") == 0, "a paused guest");
	CHECK(svc_guest_status_is(&paused, "prelaunch"), "the paused guest stays paused");
	printf("ok: every refusal in one line; the guests as they were\n");
	rc = 0;
fail:
	if (na.qmp_fd >= 0)
		close(na.qmp_fd);
	for (int i = 0; i < 2; i++)
		if (pfd[i] >= 0)
			close(pfd[i]);
	svc_conn_free(c);
	if (svc_daemon_stop(&d) != 0)
		rc = -1;
	svc_guest_kill(&g);
	svc_guest_kill(&paused);
	snap_pause_clean(pausedir, "armed");
	unsetenv("UFFSNAPD_TEST_PAUSE");
	return rc;
}

/* Cancelled while paused at point: the job ends cancelled, the guest runs as before. */
static int cancel_at(const struct svc_paths *p, const char *dir, const struct svc_guest *g,
		     const char *point)
{
	char pausedir[300], spec[320];
	struct svc_daemon d = {0};
	struct svc_conn *c = NULL;
	json_t *r = NULL, *e = NULL;
	long long id;
	int rc = -1;

	snprintf(pausedir, sizeof(pausedir), "%s/pause-%s", dir, point);
	CHECK(mkdir(pausedir, 0700) == 0, "mkdir");
	snprintf(spec, sizeof(spec), "%s:%s", point, pausedir);
	setenv("UFFSNAPD_TEST_PAUSE", spec, 1);
	CHECK(svc_daemon_start(p, NULL, &d) >= 0, "uffsnapd-test --service starts");
	CHECK(svc_connect(d.sock, &c) >= 0, "connect");
	CHECK(svc_pass_socket(c, g->sock, "qmp") == 0, "getfd");
	r = guest_job(c, "qmp", "cancelled.img");
	id = svc_job_id(r);
	CHECK(id > 0, "the job: %s", svc_desc_of(r));
	CHECK(snap_pause_wait(pausedir, point) == 0, "the job reaches %s", point);
	json_decref(r);
	r = svc_call(c, "cancel", json_pack("{s:I}", "id", id), -1);
	CHECK(!strcmp(svc_class(r), ""), "cancel: %s", svc_desc_of(r));
	snap_pause_go(pausedir);
	e = svc_wait_event(c, "JOB_CANCELLED", id);
	CHECK(e, "the job ends cancelled");
	CHECK(svc_guest_status_is(g, "running"), "cancelled at %s: the guest runs on", point);
	CHECK(svc_guest_cap(g, "x-ignore-shared") == 0 && svc_guest_cap(g, "events") == 1,
	      "cancelled at %s: the migration capabilities changed", point);
	printf("ok: cancelled at %s: the guest runs, its capabilities as they were\n", point);
	rc = 0;
fail:
	snap_pause_go(pausedir);
	json_decref(r);
	json_decref(e);
	svc_conn_free(c);
	if (svc_daemon_stop(&d) != 0)
		rc = -1;
	snap_pause_clean(pausedir, point);
	unsetenv("UFFSNAPD_TEST_PAUSE");
	return rc;
}

static int cancel(const struct svc_paths *p, const char *dir)
{
	static const char *const points[] = {"armed", "guest-stopped", "guest-saved"};
	struct svc_guest g = {0};
	int rc = -1;

	CHECK(svc_guest_start(&g, dir, "cancel", SVC_GUEST_RUN) == 0, "QEMU starts");
	CHECK(svc_guest_set_events(&g) == 0, "set 'events' before");
	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++)
		CHECK(cancel_at(p, dir, &g, points[i]) == 0, "cancel at %s", points[i]);
	rc = 0;
fail:
	svc_guest_kill(&g);
	return rc;
}

/*
 * The daemon itself killed (SIGKILL: its guardian resumes the guest) or stopped (SIGTERM: it
 * cancels the job) while its guest job is paused at point: the guest runs again, with its
 * migration capabilities as they were.
 */
static int killed_at(const struct svc_paths *p, const char *dir, const struct svc_guest *g,
		     const char *point, int sig)
{
	char pausedir[300], spec[320];
	struct svc_daemon d = {0};
	struct svc_conn *c = NULL;
	json_t *r = NULL;
	int rc = -1, st;
	bool running = false;

	snprintf(pausedir, sizeof(pausedir), "%s/kill-%s-%d", dir, point, sig);
	CHECK(mkdir(pausedir, 0700) == 0, "mkdir");
	snprintf(spec, sizeof(spec), "%s:%s", point, pausedir);
	setenv("UFFSNAPD_TEST_PAUSE", spec, 1);
	CHECK(svc_daemon_start(p, NULL, &d) >= 0, "uffsnapd-test --service starts");
	CHECK(svc_connect(d.sock, &c) >= 0, "connect");
	CHECK(svc_pass_socket(c, g->sock, "qmp") == 0, "getfd");
	r = guest_job(c, "qmp", "killed.img");
	CHECK(svc_job_id(r) > 0, "the job: %s", svc_desc_of(r));
	CHECK(snap_pause_wait(pausedir, point) == 0, "the job reaches %s", point);
	CHECK(kill(d.pid, sig) == 0, "kill");
	snap_pause_go(pausedir); /* SIGTERM is seen once the pause ends */
	st = svc_daemon_stop(&d);
	CHECK(st == (sig == SIGKILL ? 128 + SIGKILL : 0), "%s at %s: the daemon exited %d",
	      strsignal(sig), point, st);
	/* The guardian (SIGKILL) answers on the daemon's QMP connection: QEMU serves us after */
	for (int i = 0; i < 200 && !running; i++) {
		json_t *q = NULL;

		running = svc_qmp_one(g, "query-status", NULL, &q) >= 0 &&
			  !strcmp(json_string_value(json_object_get(q, "status")) ?: "", "running");
		json_decref(q);
		if (!running)
			usleep(50000);
	}
	CHECK(running, "%s at %s: the guest is left paused", strsignal(sig), point);
	CHECK(svc_guest_cap(g, "x-ignore-shared") == 0 && svc_guest_cap(g, "events") == 1,
	      "%s at %s: the migration capabilities changed", strsignal(sig), point);
	printf("ok: the daemon %s at %s: the guest runs, its capabilities as they were\n",
	       sig == SIGKILL ? "killed" : "stopped", point);
	rc = 0;
fail:
	snap_pause_go(pausedir);
	json_decref(r);
	svc_conn_free(c);
	svc_daemon_stop(&d);
	snap_pause_clean(pausedir, point);
	unsetenv("UFFSNAPD_TEST_PAUSE");
	return rc;
}

static int killed(const struct svc_paths *p, const char *dir)
{
	static const char *const points[] = {"guest-stopped", "guest-saved"};
	static const int sigs[] = {SIGKILL, SIGTERM};
	struct svc_guest g = {0};
	int rc = -1;

	CHECK(svc_guest_start(&g, dir, "killed", SVC_GUEST_RUN) == 0, "QEMU starts");
	CHECK(svc_guest_set_events(&g) == 0, "set 'events' before");
	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++)
		for (size_t s = 0; s < sizeof(sigs) / sizeof(sigs[0]); s++)
			CHECK(killed_at(p, dir, &g, points[i], sigs[s]) == 0, "killed at %s",
			      points[i]);
	rc = 0;
fail:
	svc_guest_kill(&g);
	return rc;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/uffsnap-svc-guest-XXXXXX", cmd[128];
	struct svc_paths p;
	int i = svc_paths_parse(argc, argv, &p), rc;
	const char *scenario = i < argc ? argv[i] : "";

	if (access(SVC_QEMU, X_OK) < 0) {
		printf("SKIP: %s is not installed (./dev installs qemu-system-x86)\n", SVC_QEMU);
		return 77;
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root (ptrace of QEMU, another uid for the refusals)\n");
		return 77;
	}
	if (!mkdtemp(dir))
		return printf("FAIL: mkdtemp: %m\n"), 1;
	if (!strcmp(scenario, "complete"))
		rc = complete(&p, dir);
	else if (!strcmp(scenario, "refused"))
		rc = refused(&p, dir);
	else if (!strcmp(scenario, "cancel"))
		rc = cancel(&p, dir);
	else if (!strcmp(scenario, "killed"))
		rc = killed(&p, dir);
	else {
		printf("unknown scenario '%s'\n", scenario);
		rc = -1;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", dir);
	return rc == 0 ? 0 : 1;
}
