/* SPDX-License-Identifier: MIT */
/*
 * No user locks the others out (CONTROL.md "Limits"). Scenarios:
 *   users     nobody takes every connection and job it may (--max-user-clients 3,
 *             --max-user-jobs 2, its jobs stalled on pipes no one reads): its next connection
 *             and its next job are LimitExceeded, and root still connects and completes a
 *             snapshot meanwhile
 *   pressure  nobody holds every connection unprivileged users may have (--max-clients 6,
 *             4 of them reserved): root still gets in, and the connections it displaces are
 *             nobody's, the silent one first
 *   idle      a connection that sends no request is closed after --idle-timeout (with an
 *             error line); one that sent a request is kept
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snap-harness.h"
#include "svc-harness.h"
#include "test-check.h"

#define USER_CLIENTS 3
#define USER_JOBS    2

/* The nobody side of a scenario, and the pipes it talks to the root side with. */
struct hog {
	struct svc_daemon *d;
	pid_t wl[USER_JOBS + 1]; /* nobody's processes */
	int ready[2], done[2];
};

static bool refused_with(json_t *greeting, const char *class, const char *word)
{
	json_t *e = json_object_get(greeting, "error");
	const char *desc = json_string_value(json_object_get(e, "desc"));

	return !strcmp(svc_class(greeting), class) && desc && strstr(desc, word);
}

/* The next line from c is an error of class with word in it, and then c is closed. */
static bool closed_with(struct svc_conn *c, const char *class, const char *word)
{
	json_t *r = svc_read(c, SVC_T_TIMEOUT_MS), *eof = NULL;
	bool ok = refused_with(r, class, word) && !(eof = svc_read(c, SVC_T_TIMEOUT_MS));

	if (!ok)
		printf("FAIL: expected a %s error about '%s', then the end: %s\n", class, word,
		       svc_class(r));
	json_decref(r);
	json_decref(eof);
	return ok;
}

/* As nobody: every connection and job it may have, and one more of each refused. */
static int hog_users(struct hog *h)
{
	struct svc_conn *c[USER_CLIENTS + 1] = {0};
	int rd[USER_JOBS] = {-1, -1}, rc = -1;
	json_t *r = NULL;
	char name[16];
	char byte;

	for (int i = 0; i < USER_CLIENTS; i++) {
		CHECK(svc_connect(h->d->sock, &c[i]) >= 0 && !strcmp(svc_class(c[i]->greeting), "(none)"),
		      "nobody's connection %d", i + 1);
		json_decref(r);
		r = svc_call(c[i], "query-status", NULL, -1);
		CHECK(!strcmp(svc_class(r), ""), "query-status %d: %s", i + 1, svc_class(r));
	}
	CHECK(svc_connect(h->d->sock, &c[USER_CLIENTS]) >= 0 || c[USER_CLIENTS], "one more");
	CHECK(c[USER_CLIENTS] && refused_with(c[USER_CLIENTS]->greeting, "LimitExceeded",
					      "--max-user-clients"),
	      "nobody's connection %d is refused", USER_CLIENTS + 1);
	for (int i = 0; i < USER_JOBS; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		CHECK(svc_stalled_job(c[0], h->wl[i], name, &rd[i]) > 0, "nobody's job %d", i + 1);
	}
	json_decref(r);
	r = svc_call(c[0], "snapshot", json_pack("{s:i, s:s}", "pid", h->wl[USER_JOBS], "file", "n.img"),
		     -1);
	CHECK(refused_with(r, "LimitExceeded", "--max-user-jobs"), "nobody's job %d: %s",
	      USER_JOBS + 1, svc_class(r));
	printf("ok: nobody holds %d connections and %d jobs; one more of each is refused\n",
	       USER_CLIENTS, USER_JOBS);
	CHECK(write(h->ready[1], "r", 1) == 1, "tell root");
	CHECK(read(h->done[0], &byte, 1) == 1, "root done");
	rc = 0;
fail:
	json_decref(r);
	for (int i = 0; i < USER_JOBS; i++)
		if (rd[i] >= 0)
			close(rd[i]);
	for (int i = 0; i <= USER_CLIENTS; i++)
		svc_conn_free(c[i]);
	return rc;
}

