/* SPDX-License-Identifier: MIT */
/*
 * Clients that misbehave cannot hurt another client's job or the daemon: garbage, a 10 MB
 * line, unknown commands, wrong types, too many fds, a disconnect mid-request, a client that
 * never reads, one client too many. Each gets its error or is dropped; meanwhile (all but the
 * 10 MB line, whose memory is measured while the daemon is idle) a job of a well-behaved
 * client (held mid-way on a pipe) completes with a consistent image, and the daemon still
 * answers query-status.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "snap-harness.h"
#include "svc-harness.h"
#include "test-check.h"

/* Sends line (with '\n') and expects an error of class; the id is echoed iff it was sent. */
static int expect_error(struct svc_conn *c, const char *line, const char *class, bool has_id)
{
	json_t *r;
	bool ok;

	if (svc_send_raw(c, line, strlen(line), -1) < 0)
		return printf("FAIL: cannot send %s", line), -1;
	r = svc_read(c, SVC_T_TIMEOUT_MS);
	while (r && json_object_get(r, "event")) {
		json_decref(r);
		r = svc_read(c, SVC_T_TIMEOUT_MS);
	}
	ok = r && !strcmp(svc_class(r), class) && !!json_object_get(r, "id") == has_id;
	if (!ok) {
		char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;

		printf("FAIL: %s -> %s (want %s%s)\n", line, s ? s : "no reply", class,
		       has_id ? " with id" : "");
		free(s);
	}
	json_decref(r);
	return ok ? 0 : -1;
}

