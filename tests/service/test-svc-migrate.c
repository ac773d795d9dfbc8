/* SPDX-License-Identifier: MIT */
/*
 * Migration jobs (`migrate`: the client's QMP connection passed as 'qemu', 'to' a migration
 * receiver) between firmware-only QEMUs on this host: the source's RAM a shared memfd, the
 * destination's a file backend (share=on) waiting with -incoming defer, and `uffsnapd
 * --receive --qemu` on 127.0.0.1 between them. Scenarios (argv after the paths):
 *   refused   each refusal in one line: no 'to', a bad 'downtime', no 'qemu', an unknown fd
 *             name, a guest that has a job already (Busy), a daemon without --key; a receiver
 *             that is not there fails the job (JOB_FAILED) and the guest runs on
 *   complete  the job completes: MIGRATION_ROUND events, JOB_COMPLETED with the migration's
 *             stats (switched), the source ends postmigrate, the destination runs, the receiver
 *             exits 0, query-job shows it
 *   cancel    cancelled at the pause points "round" (pre-copy) and "mig-switchover" (QEMU
 *             stopped the vCPUs at pre-switchover) of uffsnapd-test: meanwhile a snapshot of
 *             QEMU's pid is Busy; JOB_CANCELLED, and the source guest runs, its migration
 *             capabilities as they were
 *   cli       `uffsnapctl migrate` completes (exit 0, a line per round, the summary) and
 *             `uffsnapctl job` shows the migration
 *
 * usage: test-svc-migrate UFFSNAPD-TEST WORKLOAD CHECK SCENARIO [UFFSNAPCTL]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest-mig.h"
#include "snap-harness.h"
#include "svc-guest.h"
#include "svc-harness.h"
#include "test-check.h"

/* A fixed test key (64 hex digits, as `uffsnapd --key` reads them). */
#define TEST_KEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

struct mig_ctx {
	const struct svc_paths *p;
	const char *dir;
	char key[300];
	struct svc_guest dst;
	pid_t recv;	 /* the receiver, or 0 */
	char listen[80]; /* where it listens */
	char recv_err[300];
};

static int write_key(struct mig_ctx *x)
{
	int fd;

	snprintf(x->key, sizeof(x->key), "%s/key", x->dir);
	fd = open(x->key, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, TEST_KEY "\n", sizeof(TEST_KEY)) != (ssize_t)sizeof(TEST_KEY)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return close(fd);
}

/* A destination QEMU NAME and its receiver on 127.0.0.1 (a free port, read from its log). */
static int dest_start(struct mig_ctx *x, const char *name)
{
	char out[300], *at, *end;
	const char *argv[] = {x->p->uffsnapd,	  "--receive",	 "--qemu", x->dst.sock,
			      "--listen",	  "127.0.0.1:0", "--key",  x->key,
			      "--resume-timeout", "3",		 "--json", NULL};
	FILE *f;
	char line[512] = "";

	if (svc_guest_start(&x->dst, x->dir, name, SVC_GUEST_INCOMING) < 0)
		return printf("the destination QEMU does not start\n"), -1;
	snprintf(out, sizeof(out), "%s/%s.recv.out", x->dir, name);
	snprintf(x->recv_err, sizeof(x->recv_err), "%s/%s.recv.err", x->dir, name);
	argv[3] = x->dst.sock;
	x->recv = mig_spawn(-1, argv, out, x->recv_err, NULL);
	if (x->recv <= 0 || !mig_wait_file(x->recv_err, "migration receiver on "))
		return printf("the receiver never listened: see %s\n", x->recv_err), -1;
	f = fopen(x->recv_err, "r");
	while (f && fgets(line, sizeof(line), f) && !strstr(line, "migration receiver on "))
		;
	if (f)
		fclose(f);
	at = strstr(line, "receiver on ");
	end = at ? strstr(at, " for ") : NULL;
	if (!end)
		return printf("no address in the receiver's line: %s\n", line), -1;
	at += strlen("receiver on ");
	snprintf(x->listen, sizeof(x->listen), "%.*s", (int)(end - at), at);
	return 0;
}

