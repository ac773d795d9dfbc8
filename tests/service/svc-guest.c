/* SPDX-License-Identifier: MIT */
/* Firmware-only QEMU guests for the service-mode tests (svc-guest.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qmp.h"
#include "svc-guest.h"
#include "test-check.h"

int svc_guest_start(struct svc_guest *g, const char *dir, const char *name,
		    enum svc_guest_mode mode)
{
	const char *argv[] = {SVC_QEMU,
			      "-nodefaults",
			      "-no-user-config",
			      "-display",
			      "none",
			      "-accel",
			      "tcg",
			      "-machine",
			      "pc-i440fx-7.2,memory-backend=ram0",
			      "-m",
			      "64M",
			      "-object",
			      "memory-backend-memfd,id=ram0,size=64M,share=on",
			      "-qmp",
			      NULL,
			      NULL,
			      NULL,
			      NULL};
	char qmp[200], ram[300];

	snprintf(g->sock, sizeof(g->sock), "%s/%s.qmp", dir, name);
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", g->sock);
	argv[14] = qmp;
	if (mode == SVC_GUEST_PAUSED)
		argv[15] = "-S";
	if (mode == SVC_GUEST_INCOMING) {
		snprintf(ram, sizeof(ram),
			 "memory-backend-file,id=ram0,size=64M,mem-path=%s/%s.ram,share=on", dir,
			 name);
		argv[12] = ram;
		argv[15] = "-incoming";
		argv[16] = "defer";
	}
	g->pid = fork();
	if (g->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, 1);
		execv(SVC_QEMU, (char **)argv);
		_exit(127);
	}
	for (int i = 0; i < SVC_QMP_WAIT_MS / 10; i++) {
		if (test_unix_listening(g->sock)) /* a QMP connection is accepted */
			return 0;
		if (waitpid(g->pid, NULL, WNOHANG) == g->pid)
			return -ESRCH;
		test_sleep_ms(10);
	}
	return -ETIMEDOUT;
}

void svc_guest_kill(struct svc_guest *g)
{
	if (g->pid > 0) {
		kill(g->pid, SIGKILL);
		waitpid(g->pid, NULL, 0);
	}
	g->pid = 0;
}

/* A connection to a unix socket, nothing read from it: what a client passes as 'qemu'. */
int svc_connect_raw(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* One QMP command over a connection of our own (QEMU serves one client at a time: it waits). */
int svc_qmp_one(const struct svc_guest *g, const char *cmd, json_t *args, json_t **ret)
{
	char msg[256];
	struct qmp *q = NULL;
	int k = qmp_open_path(g->sock, SVC_QMP_WAIT_MS, &q, msg, sizeof(msg));

	if (k >= 0)
		k = qmp_exec(q, cmd, args, -1, ret, msg, sizeof(msg));
	if (k < 0)
		printf("QMP %s: %s\n", cmd, msg);
	json_decref(args);
	qmp_close(q);
	return k;
}

bool svc_guest_status_is(const struct svc_guest *g, const char *want)
{
	json_t *r = NULL;
	bool ok = svc_qmp_one(g, "query-status", NULL, &r) >= 0 &&
		  !strcmp(json_string_value(json_object_get(r, "status")) ?: "", want);

	if (!ok)
		printf("guest status: %s (want %s)\n",
		       json_string_value(json_object_get(r, "status")) ?: "?", want);
	json_decref(r);
	return ok;
}

/* A migration capability's state: 0, 1, or -1 if QEMU did not say. */
int svc_guest_cap(const struct svc_guest *g, const char *name)
{
	json_t *r = NULL, *e;
	size_t i;
	int on = -1;

	if (svc_qmp_one(g, "query-migrate-capabilities", NULL, &r) < 0)
		return -1;
	json_array_foreach(
	    r, i, e) if (!strcmp(json_string_value(json_object_get(e, "capability")) ?: "", name))
	    on = json_is_true(json_object_get(e, "state"));
	json_decref(r);
	return on;
}

int svc_guest_set_events(const struct svc_guest *g)
{
	return svc_qmp_one(
	    g, "migrate-set-capabilities",
	    json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "events", "state", 1),
	    NULL);
}

const char *svc_desc_of(json_t *r)
{
	json_t *e = json_object_get(r, "error");

	if (!e)
		e = json_object_get(r, "data");
	return json_string_value(json_object_get(e, "desc")) ?: "";
}

/* getfd name for a fresh connection to path (closed here: the daemon holds its own). */
int svc_pass_socket(struct svc_conn *c, const char *path, const char *name)
{
	int fd = svc_connect_raw(path);
	json_t *r;
	int ok;

	if (fd < 0)
		return -1;
	r = svc_call(c, "getfd", json_pack("{s:s}", "fdname", name), fd);
	close(fd);
	ok = !strcmp(svc_class(r), "");
	json_decref(r);
	return ok ? 0 : -1;
}

long long svc_job_id(json_t *reply)
{
	return json_integer_value(json_object_get(json_object_get(reply, "return"), "id"));
}
