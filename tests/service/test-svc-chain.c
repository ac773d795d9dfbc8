/* SPDX-License-Identifier: MIT */
/*
 * Pre-copy snapshots and incremental chains as jobs of a real `uffsnapd --service`, on the
 * predictable-store workload. Scenarios (argv after the paths, then UFFSNAPCTL):
 *   complete     per memory kind (KINDS, a comma list; default anon,shm,memfd,filepriv),
 *                a chain of 3 images every 1 s: CHAIN_IMAGE x3 (index, file,
 *                parent) then JOB_COMPLETED with images=3; every image verifies, is its
 *                parent's child, and flattened through the chain is one instant (uffsnap-check);
 *                the files are the client's (its uid and gid, mode 0600) and nothing else is
 *                in the directory; the target unharmed
 *   cancel       a chain until cancelled, cancelled after its 2nd CHAIN_IMAGE: JOB_CANCELLED;
 *                exactly the images it announced stay, complete, and no other file
 *   target-exit  the target is killed between two images: JOB_FAILED, TargetError; the first
 *                image stays
 *   args         InvalidParameter for every wrong combination and range, and for names in
 *                use; nothing is created, the target runs on unharmed
 *   precopy      a pre-copy job: its stats have the precopy object; the image is one instant
 */
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snap-harness.h"
#include "svc-harness.h"
#include "test-check.h"
#include "uffsnap/chain.h"

#define CHAIN_IMAGES 3

static const char *uffsnapctl;

static bool is_end(const char *name)
{
	return !strcmp(name, "JOB_COMPLETED") || !strcmp(name, "JOB_FAILED") ||
	       !strcmp(name, "JOB_CANCELLED");
}

/* Job id's next CHAIN_IMAGE or end event, in the order the daemon sent them. */
static json_t *next_chain_event(struct svc_conn *c, long long id)
{
	size_t i;
	json_t *e;

	for (i = 0; i < json_array_size(c->events); i++) {
		const char *name;

		e = json_array_get(c->events, i);
		name = json_string_value(json_object_get(e, "event")) ?: "";
		if (json_integer_value(json_object_get(json_object_get(e, "data"), "id")) == id &&
		    (!strcmp(name, "CHAIN_IMAGE") || is_end(name))) {
			json_incref(e);
			json_array_remove(c->events, i);
			return e;
		}
	}
	while ((e = svc_read(c, SVC_T_TIMEOUT_MS))) {
		const char *name = json_string_value(json_object_get(e, "event")) ?: "";

		if (json_integer_value(json_object_get(json_object_get(e, "data"), "id")) == id &&
		    (!strcmp(name, "CHAIN_IMAGE") || is_end(name)))
			return e;
		json_array_append_new(c->events, e);
	}
	return NULL;
}

static const char *event_name(const json_t *e)
{
	return json_string_value(json_object_get(e, "event")) ?: "";
}

/*
 * One CHAIN_IMAGE: index i, file PREFIX-000i.img, its parent the file before (null for 0),
 * its bytes and stats (with the precopy object).
 */
static int chain_image_ok(const json_t *e, const char *prefix, int i, char *prev)
{
	const json_t *d = json_object_get(e, "data"), *parent = json_object_get(d, "parent");
	char want[300];

	snprintf(want, sizeof(want), "%s-%04d.img", prefix, i);
	CHECK(json_integer_value(json_object_get(d, "index")) == i, "CHAIN_IMAGE index, want %d",
	      i);
	CHECK(!strcmp(json_string_value(json_object_get(d, "file")) ?: "", want),
	      "CHAIN_IMAGE file, want %s", want);
	CHECK(i ? !strcmp(json_string_value(parent) ?: "", prev) : json_is_null(parent),
	      "CHAIN_IMAGE %d's parent, want %s", i, i ? prev : "null");
	CHECK(json_integer_value(json_object_get(d, "bytes")) > 0, "CHAIN_IMAGE bytes");
	CHECK(json_object_get(json_object_get(d, "stats"), "precopy"), "CHAIN_IMAGE stats.precopy");
	snprintf(prev, 300, "%s", want);
	return 0;
fail:
	return -1;
}