/* The receiver's exit status (killed first unless wait); the destination is killed after. */
static int dest_stop(struct mig_ctx *x, bool wait)
{
	int st = -1;

	if (x->recv > 0) {
		if (!wait)
			kill(x->recv, SIGKILL);
		st = mig_wait_exit(x->recv);
	}
	x->recv = 0;
	return st;
}

static json_t *migrate(struct svc_conn *c, const char *qemu, const char *to)
{
	return svc_call(c, "migrate",
			json_pack("{s:s, s:s, s:i}", "qemu", qemu, "to", to, "max-rounds", 5), -1);
}

/* Refused up front: a reply error, in one line, and no job. */
static int refused_now(struct svc_conn *c, json_t *args, const char *class, const char *needle)
{
	json_t *r = svc_call(c, "migrate", args, -1);
	const char *d = svc_desc_of(r);
	int ok = !strcmp(svc_class(r), class) && strstr(d, needle) && !strchr(d, '\n');

	printf("%s: %s: %s\n", ok ? "refused" : "FAIL: not refused as expected", svc_class(r), d);
	json_decref(r);
	return ok ? 0 : -1;
}

/* A guest snapshot job paused at "armed" holds the guest: a migration of it is Busy. */
static int refused_busy(struct svc_conn *c, const struct svc_guest *g, const char *pausedir)
{
	json_t *r = NULL, *e = NULL;
	long long id;
	int rc = -1;

	CHECK(svc_pass_socket(c, g->sock, "snap") == 0, "getfd");
	r = svc_call(c, "snapshot", json_pack("{s:s, s:s}", "qemu", "snap", "file", "g.img"), -1);
	id = svc_job_id(r);
	CHECK(id > 0, "the guest snapshot job: %s", svc_desc_of(r));
	CHECK(snap_pause_wait(pausedir, "armed") == 0, "the snapshot job reaches armed");
	CHECK(svc_pass_socket(c, g->sock, "qmp2") == 0, "getfd");
	CHECK(refused_now(c, json_pack("{s:s, s:s}", "qemu", "qmp2", "to", "127.0.0.1:1"), "Busy",
			  "already has a running job") == 0,
	      "a migration of a guest with a job");
	json_decref(svc_call(c, "closefd", json_pack("{s:s}", "fdname", "qmp2"), -1));
	snap_pause_go(pausedir);
	e = svc_wait_event(c, "JOB_COMPLETED", id);
	CHECK(e, "the snapshot job completes");
	rc = 0;
fail:
	snap_pause_go(pausedir);
	json_decref(r);
	json_decref(e);
	return rc;
}

/* Accepted, then failed by its thread before the guest is touched: JOB_FAILED in one line. */
static int failed_unreachable(struct svc_conn *c, const struct svc_guest *g)
{
	json_t *r = NULL, *e = NULL;
	long long id;
	int rc = -1;

	CHECK(svc_pass_socket(c, g->sock, "late") == 0, "getfd");
	r = migrate(c, "late", "127.0.0.1:1");
	id = svc_job_id(r);
	CHECK(id > 0, "accepted: %s", svc_desc_of(r));
	e = svc_wait_event(c, "JOB_FAILED", id);
	CHECK(e && strstr(svc_desc_of(e), "cannot stream to the migration receiver") &&
		  !strchr(svc_desc_of(e), '\n'),
	      "no receiver: %s", e ? svc_desc_of(e) : "(no event)");
	printf("failed: JOB_FAILED: %s\n", svc_desc_of(e));
	rc = 0;
fail:
	json_decref(r);
	json_decref(e);
	return rc;
}

