/* SPDX-License-Identifier: MIT */
/*
 * The QMP client (proto/qmp.h) against a real QEMU: greeting, version and pid, commands and
 * their errors, an fd passed with getfd, events, QEMU going away; and against sockets that are
 * not QEMU's. QEMU runs with no guest at all (-S, nothing to boot): QMP is all that is used.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qmp.h"
#include "test-check.h"

static const char *qemu_binary(void)
{
	static const char *const bins[] = {"/usr/bin/qemu-system-x86_64",
					   "/usr/local/bin/qemu-system-x86_64"};

	for (size_t i = 0; i < sizeof(bins) / sizeof(bins[0]); i++)
		if (access(bins[i], X_OK) == 0)
			return bins[i];
	return NULL;
}

static pid_t start_qemu(const char *bin, const char *sock)
{
	char qmp[320];
	pid_t pid;

	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", sock);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(bin, bin, "-S", "-nodefaults", "-no-user-config", "-display", "none",
		      "-accel", "tcg", "-machine", "pc-i440fx-7.2", "-m", "64M", "-qmp", qmp,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* QEMU creates the socket once it is up; until then connecting fails (a bound, not a check). */
static struct qmp *open_when_up(const char *sock, pid_t qemu, char *msg, size_t len)
{
	for (int i = 0; i < 6000; i++) {
		struct qmp *q = NULL;

		if (qmp_open_path(sock, 60000, &q, msg, len) == 0)
			return q;
		if (waitpid(qemu, NULL, WNOHANG) == qemu)
			return NULL;
		test_sleep_ms(10);
	}
	return NULL;
}

/* A unix socket server at path that sends what (NULL: nothing) to whoever connects. */
static int fake_server(const char *path, const char *what, pid_t *ret_pid)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int l = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0)
		return -1;
	*ret_pid = fork();
	if (*ret_pid == 0) {
		int c = accept(l, NULL, NULL);

		if (c >= 0 && what && write(c, what, strlen(what)) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	close(l);
	return 0;
}

/* Sockets that are not QEMU's: what the server sends, how long to wait, what must be said. */
static const struct not_qemu {
	const char *name;
	const char *greeting; /* NULL: nothing */
	int timeout_ms;
	int want;
	const char *want_msg;
} not_qemu[] = {
    {"garbage.sock", "HTTP/1.1 400 Bad Request\r\n", 60000, -EPROTO, "not a QMP socket"},
    {"json.sock", "{\"hello\": 1}\r\n", 60000, -EPROTO, "not QEMU's"},
    /* silent: as QEMU is to a second client while a first one holds its QMP socket */
    {"silent.sock", NULL, 300, -EBUSY, "another client"},
};

static int test_not_qemu(const char *dir)
{
	/* Sized as the sun_path fake_server() copies it to: longer would not bind anyway. */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)], msg[256] = "";
	struct qmp *q = NULL;
	pid_t srv;
	int k;

	for (size_t i = 0; i < sizeof(not_qemu) / sizeof(not_qemu[0]); i++) {
		const struct not_qemu *t = &not_qemu[i];

		snprintf(path, sizeof(path), "%s/%s", dir, t->name);
		CHECK(fake_server(path, t->greeting, &srv) == 0, "%s", msg);
		k = qmp_open_path(path, t->timeout_ms, &q, msg, sizeof(msg));
		CHECK(k == t->want && strstr(msg, t->want_msg), "%s: %s", t->name, msg);
		kill(srv, SIGKILL);
		waitpid(srv, NULL, 0);
	}

	snprintf(path, sizeof(path), "%s/absent.sock", dir);
	k = qmp_open_path(path, 300, &q, msg, sizeof(msg));
	CHECK(k == -ENOENT && strstr(msg, "cannot connect"), "%s", msg);
	return 0;
fail:
	return -1;
}

