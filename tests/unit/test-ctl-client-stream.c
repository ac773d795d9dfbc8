/* SPDX-License-Identifier: MIT */
/*
 * The control client's framing and fd passing against a hand-driven daemon on a real Unix
 * socket: an fd arriving with `getfd` and its name substituted into the command, a line torn
 * across reads, a reply longer than 64 KiB, the daemon closing in the middle of a line,
 * garbage and replies nobody asked for.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "test-ctl-client-peer.h"

static struct uffsnap_client *connected(struct peer *p)
{
	struct uffsnap_client *c = NULL;

	peer_listen(p);
	assert_int_equal(peer_connect(p, PEER_GREETING, &c, NULL), 0);
	return c;
}

static int same_file(int a, int b)
{
	struct stat sa, sb;

	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Request i was getfd with fd attached; returns the name it gave. */
static const char *expect_getfd(struct peer *p, size_t i, int fd)
{
	const json_t *req = p->requests[i];
	const char *name;

	assert_string_equal(json_string_value(json_object_get(req, "execute")), "getfd");
	name = json_string_value(json_object_get(json_object_get(req, "arguments"), "fdname"));
	assert_non_null(name);
	assert_true(p->request_fds[i] >= 0);
	assert_true(same_file(p->request_fds[i], fd));
	return name;
}

static const json_t *request_arg(struct peer *p, size_t i, const char *command, const char *arg)
{
	const json_t *req = p->requests[i];

	assert_string_equal(json_string_value(json_object_get(req, "execute")), command);
	assert_int_equal(p->request_fds[i], -1); /* only getfd carries an fd */
	return json_object_get(json_object_get(req, "arguments"), arg);
}

static void test_fd_passing(void **state)
{
	static const char *const replies[] = {
	    "{\"return\": {}, \"id\": 1}\n",
	    "{\"event\": \"JOB_CREATED\", \"data\": {\"id\": 7}}\n{\"return\": {\"id\": 7}, "
	    "\"id\": 2}\n",
	};
	struct uffsnap_client_fd pass = {.argument = "fd"};
	json_t *args = json_pack("{s:i}", "pid", 42), *ret = NULL, *ev = NULL;
	struct uffsnap_client *c;
	const char *name;
	struct peer p;

	c = connected(&p);
	pass.fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(pass.fd >= 0);
	peer_serve(&p, replies, 2);
	assert_int_equal(uffsnap_client_execute(c, "snapshot", args, &pass, &ret, NULL), 0);
	assert_int_equal(json_integer_value(json_object_get(ret, "id")), 7);
	json_decref(ret);
	assert_int_equal(peer_served(&p), 2);
	name = expect_getfd(&p, 0, pass.fd);
	assert_string_equal(json_string_value(request_arg(&p, 1, "snapshot", "fd")), name);
	assert_int_equal(json_integer_value(request_arg(&p, 1, "snapshot", "pid")), 42);
	assert_null(json_object_get(args, "fd")); /* the caller's object is not modified */
	assert_int_equal(fcntl(pass.fd, F_GETFD), FD_CLOEXEC);	   /* and its fd is its own */
	assert_int_equal(uffsnap_client_next_event(c, 0, &ev), 0); /* queued meanwhile */
	json_decref(ev);
	json_decref(args);
	close(pass.fd);
	uffsnap_client_free(c);
	peer_close(&p);
}