/* A daemon without --key refuses a migration (its RAM would go through the stream). */
static int refused_nokey(const struct svc_paths *p, const struct svc_guest *g)
{
	struct svc_daemon d = {0};
	struct svc_conn *c = NULL;
	int rc = -1;

	CHECK(svc_daemon_start(p, NULL, &d) >= 0, "uffsnapd-test --service starts (no key)");
	CHECK(svc_connect(d.sock, &c) >= 0, "connect");
	CHECK(svc_pass_socket(c, g->sock, "qmp") == 0, "getfd");
	CHECK(refused_now(c, json_pack("{s:s, s:s}", "qemu", "qmp", "to", "127.0.0.1:1"),
			  "GenericError", "no stream key") == 0,
	      "no key");
	rc = 0;
fail:
	svc_conn_free(c);
	if (svc_daemon_stop(&d) != 0)
		rc = -1;
	return rc;
}

static int refused(struct mig_ctx *x)
{
	const char *const extra[] = {"--key", x->key, NULL};
	char pausedir[300], spec[320];
	struct svc_daemon d = {0};
	struct svc_conn *c = NULL;
	struct svc_guest g = {0};
	int rc = -1;

	snprintf(pausedir, sizeof(pausedir), "%s/pause", x->dir);
	CHECK(mkdir(pausedir, 0700) == 0, "mkdir");
	snprintf(spec, sizeof(spec), "armed:%s", pausedir);
	setenv("UFFSNAPD_TEST_PAUSE", spec, 1);
	CHECK(svc_guest_start(&g, x->dir, "refused", SVC_GUEST_RUN) == 0, "QEMU starts");
	CHECK(svc_daemon_start(x->p, extra, &d) >= 0, "uffsnapd-test --service --key starts");
	CHECK(svc_connect(d.sock, &c) >= 0, "connect");
	CHECK(svc_pass_socket(c, g.sock, "qmp") == 0, "getfd");
	CHECK(refused_now(c, json_pack("{s:s}", "qemu", "qmp"), "InvalidParameter",
			  "'migrate' needs the argument 'to'") == 0,
	      "no 'to'");
	CHECK(refused_now(
		  c,
		  json_pack("{s:s, s:s, s:i}", "qemu", "qmp", "to", "127.0.0.1:1", "downtime", 0),
		  "InvalidParameter", "'downtime' must be an integer from 1 to 60000") == 0,
	      "a bad 'downtime'");
	CHECK(refused_now(c, json_pack("{s:s}", "to", "127.0.0.1:1"), "InvalidParameter",
			  "'migrate' needs the argument 'qemu'") == 0,
	      "no 'qemu'");
	CHECK(refused_now(c, json_pack("{s:s, s:s}", "qemu", "nosuch", "to", "127.0.0.1:1"),
			  "NotFound", "no fd named 'nosuch'") == 0,
	      "an unknown fd name");
	/* QEMU serves one QMP client at a time: the refused requests' connection goes first */
	json_decref(svc_call(c, "closefd", json_pack("{s:s}", "fdname", "qmp"), -1));
	CHECK(refused_busy(c, &g, pausedir) == 0, "Busy");
	CHECK(svc_guest_status_is(&g, "running"), "the guest runs on");
	CHECK(failed_unreachable(c, &g) == 0, "no receiver");
	CHECK(svc_guest_status_is(&g, "running"), "the guest runs on");
	unsetenv("UFFSNAPD_TEST_PAUSE");
	CHECK(refused_nokey(x->p, &g) == 0, "a daemon without --key");
	CHECK(svc_guest_status_is(&g, "running"), "the guest runs on");
	printf("ok: every refusal in one line; the guest as it was\n");
	rc = 0;
fail:
	svc_conn_free(c);
	if (svc_daemon_stop(&d) != 0)
		rc = -1;
	svc_guest_kill(&g);
	snap_pause_clean(pausedir, "armed");
	unsetenv("UFFSNAPD_TEST_PAUSE");
	return rc;
}