/* As nobody: the 2 connections unprivileged users may have (one silent), then what root did. */
static int hog_pressure(struct hog *h)
{
	struct svc_conn *spoke = NULL, *silent = NULL, *extra = NULL;
	json_t *r = NULL;
	int rc = -1;
	char byte;

	CHECK(svc_connect(h->d->sock, &spoke) >= 0, "nobody connects");
	r = svc_call(spoke, "query-status", NULL, -1);
	CHECK(!strcmp(svc_class(r), ""), "query-status: %s", svc_class(r));
	CHECK(svc_connect(h->d->sock, &silent) >= 0, "nobody's silent connection");
	CHECK(svc_connect(h->d->sock, &extra) >= 0 || extra, "one more");
	CHECK(extra && refused_with(extra->greeting, "LimitExceeded", "too many clients"),
	      "nobody's third connection is refused");
	CHECK(write(h->ready[1], "r", 1) == 1, "tell root");
	CHECK(read(h->done[0], &byte, 1) == 1, "root done");
	/* root took 2 more than the 6: both of nobody's connections made room, silent first */
	CHECK(closed_with(silent, "LimitExceeded", "make room"), "the silent connection");
	CHECK(closed_with(spoke, "LimitExceeded", "make room"), "the other");
	printf("ok: root's connections displaced nobody's, the silent one first\n");
	rc = 0;
fail:
	json_decref(r);
	svc_conn_free(spoke);
	svc_conn_free(silent);
	svc_conn_free(extra);
	return rc;
}

static int (*g_hog)(struct hog *); /* for hog_main(): set by with_nobody() */

static int hog_main(void *ctx)
{
	return g_hog(ctx);
}

/* Runs hog() as nobody in a child; root_side() runs once it holds everything. */
static int with_nobody(struct hog *h, int (*hog)(struct hog *), int (*root_side)(struct hog *))
{
	int rc = -1;
	pid_t child;
	char byte;

	CHECK(chmod(h->d->dir, 0755) == 0 && chmod(h->d->sock, 0666) == 0, "chmod");
	CHECK(pipe2(h->ready, O_CLOEXEC) == 0 && pipe2(h->done, O_CLOEXEC) == 0, "pipes");
	g_hog = hog;
	child = svc_fork_nobody(hog_main, h);
	close(h->ready[1]); /* the child's: an early end is EOF here */
	close(h->done[0]);
	CHECK(child > 0, "fork");
	if (read(h->ready[0], &byte, 1) == 1)
		rc = root_side(h);
	else
		printf("FAIL: the nobody side stopped early\n");
	if (write(h->done[1], "d", 1) != 1)
		rc = -1;
	if (svc_wait_child(child) < 0)
		rc = -1;
fail:
	return rc;
}

static const struct svc_paths *g_paths; /* for the root sides: set once in main() */

/* While nobody holds all it may: root connects and completes a snapshot of nobody's process. */
static int root_users(struct hog *h)
{
	struct svc_conn *c = NULL;
	char img[256], lay[256];
	json_t *e = NULL;
	long long id;
	int rc = -1;

	snprintf(img, sizeof(img), "%s/root.img", h->d->snapdir);
	CHECK(svc_connect(h->d->sock, &c) >= 0 && !strcmp(svc_class(c->greeting), "(none)"),
	      "root connects: %s", c ? svc_class(c->greeting) : "no connection");
	id = svc_snapshot(c, h->wl[USER_JOBS], "file", "root.img");
	CHECK(id > 0, "root's job");
	e = svc_wait_event(c, "JOB_COMPLETED", id);
	CHECK(e, "root's job completed");
	snprintf(lay, sizeof(lay), "%s/w%d.layout", h->d->dir, USER_JOBS);
	CHECK(wl_run_check(g_paths->check, img, lay) == 0, "root's image is one instant");
	printf("ok: root connects and completes a snapshot while nobody holds all it may\n");
	rc = 0;
fail:
	json_decref(e);
	svc_conn_free(c);
	return rc;
}