static void remove_dir(const char *dir)
{
	static const char *const names[] = {"garbage.sock", "json.sock", "silent.sock", "qmp.sock"};
	char path[300];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

int main(void)
{
	char dir[] = "/tmp/uffsnap-qmp-XXXXXX", sock[256], msg[256] = "";
	const char *bin = qemu_binary();
	json_t *r = NULL, *ev = NULL;
	struct qmp *q;
	int p[2] = {-1, -1}, status;
	pid_t qemu = -1;

	if (!bin) {
		printf("SKIP: qemu-system-x86_64 is not installed (./dev installs it)\n");
		return 77;
	}
	CHECK(mkdtemp(dir), "%s", msg);
	CHECK(test_not_qemu(dir) == 0, "sockets that are not QEMU's");

	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
	qemu = start_qemu(bin, sock);
	CHECK(qemu > 0, "%s", msg);
	q = open_when_up(sock, qemu, msg, sizeof(msg));
	if (!q)
		fprintf(stderr, "QMP: %s\n", msg);
	CHECK(q, "%s", msg);
	CHECK(qmp_peer_pid(q) == qemu, "%s", msg);
	CHECK(!strncmp(qmp_version(q), "7.", 2) || atoi(qmp_version(q)) >= 7, "%s", msg);

	CHECK(qmp_exec(q, "query-status", NULL, -1, &r, msg, sizeof(msg)) == 0, "%s", msg);
	CHECK(!strcmp(json_string_value(json_object_get(r, "status")), "prelaunch"), "%s", msg);
	json_decref(r);

	CHECK(qmp_exec(q, "no-such-command", NULL, -1, NULL, msg, sizeof(msg)) == -EREMOTEIO, "%s", msg);
	CHECK(strstr(msg, "no-such-command"), "%s", msg);

	/* an fd rides with getfd; QEMU then knows its name */
	CHECK(pipe(p) == 0, "%s", msg);
	json_t *a = json_pack("{s:s}", "fdname", "t1");
	CHECK(qmp_exec(q, "getfd", a, p[1], NULL, msg, sizeof(msg)) == 0, "%s", msg);
	CHECK(qmp_exec(q, "closefd", a, -1, NULL, msg, sizeof(msg)) == 0, "%s", msg);
	CHECK(qmp_exec(q, "closefd", a, -1, NULL, msg, sizeof(msg)) == -EREMOTEIO, "%s", msg);
	json_decref(a);

	/* events are queued while a command is waited for */
	CHECK(qmp_exec(q, "cont", NULL, -1, NULL, msg, sizeof(msg)) == 0, "%s", msg);
	CHECK(qmp_exec(q, "stop", NULL, -1, NULL, msg, sizeof(msg)) == 0, "%s", msg);
	CHECK(qmp_wait_event(q, "STOP", 60000, &ev, msg, sizeof(msg)) == 0, "%s", msg);
	CHECK(!strcmp(json_string_value(json_object_get(ev, "event")), "STOP"), "%s", msg);
	json_decref(ev);
	CHECK(qmp_wait_event(q, "RESUME", 60000, &ev, msg, sizeof(msg)) == 0, "%s", msg);
	json_decref(ev);
	CHECK(qmp_wait_event(q, "RESUME", 100, &ev, msg, sizeof(msg)) == -ETIMEDOUT, "%s", msg);

	/* QEMU gone */
	qmp_exec(q, "quit", NULL, -1, NULL, msg, sizeof(msg));
	CHECK(waitpid(qemu, &status, 0) == qemu, "%s", msg);
	CHECK(qmp_exec(q, "query-status", NULL, -1, NULL, msg, sizeof(msg)) < 0, "%s", msg);
	qmp_close(q);
	close(p[0]);
	close(p[1]);
	remove_dir(dir);
	printf("ok: QMP client against QEMU\n");
	return 0;
fail:
	if (qemu > 0)
		kill(qemu, SIGKILL);
	remove_dir(dir);
	return 1;
}