static json_int_t member_int(json_t *o, const char *a, const char *b)
{
	return json_integer_value(json_object_get(json_object_get(o, a), b));
}

/* The destination runs once the receiver has seen it resume (it exits 0 then). */
static int complete(struct mig_ctx *x)
{
	const char *const extra[] = {"--key", x->key, NULL};
	struct svc_daemon d = {0};
	struct svc_conn *c = NULL;
	struct svc_guest src = {0};
	json_t *r = NULL, *e = NULL, *m;
	long long id;
	int rc = -1, st;

	CHECK(svc_guest_start(&src, x->dir, "src", SVC_GUEST_RUN) == 0, "the source QEMU starts");
	CHECK(dest_start(x, "dst") == 0, "the destination and its receiver start");
	CHECK(svc_daemon_start(x->p, extra, &d) >= 0, "uffsnapd-test --service --key starts");
	CHECK(svc_connect(d.sock, &c) >= 0, "connect");
	CHECK(svc_pass_socket(c, src.sock, "qmp") == 0, "getfd");
	r = migrate(c, "qmp", x->listen);
	id = svc_job_id(r);
	CHECK(id > 0, "the migration job is created: %s", svc_desc_of(r));
	e = svc_wait_event(c, "JOB_CREATED", id);
	CHECK(e && member_int(e, "data", "pid") == src.pid, "JOB_CREATED names QEMU's pid");
	json_decref(e);
	e = svc_wait_event(c, "MIGRATION_ROUND", id);
	CHECK(e && member_int(e, "data", "round") == 0 && member_int(e, "data", "bytes") > 0,
	      "MIGRATION_ROUND 0 (the full copy)");
	json_decref(e);
	e = svc_wait_event(c, "JOB_COMPLETED", id);
	CHECK(e, "the migration job completes");
	m = json_object_get(json_object_get(e, "data"), "migration");
	CHECK(json_is_true(json_object_get(m, "switched")) &&
		  member_int(json_object_get(e, "data"), "stats", "bytes") > 0 &&
		  json_object_get(json_object_get(json_object_get(e, "data"), "stats"), "precopy"),
	      "JOB_COMPLETED carries the migration's stats");
	printf("migration: %lld rounds, stopped to completed %.3f ms, QEMU's downtime %lld ms\n",
	       (long long)member_int(json_object_get(json_object_get(e, "data"), "stats"),
				     "precopy", "rounds"),
	       json_integer_value(json_object_get(m, "stopped_to_completed_ns")) / 1e6,
	       (long long)json_integer_value(json_object_get(m, "qemu_downtime_ms")));
	CHECK(svc_guest_status_is(&src, "postmigrate"), "the source ends postmigrate");
	st = dest_stop(x, true); /* it exits once the destination runs */
	CHECK(st == 0, "the receiver exits 0 (%d): see %s", st, x->recv_err);
	CHECK(svc_guest_status_is(&x->dst, "running"), "the destination runs");
	json_decref(r);
	r = svc_call(c, "query-job", json_pack("{s:I}", "id", id), -1);
	CHECK(
	    !strcmp(json_string_value(json_object_get(json_object_get(r, "return"), "type")) ?: "",
		    "migrate") &&
		json_object_get(json_object_get(r, "return"), "migration"),
	    "query-job shows the migration");
	printf("ok: the guest migrated; the source is postmigrate, the destination ran\n");
	rc = 0;
fail:
	json_decref(r);
	json_decref(e);
	svc_conn_free(c);
	if (svc_daemon_stop(&d) != 0)
		rc = -1;
	dest_stop(x, false);
	svc_guest_kill(&x->dst);
	svc_guest_kill(&src);
	return rc;
}