/* The command is refused: the daemon's copy of the fd is closed by name. */
static void test_fd_refused(void **state)
{
	static const char *const replies[] = {
	    "{\"return\": {}, \"id\": 1}\n",
	    "{\"error\": {\"class\": \"Busy\", \"desc\": \"pid 42 has a job\"}, \"id\": 2}\n",
	    "{\"error\": {\"class\": \"NotFound\", \"desc\": \"no such fd\"}, \"id\": 3}\n",
	    "{\"error\": {\"class\": \"LimitExceeded\", \"desc\": \"8 fds\"}, \"id\": 4}\n",
	    "{\"return\": 1, \"id\": 5}\n",
	};
	struct uffsnap_client_fd pass = {.argument = "fd"};
	struct uffsnap_client_error e = {{0}};
	struct uffsnap_client *c;
	const char *name;
	struct peer p;

	c = connected(&p);
	pass.fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	peer_serve(&p, replies, 5);
	assert_int_equal(uffsnap_client_execute(c, "snapshot", NULL, &pass, NULL, &e), -EREMOTEIO);
	assert_string_equal(e.class, "Busy"); /* closefd's reply does not overwrite it */
	/* getfd itself refused (too many fds): the command is not sent. */
	assert_int_equal(uffsnap_client_execute(c, "snapshot", NULL, &pass, NULL, &e), -EREMOTEIO);
	assert_string_equal(e.class, "LimitExceeded");
	assert_int_equal(uffsnap_client_execute(c, "query-status", NULL, NULL, NULL, NULL), 0);
	assert_int_equal(peer_served(&p), 5);
	name = expect_getfd(&p, 0, pass.fd);
	assert_string_equal(json_string_value(request_arg(&p, 1, "snapshot", "fd")), name);
	assert_string_equal(json_string_value(request_arg(&p, 2, "closefd", "fdname")), name);
	assert_string_not_equal(expect_getfd(&p, 3, pass.fd), name); /* a fresh name */
	assert_null(request_arg(&p, 4, "query-status", "fd"));
	close(pass.fd);
	uffsnap_client_free(c);
	peer_close(&p);
}

/* Two fds with one command (a guest's QMP connection and its output): each under its own
 * name and argument; refused, both are closed by name; two with one argument are -EINVAL. */
static void test_fds_two(void **state)
{
	static const char *const replies[] = {
	    "{\"return\": {}, \"id\": 1}\n",
	    "{\"return\": {}, \"id\": 2}\n",
	    "{\"error\": {\"class\": \"Busy\", \"desc\": \"pid 42 has a job\"}, \"id\": 3}\n",
	    "{\"return\": {}, \"id\": 4}\n",
	    "{\"return\": {}, \"id\": 5}\n",
	};
	struct uffsnap_client_fd pass[2] = {{.argument = "qemu"}, {.argument = "fd"}};
	struct uffsnap_client_error e = {{0}};
	struct uffsnap_client *c;
	const char *n0, *n1;
	struct peer p;

	c = connected(&p);
	pass[0].fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pass[1].fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	peer_serve(&p, replies, 5);
	assert_int_equal(uffsnap_client_execute_fds(c, "snapshot", NULL, pass, 2, NULL, &e),
			 -EREMOTEIO);
	assert_string_equal(e.class, "Busy");
	assert_int_equal(peer_served(&p), 5);
	n0 = expect_getfd(&p, 0, pass[0].fd);
	n1 = expect_getfd(&p, 1, pass[1].fd);
	assert_string_not_equal(n0, n1);
	assert_string_equal(json_string_value(request_arg(&p, 2, "snapshot", "qemu")), n0);
	assert_string_equal(json_string_value(request_arg(&p, 2, "snapshot", "fd")), n1);
	assert_string_equal(json_string_value(request_arg(&p, 3, "closefd", "fdname")), n0);
	assert_string_equal(json_string_value(request_arg(&p, 4, "closefd", "fdname")), n1);
	pass[1].argument = "qemu";
	assert_int_equal(uffsnap_client_execute_fds(c, "snapshot", NULL, pass, 2, NULL, &e),
			 -EINVAL);
	assert_int_equal(uffsnap_client_execute_fds(c, "snapshot", NULL, NULL, 1, NULL, &e),
			 -EINVAL);
	close(pass[0].fd);
	close(pass[1].fd);
	uffsnap_client_free(c);
	peer_close(&p);
}