static int bad_requests(struct svc_conn *c)
{
	static const struct {
		const char *line, *class;
		bool id;
	} cases[] = {
	    {"hello\n", "JSONError", false},
	    {"[1, 2]\n", "JSONError", false},
	    {"\"str\"\n", "JSONError", false},
	    {"{\"execute\": \"query-status\"\n", "JSONError", false},
	    {"{\"execute\": \"query-status\", \"execute\": \"quit\"}\n", "JSONError", false},
	    {"{\"execute\": \"nope\", \"id\": 7}\n", "CommandNotFound", true},
	    {"{\"execute\": 3, \"id\": [1]}\n", "InvalidParameter", true},
	    {"{\"id\": 1}\n", "InvalidParameter", true},
	    {"{\"execute\": \"query-status\", \"extra\": 1}\n", "InvalidParameter", false},
	    {"{\"execute\": \"query-status\", \"arguments\": {\"x\": 1}}\n", "InvalidParameter",
	     false},
	    {"{\"execute\": \"snapshot\", \"arguments\": []}\n", "InvalidParameter", false},
	    {"{\"execute\": \"snapshot\", \"arguments\": {\"pid\": \"1\", \"file\": \"a\"}}\n",
	     "InvalidParameter", false},
	    {"{\"execute\": \"snapshot\", \"arguments\": {\"pid\": 1.0, \"file\": \"a\"}}\n",
	     "InvalidParameter", false},
	    {"{\"execute\": \"snapshot\", \"arguments\": {\"pid\": 0, \"file\": \"a\"}}\n",
	     "InvalidParameter", false},
	    {"{\"execute\": \"snapshot\", \"arguments\": {\"pid\": 1}}\n", "InvalidParameter",
	     false},
	    {"{\"execute\": \"snapshot\", \"arguments\": {\"pid\": 1, \"file\": \"a\", \"fd\": "
	     "\"b\"}}\n",
	     "InvalidParameter", false},
	    {"{\"execute\": \"snapshot\", \"arguments\": {\"pid\": 1, \"file\": \"a\", \"window\": "
	     "0}}\n",
	     "InvalidParameter", false},
	    {"{\"execute\": \"snapshot\", \"arguments\": {\"pid\": 1, \"file\": \"a\", "
	     "\"copy-threads\": 9}}\n",
	     "InvalidParameter", false},
	    {"{\"execute\": \"snapshot\", \"arguments\": {\"pid\": 1, \"file\": \"a\", "
	     "\"mem-limit\": 0}}\n",
	     "InvalidParameter", false},
	    {"{\"execute\": \"snapshot\", \"arguments\": {\"pid\": 1, \"file\": \"a\", \"strict\": "
	     "1}}\n",
	     "InvalidParameter", false},
	    {"{\"execute\": \"snapshot\", \"arguments\": {\"pid\": 1, \"fd\": \"none\"}, \"id\": "
	     "null}\n",
	     "NotFound", true},
	    {"{\"execute\": \"query-job\", \"arguments\": {\"id\": 999}}\n", "NotFound", false},
	    {"{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"x\"}}\n", "NotFound", false},
	    {"{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"x\"}}\n", "NotFound", false},
	    {"{\"execute\": \"quit\"}\n", "PermissionDenied", false},
	    {"{\"execute\": \"query-status\", \"id\": \"\\u0000\"}\n", "JSONError", false},
	    {"\xff\xfe{}\n", "JSONError", false},
	    /* jansson quotes the bad bytes in its message: the reply must still be UTF-8 */
	    {"{\"x\": \"\\u0\xd0\"}\n", "JSONError", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (expect_error(c, cases[i].line, cases[i].class, cases[i].id) < 0)
			return -1;
	printf("ok: %zu bad requests answered with their error class\n",
	       sizeof(cases) / sizeof(cases[0]));
	return 0;
}

/* 10 MB without a newline: one LimitExceeded, and the daemon's memory does not grow by it. */
static int long_line(struct svc_daemon *d, struct svc_conn *c)
{
	size_t chunk = 1 << 20;
	char *junk = malloc(chunk);
	long before = svc_daemon_hwm_kib(d), after;
	json_t *r = NULL;
	int rc = -1;

	CHECK(junk, "malloc");
	memset(junk, 'a', chunk);
	for (int i = 0; i < 10; i++)
		CHECK(svc_send_raw(c, junk, chunk, -1) == 0, "send 10 MB");
	CHECK(expect_error(c, "\n", "LimitExceeded", false) == 0, "10 MB line");
	r = svc_call(c, "query-status", NULL, -1);
	CHECK(!strcmp(svc_class(r), ""), "the next request works: %s", svc_class(r));
	after = svc_daemon_hwm_kib(d);
	printf("daemon VmHWM %ld KiB before the 10 MB line, %ld KiB after\n", before, after);
	CHECK(after - before < 4096, "a 10 MB line cost the daemon %ld KiB", after - before);
	printf("ok: 10 MB line -> LimitExceeded, no memory spent on it\n");
	rc = 0;
fail:
	json_decref(r);
	free(junk);
	return rc;
}

/* Sixteen fds with one line: all closed, LimitExceeded; the connection goes on. */
static int too_many_fds(struct svc_conn *c)
{
	const char *line = "{\"execute\": \"query-status\"}\n";
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = (void *)line, .iov_len = strlen(line)};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = cbuf.buf,
			   .msg_controllen = sizeof(cbuf.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	int fds[16];

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	for (int i = 0; i < 16; i++)
		fds[i] = STDERR_FILENO;
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	if (sendmsg(c->fd, &m, MSG_NOSIGNAL) != (ssize_t)strlen(line))
		return printf("FAIL: sendmsg with 16 fds: %m\n"), -1;
	if (expect_error(c, "", "LimitExceeded", false) < 0)
		return -1;
	return expect_error(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"a\"}}\n", "",
			    false) == 0
		   ? 0
		   : -1;
}

/* Never reads, keeps asking: the daemon drops it once 4 MiB of replies are unread. */
static int never_reads(struct svc_daemon *d)
{
	const char *line = "{\"execute\": \"query-status\"}\n";
	struct svc_conn *c = NULL;
	int sent, rc = -1;

	CHECK(svc_connect(d->sock, &c) >= 0, "connect");
	for (sent = 0; sent < 1000000; sent++)
		if (svc_send_raw(c, line, strlen(line), -1) < 0)
			break;
	CHECK(sent < 1000000, "a client that never reads was never dropped");
	printf("ok: a client that never reads was dropped after %d requests\n", sent);
	rc = 0;
fail:
	svc_conn_free(c);
	return rc;
}

static int disconnect_mid_request(struct svc_daemon *d)
{
	struct svc_conn *c = NULL;

	if (svc_connect(d->sock, &c) < 0)
		return -1;
	svc_send_raw(c, "{\"execute\": \"query-st", 21, -1);
	svc_conn_free(c);
	return 0;
}

/* One client over --max-clients: a LimitExceeded line instead of the greeting, then EOF. */
static int one_too_many(struct svc_daemon *d)
{
	struct svc_conn *extra[8] = {0}, *c = NULL;
	int n = 0, rc = -1;
	json_t *eof = NULL;

	/* "good" and "bad" are connected: 6 more make the limit of 8. */
	for (; n < 6; n++)
		CHECK(svc_connect(d->sock, &extra[n]) >= 0, "client %d", n + 3);
	CHECK(svc_connect(d->sock, &c) >= 0 || c, "connect a ninth");
	CHECK(c && !strcmp(svc_class(c->greeting), "LimitExceeded"), "ninth client: %s",
	      c ? svc_class(c->greeting) : "no connection");
	eof = svc_read(c, SVC_T_TIMEOUT_MS);
	CHECK(!eof, "the ninth client is closed after its error");
	printf("ok: a client over --max-clients is refused\n");
	rc = 0;
fail:
	json_decref(eof);
	svc_conn_free(c);
	for (int i = 0; i < n; i++)
		svc_conn_free(extra[i]);
	return rc;
}

static int run(const struct svc_paths *p, struct svc_daemon *d)
{
	static const char *const args[] = {"--threads", "2", "--pages", "2048", NULL};
	char lay[256], img[256];
	struct svc_conn *good = NULL, *bad = NULL;
	struct wl_proc *w = NULL;
	json_t *e = NULL, *r = NULL;
	int pfd[2] = {-1, -1}, rc = -1;
	long long id;
	char head[4096];
	ssize_t nhead;

	snprintf(lay, sizeof(lay), "%s/w.layout", d->dir);
	snprintf(img, sizeof(img), "%s/good.img", d->dir);
	CHECK(svc_workload(p, args, lay, &w) >= 0, "workload");
	/* Before the job: its write-behind queue grows while its output is not read, and the
	 * daemon's high-water mark would measure that too. */
	CHECK(svc_connect(d->sock, &bad) >= 0, "connect");
	CHECK(long_line(d, bad) == 0, "long line");
	CHECK(svc_connect(d->sock, &good) >= 0, "connect");
	CHECK(pipe2(pfd, O_CLOEXEC) == 0, "pipe");
	r = svc_call(good, "getfd", json_pack("{s:s}", "fdname", "p"), pfd[1]);
	close(pfd[1]);
	pfd[1] = -1;
	id = svc_snapshot(good, w->pid, "fd", "p");
	CHECK(id > 0, "job");
	nhead = read(pfd[0], head, sizeof(head));
	CHECK(nhead > 0, "the job writes");
	CHECK(bad_requests(bad) == 0, "bad requests");
	CHECK(too_many_fds(bad) == 0, "too many fds");
	CHECK(disconnect_mid_request(d) == 0, "disconnect mid-request");
	CHECK(never_reads(d) == 0, "never reads");
	CHECK(one_too_many(d) == 0, "max clients");
	/* The held job goes on once its output is read. */
	CHECK(wl_write_file(img, "") == 0, "create %s", img);
	{
		int out = open(img, O_WRONLY | O_APPEND | O_CLOEXEC);
		ssize_t n = out >= 0 ? write(out, head, nhead) : -1;

		if (out >= 0)
			close(out);
		CHECK(n == nhead, "write %s", img);
	}
	CHECK(svc_drain(pfd[0], img) > 0, "the rest of the image");
	e = svc_wait_event(good, "JOB_COMPLETED", id);
	CHECK(e, "the good client's job completed");
	CHECK(wl_run_check(p->check, img, lay) == 0, "its image is one instant");
	CHECK(snap_target_unharmed(w) == 0, "target harmed");
	svc_conn_free(bad);
	bad = NULL;
	CHECK(svc_connect(d->sock, &bad) >= 0, "connect after all that");
	json_decref(r);
	r = svc_call(bad, "query-status", NULL, -1);
	CHECK(!strcmp(svc_class(r), ""), "query-status: %s", svc_class(r));
	printf("ok: the good client's job completed; the daemon still answers\n");
	rc = 0;
fail:
	json_decref(e);
	if (pfd[0] >= 0)
		close(pfd[0]);
	json_decref(r);
	svc_conn_free(good);
	svc_conn_free(bad);
	wl_proc_free(w);
	return rc;
}

int main(int argc, char **argv)
{
	static const char *const opts[] = {"--max-clients", "8", NULL};
	struct svc_paths p;
	struct svc_daemon d = {0};
	int r, st;

	svc_paths_parse(argc, argv, &p);
	if (getuid() != 0) {
		printf("SKIP: needs root (the daemon ptraces, opens /dev/userfaultfd)\n");
		return 77;
	}
	if (svc_daemon_start(&p, opts, &d) < 0) {
		printf("FAIL: cannot start uffsnapd --service\n");
		svc_daemon_stop(&d);
		return 1;
	}
	r = run(&p, &d);
	st = svc_daemon_stop(&d);
	if (st != 0)
		printf("FAIL: uffsnapd exited %d on SIGTERM (want 0)\n", st);
	return r == 0 && st == 0 ? 0 : 1;
}
