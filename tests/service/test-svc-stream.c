/* SPDX-License-Identifier: MIT */
/*
 * Streaming in service mode, with a real `uffsnapd --service --key FILE` and real receivers on
 * the loopback, snapshotting the predictable-store workload. Scenarios (argv after the paths):
 *   to-oneshot   'snapshot' with "to" a one-shot `uffsnapd --receive`: JOB_COMPLETED with the
 *                stream's counters, the received image is exactly one instant, target unharmed
 *   receive-job  a 'receive' job of the same daemon, and a 'snapshot' "to" it: IMAGE_RECEIVED,
 *                query-job shows the stream, the image in received/ is one instant; 'cancel'
 *                stops the receiver (JOB_CANCELLED)
 *   refused      a client that is neither root nor the daemon's user may not start 'receive'
 *                (PermissionDenied); without --key, "to" and 'receive' are refused; malformed
 *                HOST:PORT and two outputs at once are InvalidParameter
 */
#include <dirent.h>
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
#include <time.h>
#include <unistd.h>

#include "snap-harness.h"
#include "svc-harness.h"
#include "test-check.h"

static const char *const wl_args[] = {"--threads", "2", "--pages", "2048", NULL};

struct ctx {
	const struct svc_paths *p;
	struct svc_daemon d;
	char dir[64]; /* the key, the one-shot receiver's directory and log */
	char key[128];
	pid_t recv;
};

static int write_key(struct ctx *x)
{
	char cmd[512];

	snprintf(x->key, sizeof(x->key), "%s/key", x->dir);
	snprintf(cmd, sizeof(cmd),
		 "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > %s && chmod 600 %s",
		 x->key, x->key);
	return system(cmd) == 0 ? 0 : -1;
}

/* The one image (*.img) in dir, or -1. */
static int one_image(const char *dir, char *ret, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (l > 4 && !strcmp(e->d_name + l - 4, ".img") && n++ == 0)
			snprintf(ret, len, "%s/%s", dir, e->d_name);
	}
	if (d)
		closedir(d);
	return n == 1 ? 0 : (printf("%d images in %s, want 1\n", n, dir), -1);
}

/* `uffsnapd --receive` on 127.0.0.1, any port; its address from its log ("receiving on"). */
static int start_receiver(struct ctx *x, char *addr, size_t len)
{
	char dir[128], log[128], line[512];
	pid_t parent = getpid();

	snprintf(dir, sizeof(dir), "%s/in", x->dir);
	snprintf(log, sizeof(log), "%s/recv.log", x->dir);
	mkdir(dir, 0700);
	x->recv = fork();
	if (x->recv == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent || fd < 0 ||
		    dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		execl(x->p->uffsnapd, x->p->uffsnapd, "--receive", "--listen", "127.0.0.1:0",
		      "--dir", dir, "--key", x->key, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < SVC_T_TIMEOUT_MS / 20; i++) {
		FILE *f = fopen(log, "re");

		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "uffsnapd: receiving on %63s", addr) == 1) {
				fclose(f);
				return len > 64 ? 0 : -1;
			}
		if (f)
			fclose(f);
		test_sleep_ms(20);
	}
	return -1;
}

static int stream_complete(json_t *stream)
{
	json_int_t acked = json_integer_value(json_object_get(stream, "acked"));

	CHECK(json_is_true(json_object_get(stream, "complete")), "stream not complete");
	CHECK(acked > 0 && acked == json_integer_value(json_object_get(stream, "accepted")),
	      "acked %lld of %lld", (long long)acked,
	      (long long)json_integer_value(json_object_get(stream, "accepted")));
	return 0;
fail:
	return -1;
}

/* snapshot {pid, to}: JOB_COMPLETED with the stream's counters; query-job shows them too. */
static int snapshot_to(struct svc_conn *c, pid_t pid, const char *to)
{
	json_t *e = NULL, *q = NULL, *ret;
	long long id = svc_snapshot(c, pid, "to", to);
	int rc = -1;

	CHECK(id > 0, "snapshot to %s", to);
	e = svc_wait_event(c, "JOB_COMPLETED", id);
	CHECK(e, "JOB_COMPLETED of job %lld", id);
	CHECK(stream_complete(json_object_get(json_object_get(e, "data"), "stream")) == 0,
	      "JOB_COMPLETED's stream");
	q = svc_call(c, "query-job", json_pack("{s:I}", "id", id), -1);
	ret = json_object_get(q, "return");
	CHECK(
	    !strcmp(json_string_value(json_object_get(json_object_get(ret, "output"), "to")) ?: "",
		    to),
	    "query-job's output is not {\"to\": \"%s\"}", to);
	CHECK(stream_complete(json_object_get(ret, "stream")) == 0, "query-job's stream");
	printf(
	    "job %lld: %lld bytes streamed to %s and acknowledged\n", id,
	    (long long)json_integer_value(json_object_get(json_object_get(ret, "stream"), "acked")),
	    to);
	rc = 0;
fail:
	json_decref(e);
	json_decref(q);
	return rc;
}