/* A line arrives in pieces, each read separately. */
static void test_torn_line(void **state)
{
	static const char *const parts[] = {"{\"event\": \"JOB_PRO", "GRESS\", \"data\": {\"id\"",
					    ": 5, \"done\": 10, \"total\": 20}}", "\n"};
	struct uffsnap_client *c;
	json_t *ev = NULL, *ret = NULL;
	struct peer p;

	c = connected(&p);
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) - 1; i++) {
		peer_send(&p, parts[i]);
		/* Waits until the piece has been read (it is buffered, not an event yet). */
		assert_int_equal(uffsnap_client_next_event(c, 20, &ev), -ETIMEDOUT);
	}
	peer_send(&p, "\n{\"return\": {\"x\": ");
	assert_int_equal(uffsnap_client_next_event(c, -1, &ev), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ev, "data"), "done")),
			 10);
	json_decref(ev);
	peer_send(&p, "1}, \"id\": 1}\n");
	assert_int_equal(uffsnap_client_execute(c, "x", NULL, NULL, &ret, NULL), 0);
	assert_int_equal(json_integer_value(json_object_get(ret, "x")), 1);
	json_decref(ret);
	uffsnap_client_free(c);
	peer_close(&p);
}

/* A reply of several hundred KiB (e.g. query-jobs with many jobs), written as it is read. */
static void test_big_reply(void **state)
{
	const size_t n = 300000;
	struct uffsnap_client *c;
	json_t *ret = NULL, *ev = NULL;
	char *line = malloc(n + 200);
	size_t len;
	struct peer p;

	c = connected(&p);
	len = sprintf(line, "{\"return\": {\"s\": \"");
	memset(line + len, 'a', n);
	len += n;
	len += sprintf(line + len, "\"}, \"id\": 1}\n{\"event\": \"E\", \"data\": {}}\n");
	peer_send_async(&p, line, len);
	assert_int_equal(uffsnap_client_execute(c, "query-jobs", NULL, NULL, &ret, NULL), 0);
	assert_int_equal(strlen(json_string_value(json_object_get(ret, "s"))), n);
	json_decref(ret);
	assert_int_equal(uffsnap_client_next_event(c, -1, &ev), 0);
	json_decref(ev);
	free(line);
	uffsnap_client_free(c);
	peer_close(&p);
}

/* The daemon goes away in the middle of a line: the connection is over, for every call. */
static void test_close_mid_line(void **state)
{
	struct uffsnap_client *c;
	json_t *ev = NULL;
	struct peer p;

	c = connected(&p);
	peer_send(&p, "{\"event\": \"A\", \"data\": {}}\n{\"event\": \"B\", \"da");
	peer_hangup(&p);
	assert_int_equal(uffsnap_client_execute(c, "query-jobs", NULL, NULL, NULL, NULL),
			 -ECONNRESET);
	/* The complete event before the cut is still delivered, then the error. */
	assert_int_equal(uffsnap_client_next_event(c, -1, &ev), 0);
	assert_string_equal(json_string_value(json_object_get(ev, "event")), "A");
	json_decref(ev);
	assert_int_equal(uffsnap_client_next_event(c, -1, &ev), -ECONNRESET);
	assert_int_equal(uffsnap_client_execute(c, "query-jobs", NULL, NULL, NULL, NULL),
			 -ECONNRESET);
	uffsnap_client_free(c);
	peer_close(&p);
}

static void expect_broken(const char *from_daemon, int r)
{
	struct uffsnap_client *c;
	json_t *ret = NULL;
	struct peer p;

	c = connected(&p);
	peer_send(&p, from_daemon);
	assert_int_equal(uffsnap_client_execute(c, "query-jobs", NULL, NULL, &ret, NULL), r);
	assert_null(ret);
	peer_send(&p, "{\"return\": {}, \"id\": 2}\n");
	assert_int_equal(uffsnap_client_execute(c, "query-jobs", NULL, NULL, &ret, NULL), r);
	uffsnap_client_free(c);
	peer_close(&p);
}

static void test_garbage(void **state)
{
	expect_broken("this is not json\n", -EBADMSG);
	expect_broken("[\"an\", \"array\"]\n", -EBADMSG);
	expect_broken("{\"neither\": \"event nor reply\"}\n", -EBADMSG);
	expect_broken("{\"return\": {}, \"id\": 99}\n", -EBADMSG);    /* not our id */
	expect_broken("{\"return\": {}, \"id\": \"1\"}\n", -EBADMSG); /* not even a number */
	expect_broken("{\"error\": \"a string\", \"id\": 1}\n", -EBADMSG);
	expect_broken("{\"return\": 1, \"return\": 2, \"id\": 1}\n", -EBADMSG);
	expect_broken("{\"return\": \"\xff\xfe\", \"id\": 1}\n", -EBADMSG); /* not UTF-8 */
}