/* Image index i of a chain: the client's, i links deep, exact through its chain. */
static int image_ok(const struct svc_paths *p, const char *path, int i, const char *layout,
		    gid_t gid)
{
	struct img_chain *ch = NULL;
	struct img_error e;
	struct stat st;
	int rc = -1;

	CHECK(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	CHECK(st.st_uid == getuid() && st.st_gid == gid && (st.st_mode & 07777) == 0600,
	      "%s is %u:%u mode %o, want the client's %u:%u 0600", path, st.st_uid, st.st_gid,
	      st.st_mode & 07777, getuid(), gid);
	CHECK(img_chain_open(path, NULL, &ch, &e) >= 0, "%s: chain: %s", path, e.msg);
	CHECK(img_chain_depth(ch) == (size_t)i + 1, "%s: a chain of %zu images, want %d", path,
	      img_chain_depth(ch), i + 1);
	CHECK(snap_chain_image_ok(uffsnapctl, p->check, path, layout) == 0, "%s", path);
	rc = 0;
fail:
	img_chain_free(ch);
	return rc;
}

/* Regular files in dir (the test's own ".flat" excepted: removed as they are made). */
static int files_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return d ? n : -1;
}

static gid_t nobody_gid(void)
{
	struct passwd *pw = getpwnam("nobody");

	return pw ? pw->pw_gid : 65534;
}

/*
 * Connects as uid 0 with nobody's gid (SO_PEERCRED records the credentials of connect()), so
 * that "given to the client" is seen: the daemon's own files would be root:root.
 */
static int connect_as_client(struct svc_daemon *d, gid_t gid, struct svc_conn **ret)
{
	int r;

	if (setegid(gid) < 0)
		return -errno;
	r = svc_connect(d->sock, ret);
	if (setegid(0) < 0)
		return -errno;
	return r;
}

static long long start_chain(struct svc_conn *c, pid_t pid, const char *prefix, int every,
			     int count)
{
	json_t *r = svc_call(c, "snapshot",
			     json_pack("{s:i, s:s, s:b, s:i, s:i}", "pid", pid, "file", prefix,
				       "incremental", 1, "every", every, "count", count),
			     -1);
	long long id = json_integer_value(json_object_get(json_object_get(r, "return"), "id"));

	if (id <= 0) {
		char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;

		printf("chain of pid %d: %s\n", pid, s ? s : "no reply");
		free(s);
	}
	json_decref(r);
	return id > 0 ? id : -1;
}

static json_t *query_job(struct svc_conn *c, long long id)
{
	json_t *r = svc_call(c, "query-job", json_pack("{s:I}", "id", id), -1);
	json_t *o = json_incref(json_object_get(r, "return"));

	json_decref(r);
	return o;
}

static int chain_complete(const struct svc_paths *p, struct svc_daemon *d, const char *kind)
{
	const char *args[] = {"--threads", "2",	       "--kind", kind, "--pages",
			      "256",	   "--events", "all",	 NULL};
	char lay[256], prefix[64], prev[300] = "", path[512];
	gid_t gid = nobody_gid();
	struct wl_proc *w = NULL;
	struct svc_conn *c = NULL;
	json_t *e = NULL, *q = NULL, *ch;
	long long id;
	int rc = -1;

	snprintf(lay, sizeof(lay), "%s/%s.layout", d->dir, kind);
	snprintf(prefix, sizeof(prefix), "chain-%s", kind);
	CHECK(svc_workload(p, args, lay, &w) >= 0, "workload (%s)", kind);
	CHECK(connect_as_client(d, gid, &c) >= 0, "connect");
	id = start_chain(c, w->pid, prefix, 1, CHAIN_IMAGES);
	CHECK(id > 0, "chain job started");
	for (int i = 0; i < CHAIN_IMAGES; i++) {
		e = next_chain_event(c, id);
		CHECK(e && !strcmp(event_name(e), "CHAIN_IMAGE"), "CHAIN_IMAGE %d, got %s", i,
		      e ? event_name(e) : "nothing");
		CHECK(chain_image_ok(e, prefix, i, prev) == 0, "CHAIN_IMAGE %d", i);
		json_decref(e);
		e = NULL;
	}
	e = next_chain_event(c, id);
	CHECK(e && !strcmp(event_name(e), "JOB_COMPLETED"), "JOB_COMPLETED, got %s",
	      e ? event_name(e) : "nothing");
	CHECK(json_integer_value(json_object_get(json_object_get(e, "data"), "images")) ==
		  CHAIN_IMAGES,
	      "JOB_COMPLETED images");
	CHECK(json_object_get(json_object_get(json_object_get(e, "data"), "stats"), "precopy"),
	      "JOB_COMPLETED stats.precopy");
	q = query_job(c, id);
	ch = json_object_get(q, "chain");
	CHECK(json_integer_value(json_object_get(ch, "every")) == 1 &&
		  json_integer_value(json_object_get(ch, "count")) == CHAIN_IMAGES &&
		  json_integer_value(json_object_get(ch, "images")) == CHAIN_IMAGES &&
		  !strcmp(json_string_value(json_object_get(ch, "last")) ?: "", prev),
	      "query-job's chain");
	for (int i = 0; i < CHAIN_IMAGES; i++) {
		snprintf(path, sizeof(path), "%s/%s-%04d.img", d->snapdir, prefix, i);
		CHECK(image_ok(p, path, i, lay, gid) == 0, "image %d (%s)", i, kind);
	}
	CHECK(files_in(d->snapdir) == CHAIN_IMAGES, "%d files in the snapshot directory, want %d",
	      files_in(d->snapdir), CHAIN_IMAGES);
	CHECK(snap_target_unharmed(w) == 0, "target harmed (%s)", kind);
	printf("ok %s: %d images, each exact through its chain, the client's\n", kind,
	       CHAIN_IMAGES);
	for (int i = 0; i < CHAIN_IMAGES; i++) { /* the next kind counts its own */
		snprintf(path, sizeof(path), "%s/%s-%04d.img", d->snapdir, prefix, i);
		unlink(path);
	}
	rc = 0;
fail:
	json_decref(e);
	json_decref(q);
	svc_conn_free(c);
	wl_proc_free(w);
	return rc;
}

