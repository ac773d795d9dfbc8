// SPDX-License-Identifier: MIT
/* Migrations of the test guest between two network namespaces (guest-mig.h). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "guest-mig.h"
#include "qmp.h"
#include "test-check.h"

static int ns_fd(const char *name)
{
	char path[96];

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	return open(path, O_RDONLY | O_CLOEXEC);
}

int mig_net_setup(struct mig_net *m)
{
	int k = net_setup(&m->n);

	m->self = m->a = m->b = -1;
	if (k)
		return k;
	m->self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	m->a = ns_fd(m->n.ns_a);
	m->b = ns_fd(m->n.ns_b);
	if (m->self < 0 || m->a < 0 || m->b < 0) {
		printf("FAIL: cannot open the network namespaces: %m\n");
		return -1;
	}
	return 0;
}

void mig_net_teardown(struct mig_net *m)
{
	net_teardown(&m->n); /* the namespaces, the veth pair, the work directory */
	if (m->self >= 0)
		close(m->self);
	if (m->a >= 0)
		close(m->a);
	if (m->b >= 0)
		close(m->b);
	m->self = m->a = m->b = -1;
}

int mig_guest_start(const struct mig_net *m, int nsfd, struct guest *g,
		    const struct guest_config *cfg, enum mig_start how, const char *ram_file,
		    char *why, size_t len)
{
	int k;

	if (setns(nsfd, CLONE_NEWNET) < 0)
		return -errno;
	k = how == MIG_BOOT	       ? guest_start(g, cfg, why, len)
	    : how == MIG_INCOMING_FILE ? guest_start_incoming(g, cfg, ram_file, why, len)
				       : guest_start_incoming_memfd(g, cfg, why, len);
	if (setns(m->self, CLONE_NEWNET) < 0)
		k = -errno;
	for (int i = 0; k >= 0 && i < MIG_WAIT_MAX_MS / 20 && !test_unix_listening(g->qmp_path);
	     i++)
		test_sleep_ms(20);
	return k;
}

pid_t mig_spawn(int nsfd, const char *const *argv, const char *out, const char *err,
		const char *env)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if ((nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0) || o < 0 || e < 0 || dup2(o, 1) < 0 ||
		    dup2(e, 2) < 0)
			_exit(127);
		if (env)
			putenv((char *)env);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

int mig_wait_exit(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

bool mig_wait_file(const char *path, const char *s)
{
	for (int i = 0; i < MIG_WAIT_MAX_MS / 20; i++) {
		if (s ? net_log_has(path, s) : access(path, F_OK) == 0)
			return true;
		test_sleep_ms(20);
	}
	return false;
}

pid_t mig_receiver(const struct mig_net *m, const char *uffsnapd, const struct guest *dst,
		   const char *port, const char *key, const char *out, const char *err, char *why,
		   size_t len)
{
	char listen[64];
	const char *argv[] = {uffsnapd,		  "--receive", "--qemu", dst->qmp_path,
			      "--listen",	  listen,      "--key",	 key,
			      "--resume-timeout", "3",	       "--json", NULL};
	pid_t pid;

	snprintf(listen, sizeof(listen), "%s:%s", m->n.ip_b, port);
	unlink(err); /* the last receiver's "listening" line must not count */
	pid = mig_spawn(m->b, argv, out, err, NULL);
	for (int i = 0; pid > 0 && i < MIG_WAIT_MAX_MS / 20; i++) {
		if (net_log_has(err, "migration receiver on"))
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid) /* reaped: never signalled again */
			break;
		test_sleep_ms(20);
	}
	snprintf(why, len, "the receiver never listened: see %s", err);
	return 0;
}

int mig_status(const struct guest *g, char *st, size_t len, char *why, size_t wlen)
{
	struct qmp *q = NULL;
	json_t *ret = NULL;
	int k = guest_qmp_open(g, 60, &q, why, wlen);

	if (k >= 0)
		k = guest_qmp(q, "query-status", NULL, -1, &ret, why, wlen);
	if (k >= 0)
		snprintf(st, len, "%s", json_string_value(json_object_get(ret, "status")) ?: "?");
	json_decref(ret);
	qmp_close(q);
	return k;
}