static int root_pressure(struct hog *h)
{
	struct svc_conn *c[6] = {0};
	json_t *r = NULL;
	int rc = -1;

	/* nobody has 2 of the 6: the last 2 of these 6 must displace them */
	for (int i = 0; i < 6; i++)
		CHECK(svc_connect(h->d->sock, &c[i]) >= 0 && !strcmp(svc_class(c[i]->greeting), "(none)"),
		      "root's connection %d: %s", i + 1, c[i] ? svc_class(c[i]->greeting) : "none");
	r = svc_call(c[5], "query-status", NULL, -1);
	CHECK(!strcmp(svc_class(r), ""), "root's query-status: %s", svc_class(r));
	printf("ok: root's 6 connections are served with the total at its limit\n");
	rc = 0;
fail:
	json_decref(r);
	for (int i = 0; i < 6; i++)
		svc_conn_free(c[i]);
	return rc;
}

static int idle(struct svc_daemon *d)
{
	struct svc_conn *spoke = NULL, *silent = NULL;
	json_t *r = NULL;
	int rc = -1;

	CHECK(svc_connect(d->sock, &spoke) >= 0, "connect");
	r = svc_call(spoke, "query-status", NULL, -1);
	CHECK(!strcmp(svc_class(r), ""), "query-status: %s", svc_class(r));
	CHECK(svc_connect(d->sock, &silent) >= 0, "connect a silent one");
	CHECK(closed_with(silent, "GenericError", "no request within"), "the silent one");
	/* connected before the silent one, so idle longer than the timeout too: still served */
	json_decref(r);
	r = svc_call(spoke, "query-status", NULL, -1);
	CHECK(!strcmp(svc_class(r), ""), "the one that spoke: %s", svc_class(r));
	printf("ok: a silent connection is closed after --idle-timeout; one that spoke is kept\n");
	rc = 0;
fail:
	json_decref(r);
	svc_conn_free(spoke);
	svc_conn_free(silent);
	return rc;
}

static int users(const struct svc_paths *p, struct svc_daemon *d)
{
	static const char *const args[] = {"--threads", "1", "--pages", "512", "--as-user",
					   "nobody", NULL};
	struct wl_proc *w[USER_JOBS + 1] = {0};
	struct hog h = {.d = d};
	char lay[256];
	int rc = -1;

	for (int i = 0; i <= USER_JOBS; i++) {
		snprintf(lay, sizeof(lay), "%s/w%d.layout", d->dir, i);
		CHECK(svc_workload(p, args, lay, &w[i]) >= 0, "nobody's workload %d", i);
		CHECK(chmod(lay, 0644) == 0, "chmod layout");
		h.wl[i] = w[i]->pid;
	}
	rc = with_nobody(&h, hog_users, root_users);
	for (int i = 0; i <= USER_JOBS; i++)
		CHECK(snap_target_unharmed(w[i]) == 0, "target %d harmed", i);
fail:
	for (int i = 0; i <= USER_JOBS; i++)
		wl_proc_free(w[i]);
	return rc;
}

int main(int argc, char **argv)
{
	static const char *const users_opts[] = {"--max-clients", "8", "--max-user-clients", "3",
						 "--max-jobs", "4", "--max-user-jobs", "2", NULL};
	static const char *const pressure_opts[] = {"--max-clients", "6", NULL};
	static const char *const idle_opts[] = {"--idle-timeout", "1", NULL};
	struct svc_paths p;
	int i = svc_paths_parse(argc, argv, &p), r = -1, st;
	const char *what = i < argc ? argv[i] : "";
	struct svc_daemon d = {0};
	struct hog h = {.d = &d};

	g_paths = &p;
	if (getuid() != 0) {
		printf("SKIP: needs root (switches to nobody; the daemon ptraces)\n");
		return 77;
	}
	if (svc_daemon_start(&p,
			     !strcmp(what, "users")	 ? users_opts
			     : !strcmp(what, "pressure") ? pressure_opts
							 : idle_opts,
			     &d) < 0) {
		printf("FAIL: cannot start uffsnapd --service\n");
		svc_daemon_stop(&d);
		return 1;
	}
	if (!strcmp(what, "users"))
		r = users(&p, &d);
	else if (!strcmp(what, "pressure"))
		r = with_nobody(&h, hog_pressure, root_pressure);
	else if (!strcmp(what, "idle"))
		r = idle(&d);
	else
		fprintf(stderr, "unknown scenario '%s'\n", what);
	st = svc_daemon_stop(&d);
	if (st != 0)
		printf("FAIL: uffsnapd exited %d on SIGTERM (want 0)\n", st);
	return r == 0 && st == 0 ? 0 : 1;
}