static int complete(const struct svc_paths *p, struct svc_daemon *d, const char *kinds)
{
	char *list = strdup(kinds ? kinds : "anon,shm,memfd,filepriv"), *kind, *save;
	int failed = 0, ran = 0;

	for (kind = strtok_r(list, ",", &save); kind; kind = strtok_r(NULL, ",", &save), ran++)
		failed += chain_complete(p, d, kind) != 0;
	free(list);
	return failed || !ran ? -1 : 0;
}

/* Every image the chain announced stays, complete; nothing else is in the directory. */
static int images_stay(const struct svc_paths *p, struct svc_daemon *d, const char *prefix,
		       int images, const char *lay)
{
	char path[512];

	for (int i = 0; i < images; i++) {
		snprintf(path, sizeof(path), "%s/%s-%04d.img", d->snapdir, prefix, i);
		CHECK(image_ok(p, path, i, lay, getgid()) == 0, "image %d", i);
	}
	CHECK(files_in(d->snapdir) == images, "%d files in the snapshot directory, want %d",
	      files_in(d->snapdir), images);
	return 0;
fail:
	return -1;
}

static int cancel(const struct svc_paths *p, struct svc_daemon *d)
{
	static const char *const args[] = {"--threads", "2", "--pages", "256", NULL};
	char lay[256], prev[300] = "";
	struct wl_proc *w = NULL;
	struct svc_conn *c = NULL;
	json_t *e = NULL, *r = NULL, *q = NULL;
	int images = 0, rc = -1;
	long long id;

	snprintf(lay, sizeof(lay), "%s/w.layout", d->dir);
	CHECK(svc_workload(p, args, lay, &w) >= 0, "workload");
	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	id = start_chain(c, w->pid, "until", 1, 0);
	CHECK(id > 0, "chain job started");
	for (; images < 2; images++) {
		e = next_chain_event(c, id);
		CHECK(e && !strcmp(event_name(e), "CHAIN_IMAGE"), "CHAIN_IMAGE %d", images);
		CHECK(chain_image_ok(e, "until", images, prev) == 0, "CHAIN_IMAGE %d", images);
		json_decref(e);
		e = NULL;
	}
	r = svc_call(c, "cancel", json_pack("{s:I}", "id", id), -1);
	CHECK(!strcmp(svc_class(r), ""), "cancel: %s", svc_class(r));
	/* On a loaded machine the next image may have begun, or even completed, first. */
	while ((e = next_chain_event(c, id)) && !strcmp(event_name(e), "CHAIN_IMAGE")) {
		CHECK(chain_image_ok(e, "until", images, prev) == 0, "CHAIN_IMAGE %d", images);
		images++;
		json_decref(e);
	}
	CHECK(e && !strcmp(event_name(e), "JOB_CANCELLED"), "JOB_CANCELLED, got %s",
	      e ? event_name(e) : "nothing");
	q = query_job(c, id);
	CHECK(!strcmp(json_string_value(json_object_get(q, "state")) ?: "", "cancelled"),
	      "state cancelled");
	CHECK(json_integer_value(json_object_get(json_object_get(q, "chain"), "images")) == images,
	      "query-job: chain.images, want %d", images);
	CHECK(images_stay(p, d, "until", images, lay) == 0, "after the cancel");
	CHECK(snap_target_released(w->pid) == 0, "the target is not released");
	CHECK(snap_target_unharmed(w) == 0, "target harmed");
	printf("ok: cancelled after %d images: they stay, complete; nothing else\n", images);
	rc = 0;
fail:
	json_decref(e);
	json_decref(r);
	json_decref(q);
	svc_conn_free(c);
	wl_proc_free(w);
	return rc;
}

