/* SPDX-License-Identifier: MIT */
/*
 * The control client against a hand-driven daemon on a real Unix socket: connecting and the
 * greeting, what a request looks like, replies and errors, events queued while a reply is
 * awaited, timeouts and late replies. (Line framing and fd passing: test-ctl-client-stream.c.)
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test-ctl-client-peer.h"

static void test_connect_greeting(void **state)
{
	struct uffsnap_client *c = NULL;
	struct peer p;

	peer_listen(&p);
	assert_int_equal(peer_connect(&p, PEER_GREETING, &c, NULL), 0);
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(uffsnap_client_greeting(c), "uffsnap"), "protocol")),
			 1);
	assert_true(uffsnap_client_has_capability(c, "fd-passing"));
	assert_true(uffsnap_client_has_capability(c, "jobs"));
	assert_false(uffsnap_client_has_capability(c, "teleport"));
	assert_true(uffsnap_client_fd(c) >= 0);
	uffsnap_client_free(c);
	peer_close(&p);
	uffsnap_client_free(NULL);
}

/* The daemon refuses a client (too many) with an error line instead of a greeting. */
static void test_connect_refused(void **state)
{
	struct uffsnap_client_error e = {{0}};
	struct uffsnap_client *c = NULL;
	struct peer p;

	peer_listen(&p);
	assert_int_equal(peer_connect(&p,
				      "{\"error\": {\"class\": \"LimitExceeded\", \"desc\": \"too "
				      "many clients\"}}\n",
				      &c, &e),
			 -EREMOTEIO);
	assert_null(c);
	assert_string_equal(e.class, "LimitExceeded");
	assert_string_equal(e.desc, "too many clients");
	peer_close(&p);
}

static void test_connect_bad_greeting(void **state)
{
	static const struct {
		const char *first;
		int r;
	} cases[] = {
	    {"{\"uffsnap\": {\"protocol\": 2, \"capabilities\": []}}\n", -EPROTONOSUPPORT},
	    {"{\"uffsnap\": {\"capabilities\": []}}\n", -EBADMSG},
	    {"{\"hello\": 1}\n", -EBADMSG},
	    {"[1, 2]\n", -EBADMSG},
	    {"SSH-2.0-OpenSSH_9.2\r\n", -EBADMSG},
	    {"{\"uffsnap\": {\"protocol\": 1", -ECONNRESET}, /* closed in the middle */
	    {"", -ECONNRESET},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct uffsnap_client *c = NULL;
		struct peer p;

		peer_listen(&p);
		p.shut_after_first = 1; /* connect must decide from what was sent, not wait */
		assert_int_equal(peer_connect(&p, cases[i].first, &c, NULL), cases[i].r);
		assert_null(c);
		peer_close(&p);
	}
}

static void test_connect_errors(void **state)
{
	struct uffsnap_client *c = NULL;
	char path[200];
	struct peer p;
	int fd;

	assert_int_equal(uffsnap_client_connect("/nonexistent/uffsnap.sock", 1000, &c, NULL),
			 -ENOENT);
	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = 0;
	assert_int_equal(uffsnap_client_connect(path, 1000, &c, NULL), -ENAMETOOLONG);
	/* A socket file nobody listens on any more. */
	peer_listen(&p);
	fd = p.listen_fd;
	p.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	close(fd);
	assert_int_equal(uffsnap_client_connect(p.path, 1000, &c, NULL), -ECONNREFUSED);
	assert_null(c);
	peer_close(&p);
}

static void test_request_format(void **state)
{
	struct uffsnap_client *c = NULL;
	json_t *req, *ret = NULL, *args;
	struct peer p;

	peer_listen(&p);
	assert_int_equal(peer_connect(&p, PEER_GREETING, &c, NULL), 0);
	/* Replies may be written before the request: the client reads them once it has sent. */
	peer_send(&p, "{\"return\": {\"jobs\": 0}, \"id\": 1}\n");
	assert_int_equal(uffsnap_client_execute(c, "query-status", NULL, NULL, &ret, NULL), 0);
	assert_int_equal(json_integer_value(json_object_get(ret, "jobs")), 0);
	json_decref(ret);
	req = peer_request(&p);
	assert_string_equal(json_string_value(json_object_get(req, "execute")), "query-status");
	assert_int_equal(json_integer_value(json_object_get(req, "id")), 1);
	assert_null(json_object_get(req, "arguments"));
	json_decref(req);

	peer_send(&p, "{\"return\": [], \"id\": 2}\n");
	args = json_pack("{s:i, s:s}", "id", 3, "note", "two\nlines"); /* stays one line */
	assert_int_equal(uffsnap_client_execute(c, "query-job", args, NULL, NULL, NULL), 0);
	req = peer_request(&p);
	assert_true(json_equal(json_object_get(req, "arguments"), args));
	assert_int_equal(json_integer_value(json_object_get(req, "id")), 2);
	json_decref(req);
	json_decref(args);
	uffsnap_client_free(c);
	peer_close(&p);
}