/* `uffsnapctl migrate` (the summary) and `uffsnapctl job` (the migration) of that job. */
static int cli(struct mig_ctx *x, const char *uffsnapctl)
{
	const char *const extra[] = {"--key", x->key, NULL};
	struct svc_daemon d = {0};
	struct svc_guest src = {0};
	char out[300], err[300];
	int rc = -1, st;

	snprintf(out, sizeof(out), "%s/ctl.out", x->dir);
	snprintf(err, sizeof(err), "%s/ctl.err", x->dir);
	CHECK(svc_guest_start(&src, x->dir, "src", SVC_GUEST_RUN) == 0, "the source QEMU starts");
	CHECK(dest_start(x, "dst") == 0, "the destination and its receiver start");
	CHECK(svc_daemon_start(x->p, extra, &d) >= 0, "uffsnapd-test --service --key starts");
	{
		const char *argv[] = {uffsnapctl,     "--socket", d.sock, "migrate",
				      "--qemu",	      src.sock,	  "--to", x->listen,
				      "--max-rounds", "5",	  NULL};

		st = mig_wait_exit(mig_spawn(-1, argv, out, err, NULL));
	}
	CHECK(st == 0, "uffsnapctl migrate exits 0 (%d): see %s", st, err);
	CHECK(mig_wait_file(out, "migrated to") && mig_wait_file(err, ": round 0: "),
	      "its summary and its rounds");
	CHECK(svc_guest_status_is(&src, "postmigrate"), "the source ends postmigrate");
	CHECK(mig_wait_exit(x->recv) == 0, "the receiver exits 0: see %s", x->recv_err);
	x->recv = 0;
	CHECK(svc_guest_status_is(&x->dst, "running"), "the destination runs");
	{
		const char *argv[] = {uffsnapctl, "--socket", d.sock, "job", "1", NULL};

		st = mig_wait_exit(mig_spawn(-1, argv, out, err, NULL));
	}
	CHECK(st == 0 && mig_wait_file(out, "a migration of its guest") &&
		  mig_wait_file(out, "switched"),
	      "uffsnapctl job shows the migration: see %s", out);
	printf("ok: uffsnapctl migrate migrated the guest and summed it up\n");
	rc = 0;
fail:
	if (svc_daemon_stop(&d) != 0)
		rc = -1;
	dest_stop(x, false);
	svc_guest_kill(&x->dst);
	svc_guest_kill(&src);
	return rc;
}