static int target_exit(const struct svc_paths *p, struct svc_daemon *d)
{
	static const char *const args[] = {"--threads", "2", "--pages", "256", NULL};
	char lay[256], prev[300] = "", want[64];
	struct wl_proc *w = NULL;
	struct svc_conn *c = NULL;
	json_t *e = NULL;
	const char *class, *desc;
	int rc = -1;
	long long id;

	snprintf(lay, sizeof(lay), "%s/w.layout", d->dir);
	CHECK(svc_workload(p, args, lay, &w) >= 0, "workload");
	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	id = start_chain(c, w->pid, "gone", 3600, 0);
	CHECK(id > 0, "chain job started");
	e = next_chain_event(c, id);
	CHECK(e && !strcmp(event_name(e), "CHAIN_IMAGE"), "the first CHAIN_IMAGE");
	CHECK(chain_image_ok(e, "gone", 0, prev) == 0, "CHAIN_IMAGE 0");
	json_decref(e);
	CHECK(images_stay(p, d, "gone", 1, lay) == 0, "the first image"); /* before it goes */
	kill(w->pid, SIGKILL);
	/* The next image is an hour away: the job must end now, on the process events. */
	e = next_chain_event(c, id);
	CHECK(e && !strcmp(event_name(e), "JOB_FAILED"), "JOB_FAILED, got %s",
	      e ? event_name(e) : "nothing");
	class = json_string_value(json_object_get(json_object_get(e, "data"), "class")) ?: "";
	desc = json_string_value(json_object_get(json_object_get(e, "data"), "desc")) ?: "";
	printf("JOB_FAILED: %s: %s\n", class, desc);
	snprintf(want, sizeof(want), "pid %d exited", w->pid);
	CHECK(!strcmp(class, "TargetError") && strstr(desc, want), "TargetError, says it exited");
	CHECK(files_in(d->snapdir) == 1, "the first image stays, nothing else");
	printf("ok: target exit between two images -> JOB_FAILED TargetError, image 0 stays\n");
	rc = 0;
fail:
	json_decref(e);
	svc_conn_free(c);
	wl_proc_free(w);
	return rc;
}

/* args (taken over) with pid: want InvalidParameter. */
static int refused(struct svc_conn *c, pid_t pid, json_t *args, const char *what)
{
	json_t *r;
	bool ok;

	if (!json_object_get(args, "qemu"))
		json_object_set_new(args, "pid", json_integer(pid));
	r = svc_call(c, "snapshot", args, -1);
	ok = !strcmp(svc_class(r), "InvalidParameter");
	printf("%s %s: %s: %s\n", ok ? "ok" : "FAIL", what, svc_class(r),
	       json_string_value(json_object_get(json_object_get(r, "error"), "desc")) ?: "");
	json_decref(r);
	return ok ? 0 : -1;
}