static void test_error_reply(void **state)
{
	struct uffsnap_client_error e = {{0}};
	struct uffsnap_client *c = NULL;
	json_t *ret = NULL;
	struct peer p;

	peer_listen(&p);
	assert_int_equal(peer_connect(&p, PEER_GREETING, &c, NULL), 0);
	peer_send(&p, "{\"error\": {\"class\": \"PermissionDenied\", \"desc\": \"you may not "
		      "ptrace pid 1\"}, \"id\": 1}\n");
	assert_int_equal(uffsnap_client_execute(c, "snapshot", NULL, NULL, &ret, &e), -EREMOTEIO);
	assert_null(ret);
	assert_string_equal(e.class, "PermissionDenied");
	assert_string_equal(e.desc, "you may not ptrace pid 1");
	peer_send(&p, "{\"error\": {\"desc\": \"no class\"}}\n"); /* no id: still the reply */
	assert_int_equal(uffsnap_client_execute(c, "bogus", NULL, NULL, &ret, &e), -EREMOTEIO);
	assert_string_equal(e.class, "GenericError");
	assert_string_equal(e.desc, "no class");
	/* An error reply leaves the connection usable. */
	peer_send(&p, "{\"return\": {\"id\": 4}, \"id\": 3}\n");
	assert_int_equal(uffsnap_client_execute(c, "snapshot", NULL, NULL, &ret, NULL), 0);
	assert_int_equal(json_integer_value(json_object_get(ret, "id")), 4);
	json_decref(ret);
	uffsnap_client_free(c);
	peer_close(&p);
}

static void expect_event(struct uffsnap_client *c, const char *name, int id)
{
	json_t *ev = NULL;

	assert_int_equal(uffsnap_client_next_event(c, 0, &ev), 0);
	assert_string_equal(json_string_value(json_object_get(ev, "event")), name);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ev, "data"), "id")),
			 id);
	json_decref(ev);
}

static void test_events_interleaved(void **state)
{
	struct uffsnap_client *c = NULL;
	json_t *ret = NULL, *ev = NULL;
	struct peer p;

	peer_listen(&p);
	/* An event may follow the greeting at once, in the same write. */
	assert_int_equal(peer_connect(&p,
				      PEER_GREETING "{\"event\": \"JOB_CREATED\", \"data\": "
						    "{\"id\": 1, \"pid\": 9}}\n",
				      &c, NULL),
			 0);
	peer_send(&p, "{\"event\": \"JOB_PROGRESS\", \"data\": {\"id\": 1, \"done\": 1}}\n"
		      "{\"return\": {}, \"id\": 1}\n"
		      "{\"event\": \"JOB_COMPLETED\", \"data\": {\"id\": 1}}\n");
	assert_int_equal(uffsnap_client_execute(c, "cancel", NULL, NULL, &ret, NULL), 0);
	assert_true(json_is_object(ret) && json_object_size(ret) == 0);
	json_decref(ret);
	expect_event(c, "JOB_CREATED", 1);
	expect_event(c, "JOB_PROGRESS", 1);
	/* Already on the socket, not yet read: a zero timeout still reads what is there. */
	assert_int_equal(uffsnap_client_next_event(c, 5000, &ev), 0);
	assert_string_equal(json_string_value(json_object_get(ev, "event")), "JOB_COMPLETED");
	json_decref(ev);
	assert_int_equal(uffsnap_client_next_event(c, 0, &ev), -ETIMEDOUT);
	assert_int_equal(uffsnap_client_next_event(c, 20, &ev), -ETIMEDOUT);
	peer_send(&p, "{\"event\": \"JOB_FAILED\", \"data\": {\"id\": 2}}\n");
	assert_int_equal(uffsnap_client_next_event(c, -1, &ev), 0);
	json_decref(ev);
	uffsnap_client_free(c);
	peer_close(&p);
}