/* Cancelled while paused at point: JOB_CANCELLED, the source runs as before. */
static int cancel_at(struct mig_ctx *x, const struct svc_guest *src, const char *point)
{
	const char *const extra[] = {"--key", x->key, NULL};
	char pausedir[300], spec[320], name[64];
	struct svc_daemon d = {0};
	struct svc_conn *c = NULL;
	json_t *r = NULL, *e = NULL;
	long long id;
	int rc = -1;

	snprintf(name, sizeof(name), "dst-%s", point);
	CHECK(dest_start(x, name) == 0, "the destination and its receiver start");
	snprintf(pausedir, sizeof(pausedir), "%s/pause-%s", x->dir, point);
	CHECK(mkdir(pausedir, 0700) == 0, "mkdir");
	snprintf(spec, sizeof(spec), "%s:%s", point, pausedir);
	setenv("UFFSNAPD_TEST_PAUSE", spec, 1);
	CHECK(svc_daemon_start(x->p, extra, &d) >= 0, "uffsnapd-test --service --key starts");
	CHECK(svc_connect(d.sock, &c) >= 0, "connect");
	CHECK(svc_pass_socket(c, src->sock, "qmp") == 0, "getfd");
	r = migrate(c, "qmp", x->listen);
	id = svc_job_id(r);
	CHECK(id > 0, "the job: %s", svc_desc_of(r));
	CHECK(snap_pause_wait(pausedir, point) == 0, "the job reaches %s", point);
	json_decref(r);
	r = svc_call(c, "snapshot", json_pack("{s:i, s:s}", "pid", src->pid, "file", "b.img"), -1);
	CHECK(!strcmp(svc_class(r), "Busy"), "a snapshot of QEMU's pid while it migrates: %s: %s",
	      svc_class(r), svc_desc_of(r));
	json_decref(r);
	r = svc_call(c, "cancel", json_pack("{s:I}", "id", id), -1);
	CHECK(!strcmp(svc_class(r), ""), "cancel: %s", svc_desc_of(r));
	snap_pause_go(pausedir);
	e = svc_wait_event(c, "JOB_CANCELLED", id);
	CHECK(e, "the job ends cancelled");
	CHECK(!json_is_true(json_object_get(
		  json_object_get(json_object_get(e, "data"), "migration"), "switched")),
	      "JOB_CANCELLED: not switched");
	json_decref(r);
	r = svc_call(c, "query-job", json_pack("{s:I}", "id", id), -1);
	CHECK(
	    !strcmp(json_string_value(json_object_get(json_object_get(r, "return"), "state")) ?: "",
		    "cancelled"),
	    "query-job: cancelled");
	printf("cancelled at %s: %s\n", point,
	       json_string_value(
		   json_object_get(json_object_get(json_object_get(r, "return"), "error"), "desc"))
		   ?: "(no desc)");
	CHECK(svc_guest_status_is(src, "running"), "cancelled at %s: the source runs on", point);
	CHECK(svc_guest_cap(src, "x-ignore-shared") == 0 && svc_guest_cap(src, "events") == 1 &&
		  svc_guest_cap(src, "pause-before-switchover") == 0,
	      "cancelled at %s: the migration capabilities changed", point);
	printf("ok: cancelled at %s: the source runs, its capabilities as they were\n", point);
	rc = 0;
fail:
	snap_pause_go(pausedir);
	json_decref(r);
	json_decref(e);
	svc_conn_free(c);
	if (svc_daemon_stop(&d) != 0)
		rc = -1;
	dest_stop(x, false);
	svc_guest_kill(&x->dst);
	snap_pause_clean(pausedir, point);
	unsetenv("UFFSNAPD_TEST_PAUSE");
	return rc;
}

static int cancel(struct mig_ctx *x)
{
	static const char *const points[] = {"round", "mig-switchover"};
	struct svc_guest src = {0};
	int rc = -1;

	CHECK(svc_guest_start(&src, x->dir, "src", SVC_GUEST_RUN) == 0, "the source QEMU starts");
	CHECK(svc_guest_set_events(&src) == 0, "set 'events' before");
	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++)
		CHECK(cancel_at(x, &src, points[i]) == 0, "cancel at %s", points[i]);
	rc = 0;
fail:
	svc_guest_kill(&src);
	return rc;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/uffsnap-svc-migrate-XXXXXX", cmd[128];
	struct svc_paths p;
	int i = svc_paths_parse(argc, argv, &p), rc;
	const char *scenario = i < argc ? argv[i] : "";
	struct mig_ctx x = {.p = &p, .dir = dir};

	if (access(SVC_QEMU, X_OK) < 0) {
		printf("SKIP: %s is not installed (./dev installs qemu-system-x86)\n", SVC_QEMU);
		return 77;
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root (ptrace of QEMU)\n");
		return 77;
	}
	if (!mkdtemp(dir))
		return printf("FAIL: mkdtemp: %m\n"), 1;
	if (write_key(&x) < 0)
		rc = (printf("FAIL: cannot write the key\n"), -1);
	else if (!strcmp(scenario, "refused"))
		rc = refused(&x);
	else if (!strcmp(scenario, "complete"))
		rc = complete(&x);
	else if (!strcmp(scenario, "cancel"))
		rc = cancel(&x);
	else if (!strcmp(scenario, "cli") && i + 1 < argc)
		rc = cli(&x, argv[i + 1]);
	else {
		printf("unknown scenario '%s'\n", scenario);
		rc = -1;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", dir);
	return rc == 0 ? 0 : 1;
}