static int args(const struct svc_paths *p, struct svc_daemon *d)
{
	static const char *const wargs[] = {"--threads", "2", "--pages", "256", NULL};
	char lay[256], lay2[256], path[512], longp[260];
	struct wl_proc *w = NULL, *w2 = NULL;
	struct svc_conn *c = NULL;
	json_t *r = NULL;
	int failed = 0, rc = -1;
	long long id = -1;
	pid_t pid;

	memset(longp, 'p', 247);
	longp[247] = '\0'; /* + "-0000.img": 256 bytes */
	snprintf(lay, sizeof(lay), "%s/w.layout", d->dir);
	snprintf(lay2, sizeof(lay2), "%s/w2.layout", d->dir);
	CHECK(svc_workload(p, wargs, lay, &w) >= 0, "workload");
	CHECK(svc_workload(p, wargs, lay2, &w2) >= 0, "workload 2");
	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	pid = w->pid;
#define NO(what, ...) (failed += refused(c, pid, json_pack(__VA_ARGS__), what) < 0)
	NO("incremental without every", "{s:s, s:b}", "file", "a", "incremental", 1);
	NO("every without incremental", "{s:s, s:i}", "file", "a.img", "every", 1);
	NO("count without incremental", "{s:s, s:i}", "file", "a.img", "count", 2);
	NO("every with incremental false", "{s:s, s:b, s:i}", "file", "a", "incremental", 0,
	   "every", 1);
	NO("incremental with fd", "{s:s, s:b, s:i}", "fd", "x", "incremental", 1, "every", 1);
	NO("incremental with to", "{s:s, s:b, s:i}", "to", "127.0.0.1:1", "incremental", 1, "every",
	   1);
	NO("incremental with qemu", "{s:s, s:s, s:b, s:i}", "qemu", "q", "file", "a", "incremental",
	   1, "every", 1);
	NO("every 0", "{s:s, s:b, s:i}", "file", "a", "incremental", 1, "every", 0);
	NO("every 86401", "{s:s, s:b, s:i}", "file", "a", "incremental", 1, "every", 86401);
	NO("count -1", "{s:s, s:b, s:i, s:i}", "file", "a", "incremental", 1, "every", 1, "count",
	   -1);
	NO("count 1000001", "{s:s, s:b, s:i, s:i}", "file", "a", "incremental", 1, "every", 1,
	   "count", 1000001);
	NO("every as a string", "{s:s, s:b, s:s}", "file", "a", "incremental", 1, "every", "1");
	NO("incremental with mem-limit", "{s:s, s:b, s:i, s:i}", "file", "a", "incremental", 1,
	   "every", 1, "mem-limit", 8);
	NO("incremental with copy-threads", "{s:s, s:b, s:i, s:i}", "file", "a", "incremental", 1,
	   "every", 1, "copy-threads", 2);
	NO("downtime without precopy", "{s:s, s:i}", "file", "a.img", "downtime", 50);
	NO("max-rounds without precopy", "{s:s, s:i}", "file", "a.img", "max-rounds", 5);
	NO("strict-downtime without precopy", "{s:s, s:b}", "file", "a.img", "strict-downtime", 1);
	NO("downtime with precopy false", "{s:s, s:b, s:i}", "file", "a.img", "precopy", 0,
	   "downtime", 50);
	NO("downtime 0", "{s:s, s:b, s:i}", "file", "a.img", "precopy", 1, "downtime", 0);
	NO("downtime 60001", "{s:s, s:b, s:i}", "file", "a.img", "precopy", 1, "downtime", 60001);
	NO("max-rounds 0", "{s:s, s:b, s:i}", "file", "a.img", "precopy", 1, "max-rounds", 0);
	NO("max-rounds 64", "{s:s, s:b, s:i}", "file", "a.img", "precopy", 1, "max-rounds", 64);
	NO("precopy with qemu", "{s:s, s:s, s:b}", "qemu", "q", "file", "a.img", "precopy", 1);
	NO("a prefix too long", "{s:s, s:b, s:i}", "file", longp, "incremental", 1, "every", 1);
	snprintf(path, sizeof(path), "%s/taken-0000.img", d->snapdir);
	CHECK(wl_write_file(path, "x") >= 0, "create %s", path);
	NO("a prefix whose first image exists", "{s:s, s:b, s:i}", "file", "taken", "incremental",
	   1, "every", 1);
	/* A running chain's names, on another target: its prefix, and a later image's name. */
	id = start_chain(c, w2->pid, "busy", 3600, 0);
	CHECK(id > 0, "a chain job started");
	NO("a running chain's prefix", "{s:s, s:b, s:i}", "file", "busy", "incremental", 1, "every",
	   1);
	NO("a running chain's later image", "{s:s}", "file", "busy-0007.img");
#undef NO
	r = svc_call(c, "cancel", json_pack("{s:I}", "id", id), -1);
	json_decref(r);
	r = svc_wait_event(c, "JOB_CANCELLED", id);
	CHECK(r, "the chain job cancelled");
	/* busy-0000.img may or may not have been taken before the cancel */
	snprintf(path, sizeof(path), "%s/busy-0000.img", d->snapdir);
	unlink(path);
	CHECK(files_in(d->snapdir) == 1, "the refused requests created nothing");
	CHECK(snap_target_unharmed(w) == 0 && snap_target_unharmed(w2) == 0, "targets harmed");
	CHECK(!failed, "%d requests were not refused as they should be", failed);
	printf("ok: argument errors are InvalidParameter and create nothing\n");
	rc = 0;
fail:
	json_decref(r);
	svc_conn_free(c);
	wl_proc_free(w);
	wl_proc_free(w2);
	return rc;
}