/* A reply that does not come in time; its late arrival is recognised and dropped. */
static void test_timeout_late_reply(void **state)
{
	struct uffsnap_client *c = NULL;
	json_t *ret = NULL;
	struct peer p;

	peer_listen(&p);
	assert_int_equal(peer_connect(&p, PEER_GREETING, &c, NULL), 0);
	uffsnap_client_set_timeout(c, 50);
	assert_int_equal(uffsnap_client_execute(c, "query-jobs", NULL, NULL, &ret, NULL),
			 -ETIMEDOUT);
	json_decref(peer_request(&p));
	peer_send(&p, "{\"return\": \"late\", \"id\": 1}\n{\"return\": \"mine\", \"id\": 2}\n");
	uffsnap_client_set_timeout(c, -1);
	assert_int_equal(uffsnap_client_execute(c, "query-jobs", NULL, NULL, &ret, NULL), 0);
	assert_string_equal(json_string_value(ret), "mine");
	json_decref(ret);
	uffsnap_client_free(c);
	peer_close(&p);
}

/* Signals the main thread over and over, then (if reply) answers its request. */
struct nagger {
	pthread_t main, thread;
	struct peer *peer;
	const char *reply; /* NULL: nag until stop is set */
	atomic_int stop;
};

static void on_sigusr1(int sig)
{
}

static void *nag(void *arg)
{
	struct nagger *n = arg;
	struct timespec ms = {.tv_nsec = 1000000};

	for (int i = 0; !atomic_load(&n->stop) && (!n->reply || i < 50); i++) {
		pthread_kill(n->main, SIGUSR1);
		nanosleep(&ms, NULL);
	}
	if (n->reply)
		peer_send(n->peer, n->reply);
	return NULL;
}

/*
 * A signal ends a wait for events (-EINTR, nothing lost) but not a wait for a reply: the
 * request's outcome is always returned.
 */
static void test_signals(void **state)
{
	struct sigaction sa = {.sa_handler = on_sigusr1}, old; /* no SA_RESTART */
	struct nagger n = {.main = pthread_self(), .peer = NULL};
	struct uffsnap_client *c = NULL;
	json_t *ret = NULL, *ev = NULL;
	struct peer p;

	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	peer_listen(&p);
	assert_int_equal(peer_connect(&p, PEER_GREETING, &c, NULL), 0);
	n.peer = &p;
	assert_int_equal(pthread_create(&n.thread, NULL, nag, &n), 0);
	assert_int_equal(uffsnap_client_next_event(c, -1, &ev), -EINTR);
	atomic_store(&n.stop, 1);
	pthread_join(n.thread, NULL);

	n.reply = "{\"return\": \"done\", \"id\": 1}\n";
	atomic_store(&n.stop, 0);
	assert_int_equal(pthread_create(&n.thread, NULL, nag, &n), 0);
	assert_int_equal(uffsnap_client_execute(c, "x", NULL, NULL, &ret, NULL), 0);
	assert_string_equal(json_string_value(ret), "done");
	json_decref(ret);
	pthread_join(n.thread, NULL);
	/* The connection is intact after both. */
	peer_send(&p, "{\"event\": \"E\", \"data\": {}}\n");
	assert_int_equal(uffsnap_client_next_event(c, -1, &ev), 0);
	json_decref(ev);
	uffsnap_client_free(c);
	peer_close(&p);
	sigaction(SIGUSR1, &old, NULL);
}

static void test_bad_calls(void **state)
{
	struct uffsnap_client_fd bad_fd = {.fd = -1, .argument = "fd"};
	struct uffsnap_client_fd no_arg = {.fd = 0, .argument = NULL};
	struct uffsnap_client *c = NULL;
	json_t *arr = json_array();
	struct peer p;

	peer_listen(&p);
	assert_int_equal(peer_connect(&p, PEER_GREETING, &c, NULL), 0);
	assert_int_equal(uffsnap_client_execute(c, "", NULL, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(uffsnap_client_execute(c, NULL, NULL, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(uffsnap_client_execute(c, "x", arr, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(uffsnap_client_execute(c, "x", NULL, &bad_fd, NULL, NULL), -EINVAL);
	assert_int_equal(uffsnap_client_execute(c, "x", NULL, &no_arg, NULL, NULL), -EINVAL);
	json_decref(arr);
	uffsnap_client_free(c);
	peer_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_connect_greeting),
	    cmocka_unit_test(test_connect_refused),
	    cmocka_unit_test(test_connect_bad_greeting),
	    cmocka_unit_test(test_connect_errors),
	    cmocka_unit_test(test_request_format),
	    cmocka_unit_test(test_error_reply),
	    cmocka_unit_test(test_events_interleaved),
	    cmocka_unit_test(test_timeout_late_reply),
	    cmocka_unit_test(test_signals),
	    cmocka_unit_test(test_bad_calls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