/* A reply when no request is outstanding is a protocol violation, seen by next_event too. */
static void test_unsolicited_reply(void **state)
{
	struct uffsnap_client *c;
	json_t *ev = NULL;
	struct peer p;

	c = connected(&p);
	peer_send(&p, "{\"return\": {}}\n");
	assert_int_equal(uffsnap_client_next_event(c, -1, &ev), -EBADMSG);
	uffsnap_client_free(c);
	peer_close(&p);
}

/*
 * The daemon answers a request line longer than its limit with LimitExceeded (no id) as soon as
 * the limit is passed, while the client is still sending it (CONTROL.md, Limits), and drops the
 * rest of the line.
 */
static void *early_refusal(void *arg)
{
	struct peer *p = arg;
	char buf[65536];
	size_t got = 0;
	ssize_t n;

	while (got <= 65536 && (n = read(p->fd, buf, sizeof(buf))) > 0)
		got += n;
	peer_send(p, "{\"error\": {\"class\": \"LimitExceeded\", \"desc\": \"line too long\"}}\n");
	while ((n = read(p->fd, buf, sizeof(buf))) > 0 && !memchr(buf, '\n', n))
		;
	return NULL;
}

static void test_refused_while_sending(void **state)
{
	struct uffsnap_client_error e = {{0}};
	const size_t len = 4u << 20; /* far more than the socket buffers hold */
	char *big = malloc(len + 1);
	struct uffsnap_client *c;
	json_t *args;
	pthread_t t;
	struct peer p;

	c = connected(&p);
	memset(big, 'x', len);
	big[len] = 0;
	args = json_pack("{s:s}", "note", big);
	assert_int_equal(pthread_create(&t, NULL, early_refusal, &p), 0);
	assert_int_equal(uffsnap_client_execute(c, "query-status", args, NULL, NULL, &e),
			 -EREMOTEIO);
	assert_string_equal(e.class, "LimitExceeded");
	pthread_join(t, NULL);
	/* The whole line was sent: the next request starts on a line of its own. */
	peer_send(&p, "{\"return\": 2, \"id\": 2}\n");
	assert_int_equal(uffsnap_client_execute(c, "query-status", NULL, NULL, NULL, NULL), 0);
	json_t *req = peer_request(&p);
	assert_string_equal(json_string_value(json_object_get(req, "execute")), "query-status");
	json_decref(req);
	json_decref(args);
	free(big);
	uffsnap_client_free(c);
	peer_close(&p);
}

/* A line without end beyond the limit: -EMSGSIZE rather than memory without bound. */
static void test_endless_line(void **state)
{
	const size_t n = UFFSNAP_CLIENT_MAX_LINE + 65536;
	struct uffsnap_client *c;
	char *junk = malloc(n);
	json_t *ev = NULL;
	struct peer p;
	int r;

	c = connected(&p);
	memset(junk, ' ', n);
	junk[0] = '{';
	peer_send_async(&p, junk, n);
	while ((r = uffsnap_client_next_event(c, -1, &ev)) == -ETIMEDOUT)
		;
	assert_int_equal(r, -EMSGSIZE);
	uffsnap_client_free(c); /* closes: the writer thread gets EPIPE and ends */
	peer_close(&p);
	free(junk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fd_passing),	 cmocka_unit_test(test_fds_two),
	    cmocka_unit_test(test_fd_refused),	 cmocka_unit_test(test_torn_line),
	    cmocka_unit_test(test_big_reply),	 cmocka_unit_test(test_close_mid_line),
	    cmocka_unit_test(test_garbage),	 cmocka_unit_test(test_unsolicited_reply),
	    cmocka_unit_test(test_endless_line), cmocka_unit_test(test_refused_while_sending),
	};

	signal(SIGPIPE, SIG_IGN); /* the peer writes to clients that have gone */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