static int precopy(const struct svc_paths *p, struct svc_daemon *d)
{
	static const char *const wargs[] = {"--threads", "2",	"--pages", "1024",
					    "--events",	 "all", NULL};
	char lay[256], img[256];
	struct wl_proc *w = NULL;
	struct svc_conn *c = NULL;
	json_t *r = NULL, *e = NULL, *q = NULL;
	long long id;
	int rc = -1;

	snprintf(lay, sizeof(lay), "%s/w.layout", d->dir);
	snprintf(img, sizeof(img), "%s/pre.img", d->snapdir);
	CHECK(svc_workload(p, wargs, lay, &w) >= 0, "workload");
	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	r = svc_call(c, "snapshot",
		     json_pack("{s:i, s:s, s:b, s:i, s:i}", "pid", w->pid, "file", "pre.img",
			       "precopy", 1, "downtime", 50, "max-rounds", 5),
		     -1);
	id = json_integer_value(json_object_get(json_object_get(r, "return"), "id"));
	CHECK(id > 0, "precopy job: %s", svc_class(r));
	e = svc_wait_event(c, "JOB_COMPLETED", id);
	CHECK(e, "JOB_COMPLETED");
	CHECK(json_object_get(json_object_get(json_object_get(e, "data"), "stats"), "precopy"),
	      "JOB_COMPLETED: stats.precopy");
	q = query_job(c, id);
	CHECK(json_object_get(json_object_get(q, "stats"), "precopy"), "query-job: stats.precopy");
	CHECK(!json_object_get(q, "chain"), "a single snapshot has no chain");
	CHECK(wl_run_check(p->check, img, lay) == 0, "the pre-copy image is not one instant");
	CHECK(snap_target_unharmed(w) == 0, "target harmed");
	printf("ok: pre-copy job complete, stats.precopy, image exact\n");
	rc = 0;
fail:
	json_decref(r);
	json_decref(e);
	json_decref(q);
	svc_conn_free(c);
	wl_proc_free(w);
	return rc;
}

int main(int argc, char **argv)
{
	struct svc_paths p;
	int i = svc_paths_parse(argc, argv, &p), r = -1, st;
	struct svc_daemon d = {0};
	const char *what;

	if (getuid() != 0) {
		printf("SKIP: needs root (the daemon ptraces, opens /dev/userfaultfd)\n");
		return 77;
	}
	if (i + 2 != argc && i + 3 != argc) {
		fprintf(stderr, "usage: %s UFFSNAPD WORKLOAD CHECK SCENARIO UFFSNAPCTL [KINDS]\n",
			argv[0]);
		return 2;
	}
	what = argv[i];
	uffsnapctl = argv[i + 1];
	if (svc_daemon_start(&p, NULL, &d) < 0) {
		printf("FAIL: cannot start uffsnapd --service\n");
		svc_daemon_stop(&d);
		return 1;
	}
	if (!strcmp(what, "complete"))
		r = complete(&p, &d, i + 3 == argc ? argv[i + 2] : NULL);
	else if (!strcmp(what, "cancel"))
		r = cancel(&p, &d);
	else if (!strcmp(what, "target-exit"))
		r = target_exit(&p, &d);
	else if (!strcmp(what, "args"))
		r = args(&p, &d);
	else if (!strcmp(what, "precopy"))
		r = precopy(&p, &d);
	else
		fprintf(stderr, "unknown scenario '%s'\n", what);
	st = svc_daemon_stop(&d);
	if (st != 0)
		printf("FAIL: uffsnapd exited %d on SIGTERM (want 0)\n", st);
	return r == 0 && st == 0 ? 0 : 1;
}