static int image_ok(struct ctx *x, const char *dir, struct wl_proc *w, const char *layout)
{
	char img[512];

	CHECK(one_image(dir, img, sizeof(img)) == 0, "one image in %s", dir);
	CHECK(wl_run_check(x->p->check, img, layout) == 0, "%s is not one instant", img);
	CHECK(snap_target_unharmed(w) == 0, "target %d harmed", w->pid);
	return 0;
fail:
	return -1;
}

static int to_oneshot(struct ctx *x)
{
	char addr[80], layout[128], in[128];
	struct wl_proc *w = NULL;
	struct svc_conn *c = NULL;
	int rc = -1;

	snprintf(layout, sizeof(layout), "%s/w.layout", x->dir);
	snprintf(in, sizeof(in), "%s/in", x->dir);
	CHECK(start_receiver(x, addr, sizeof(addr)) == 0, "the one-shot receiver starts");
	CHECK(svc_workload(x->p, wl_args, layout, &w) >= 0, "workload");
	CHECK(svc_connect(x->d.sock, &c) >= 0, "connect");
	CHECK(snapshot_to(c, w->pid, addr) == 0, "snapshot to %s", addr);
	CHECK(image_ok(x, in, w, layout) == 0, "the received image");
	printf("ok: service snapshot to a one-shot receiver is one instant\n");
	rc = 0;
fail:
	svc_conn_free(c);
	wl_proc_free(w);
	return rc;
}

/* query-job of the receive job: one complete stream of bytes, images 1. */
static int receive_shown(struct svc_conn *c, long long rid)
{
	json_t *q = svc_call(c, "query-job", json_pack("{s:I}", "id", rid), -1);
	json_t *ret = json_object_get(q, "return");
	json_t *s = json_array_get(json_object_get(ret, "streams"), 0);
	int rc = -1;

	CHECK(!strcmp(json_string_value(json_object_get(ret, "type")) ?: "", "receive"), "type");
	CHECK(json_integer_value(json_object_get(ret, "images")) == 1, "images != 1");
	CHECK(!strcmp(json_string_value(json_object_get(s, "state")) ?: "", "complete"),
	      "stream state");
	CHECK(json_integer_value(json_object_get(s, "bytes")) > 0, "stream bytes");
	CHECK(json_object_get(s, "rate") && json_object_get(s, "peer"), "rate, peer");
	rc = 0;
fail:
	json_decref(q);
	return rc;
}

static int receive_job(struct ctx *x)
{
	char layout[128], received[160];
	struct wl_proc *w = NULL;
	struct svc_conn *c = NULL;
	json_t *r = NULL, *e = NULL;
	const char *addr;
	long long rid;
	int rc = -1;

	snprintf(layout, sizeof(layout), "%s/w.layout", x->dir);
	snprintf(received, sizeof(received), "%s/received", x->d.snapdir);
	CHECK(svc_workload(x->p, wl_args, layout, &w) >= 0, "workload");
	CHECK(svc_connect(x->d.sock, &c) >= 0, "connect");
	r = svc_call(c, "receive", json_pack("{s:s}", "listen", "127.0.0.1:0"), -1);
	rid = json_integer_value(json_object_get(json_object_get(r, "return"), "id"));
	addr = json_string_value(json_object_get(json_object_get(r, "return"), "listen"));
	CHECK(rid > 0 && addr && strncmp(addr, "127.0.0.1:", 10) == 0, "receive: %s", svc_class(r));
	e = svc_wait_event(c, "JOB_CREATED", rid);
	CHECK(e, "JOB_CREATED of the receive job");
	json_decref(e);
	CHECK(snapshot_to(c, w->pid, addr) == 0, "snapshot to the receive job at %s", addr);
	e = svc_wait_event(c, "IMAGE_RECEIVED", rid);
	CHECK(e && json_integer_value(json_object_get(json_object_get(e, "data"), "bytes")) > 0,
	      "IMAGE_RECEIVED");
	CHECK(receive_shown(c, rid) == 0, "query-job of the receive job");
	CHECK(image_ok(x, received, w, layout) == 0, "the image in received/");
	json_decref(r);
	r = svc_call(c, "cancel", json_pack("{s:I}", "id", rid), -1);
	CHECK(!strcmp(svc_class(r), ""), "cancel the receive job: %s", svc_class(r));
	json_decref(e);
	e = svc_wait_event(c, "JOB_CANCELLED", rid);
	CHECK(e, "JOB_CANCELLED of the receive job");
	printf("ok: receive job got one instant's image; cancel stopped it\n");
	rc = 0;
fail:
	json_decref(r);
	json_decref(e);
	svc_conn_free(c);
	wl_proc_free(w);
	return rc;
}

static int as_nobody(const char *sock)
{
	struct svc_conn *c = NULL;
	json_t *r = NULL;
	int rc = -1;

	CHECK(svc_connect(sock, &c) >= 0, "nobody connects");
	r = svc_call(c, "receive", json_pack("{s:s}", "listen", "127.0.0.1:0"), -1);
	CHECK(!strcmp(svc_class(r), "PermissionDenied"), "nobody starts a receiver: %s",
	      svc_class(r));
	printf("nobody -> receive: %s\n",
	       json_string_value(json_object_get(json_object_get(r, "error"), "desc")));
	rc = 0;
fail:
	json_decref(r);
	svc_conn_free(c);
	return rc;
}

static int nobody_main(void *sock)
{
	return as_nobody(sock);
}

static int run_as_nobody(const char *sock)
{
	return svc_wait_child(svc_fork_nobody(nobody_main, (void *)sock));
}

static int expect(struct svc_conn *c, const char *cmd, json_t *args, const char *class)
{
	json_t *r = svc_call(c, cmd, args, -1);
	int ok = !strcmp(svc_class(r), class);

	if (!ok)
		printf("FAIL: %s: %s, want %s\n", cmd, svc_class(r), class);
	json_decref(r);
	return ok ? 0 : -1;
}

static int refused(struct ctx *x)
{
	static const char *const bad[] = {"nocolon", "host:", ":99999",	 "a b:1",
					  "[::1:5",  "h/x:1", "host:12a"};
	struct svc_daemon plain = {0};
	struct svc_conn *c = NULL;
	int rc = -1;

	CHECK(chmod(x->d.dir, 0755) == 0 && chmod(x->d.sock, 0666) == 0, "chmod");
	CHECK(run_as_nobody(x->d.sock) == 0, "nobody may not start a receiver");
	CHECK(svc_connect(x->d.sock, &c) >= 0, "connect");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(expect(c, "snapshot", json_pack("{s:i, s:s}", "pid", getpid(), "to", bad[i]),
			     "InvalidParameter") == 0,
		      "to '%s'", bad[i]);
	CHECK(expect(c, "snapshot",
		     json_pack("{s:i, s:s, s:s}", "pid", getpid(), "to", "127.0.0.1:1", "file",
			       "x.img"),
		     "InvalidParameter") == 0,
	      "to and file");
	svc_conn_free(c);
	c = NULL;
	CHECK(svc_daemon_start(x->p, NULL, &plain) == 0, "a daemon without --key");
	CHECK(svc_connect(plain.sock, &c) >= 0, "connect");
	CHECK(expect(c, "snapshot", json_pack("{s:i, s:s}", "pid", getpid(), "to", "127.0.0.1:1"),
		     "GenericError") == 0,
	      "to without a key");
	CHECK(expect(c, "receive", json_pack("{s:s}", "listen", "127.0.0.1:0"), "GenericError") ==
		  0,
	      "receive without a key");
	printf("ok: receive for root and the daemon's user only; bad HOST:PORT refused; no key, "
	       "no streams\n");
	rc = 0;
fail:
	svc_conn_free(c);
	svc_daemon_stop(&plain);
	return rc;
}

int main(int argc, char **argv)
{
	struct svc_paths p;
	int i = svc_paths_parse(argc, argv, &p), r = -1, st;
	const char *what = i < argc ? argv[i] : "";
	struct ctx x = {.p = &p};
	const char *extra[] = {"--key", x.key, NULL};

	if (getuid() != 0) {
		printf("SKIP: needs root (the daemon ptraces; switches to nobody)\n");
		return 77;
	}
	snprintf(x.dir, sizeof(x.dir), "/tmp/uffsnap-svcstream-XXXXXX");
	if (!mkdtemp(x.dir) || write_key(&x) < 0)
		return printf("FAIL: cannot write a key in %s\n", x.dir), 1;
	if (svc_daemon_start(&p, extra, &x.d) < 0) {
		printf("FAIL: cannot start uffsnapd --service --key %s\n", x.key);
		svc_daemon_stop(&x.d);
		return 1;
	}
	if (!strcmp(what, "to-oneshot"))
		r = to_oneshot(&x);
	else if (!strcmp(what, "receive-job"))
		r = receive_job(&x);
	else if (!strcmp(what, "refused"))
		r = refused(&x);
	else
		fprintf(stderr, "unknown scenario '%s'\n", what);
	st = svc_daemon_stop(&x.d);
	if (st != 0)
		printf("FAIL: uffsnapd exited %d on SIGTERM (want 0)\n", st);
	if (x.recv > 0) {
		kill(x.recv, SIGTERM);
		waitpid(x.recv, NULL, 0);
	}
	if (r != 0) {
		char cmd[160];

		snprintf(cmd, sizeof(cmd), "cat %s/recv.log 2>/dev/null", x.dir);
		if (system(cmd) < 0)
			perror("system");
	}
	if (!getenv("UFFSNAP_KEEP")) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", x.dir);
		if (system(cmd) < 0)
			perror("system");
	}
	return r == 0 && st == 0 ? 0 : 1;
}
