/* SPDX-License-Identifier: MIT */
/*
 * The destination QEMU, over QMP: that it waits in 'inmigrate' with the image's machine type
 * and backends, where its backends' files are, and loading the device state (QEMU's migration
 * stream taken with x-ignore-shared) through a pipe passed with getfd. Facts relied on are in
 * ../shared/QEMU.md ("Restore by stock QEMU"), checked with QEMU 7.2.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli-meta.h"
#include "cli-qemu.h"

/* The fd name given to getfd, and the suffix of QOM machine type names. */
#define LOAD_FD_NAME   "uffsnap-devstate"
#define MACHINE_SUFFIX "-machine"
/* 'cont' right after the migration can fail once with this (QEMU.md). */
#define NOT_FINALIZED "Migration is not finalized yet"

static int qom_get(struct qmp *q, const char *path, const char *prop, json_t **ret, char *msg,
		   size_t len)
{
	json_t *args = json_pack("{s:s,s:s}", "path", path, "property", prop);
	int r = args ? qmp_exec(q, "qom-get", args, -1, ret, msg, len) : -ENOMEM;

	json_decref(args);
	return r;
}

/* The running machine type: QOM's type of /machine without "-machine" ("pc-i440fx-7.2"). */
static int dest_machine(struct qmp *q, char *buf, size_t buflen, char *msg, size_t len)
{
	json_t *t = NULL;
	const char *s;
	size_t n;
	int r = qom_get(q, "/machine", "type", &t, msg, len);

	if (r < 0)
		return r;
	s = json_is_string(t) ? json_string_value(t) : "";
	n = strlen(s);
	if (n > strlen(MACHINE_SUFFIX) && !strcmp(s + n - strlen(MACHINE_SUFFIX), MACHINE_SUFFIX))
		n -= strlen(MACHINE_SUFFIX);
	snprintf(buf, buflen, "%.*s", (int)n, s);
	json_decref(t);
	return 0;
}

static int dest_status(struct qmp *q, char *buf, size_t buflen, char *msg, size_t len)
{
	json_t *st = NULL;
	int r = qmp_exec(q, "query-status", NULL, -1, &st, msg, len);

	if (r >= 0)
		snprintf(buf, buflen, "%s", cli_json_str(st, "status") ?: "?");
	json_decref(st);
	return r;
}

static json_t *memdev_find(json_t *memdevs, const char *id)
{
	size_t i;
	json_t *m;

	json_array_foreach(memdevs, i, m) if (cli_json_str(m, "id") &&
					      !strcmp(cli_json_str(m, "id"), id)) return m;
	return NULL;
}

/* Each difference in backends is a line; returns how many. */
static int dest_backends_differ(const char *name, const struct cli_qemu_guest *g, json_t *memdevs)
{
	char a[32], b[32];
	int diffs = 0;
	size_t i;
	json_t *m;

	for (i = 0; i < g->nbackends; i++) {
		const struct cli_qemu_backend *bk = &g->backends[i];
		uint64_t size;

		m = memdev_find(memdevs, bk->id);
		if (!m && ++diffs)
			fprintf(stderr,
				"uffsnapctl: %s: has no memory backend '%s' (the image's, "
				"%s): add -object memory-backend-file,id=%s,size=%" PRIu64
				",mem-path=FILE,share=on\n",
				name, bk->id, cli_format_size(bk->size, a, sizeof(a)), bk->id,
				bk->size);
		else if (m && (cli_json_u64(m, "size", &size) < 0 || size != bk->size) && ++diffs)
			fprintf(stderr,
				"uffsnapctl: %s: memory backend '%s' has %s (%" PRIu64
				" bytes), the image's has %s (%" PRIu64 " bytes)\n",
				name, bk->id, cli_format_size(size, a, sizeof(a)), size,
				cli_format_size(bk->size, b, sizeof(b)), bk->size);
	}
	json_array_foreach(memdevs, i, m)
	{
		const char *id = cli_json_str(m, "id");
		bool known = false;

		for (size_t k = 0; id && k < g->nbackends; k++)
			known |= !strcmp(g->backends[k].id, id);
		if (!known && ++diffs)
			fprintf(stderr,
				"uffsnapctl: %s: has memory backend '%s', which the image "
				"does not have\n",
				name, id ? id : "?");
	}
	return diffs;
}

int cli_qemu_check_dest(struct qmp *q, const char *name, const struct cli_qemu_guest *g, char *msg,
			size_t len)
{
	char status[64], machine[128];
	json_t *memdevs = NULL;
	int r, diffs = 0;

	r = dest_status(q, status, sizeof(status), msg, len);
	if (r >= 0 && strcmp(status, "inmigrate"))
		return cli_qemu_fail(msg, len, -EBUSY,
				     "QEMU is '%s', not waiting for an incoming "
				     "migration ('inmigrate'): start it with -incoming defer",
				     status);
	if (r >= 0)
		r = dest_machine(q, machine, sizeof(machine), msg, len);
	if (r >= 0 && strcmp(machine, g->machine) && ++diffs)
		fprintf(stderr,
			"uffsnapctl: %s: machine type is %s, the image's guest ran %s "
			"(start QEMU with -machine %s)\n",
			name, machine, g->machine, g->machine);
	if (r >= 0)
		r = qmp_exec(q, "query-memdev", NULL, -1, &memdevs, msg, len);
	if (r >= 0)
		diffs += dest_backends_differ(name, g, memdevs);
	json_decref(memdevs);
	if (r < 0)
		return r;
	return diffs ? cli_qemu_fail(msg, len, -EMEDIUMTYPE,
				     "QEMU does not match the image (%d "
				     "difference%s above): nothing was written",
				     diffs, diffs == 1 ? "" : "s")
		     : 0;
}

int cli_qemu_backend_path(struct qmp *q, const char *id, char **ret, char *msg, size_t len)
{
	char path[256];
	json_t *type = NULL, *share = NULL, *file = NULL;
	int r;

	snprintf(path, sizeof(path), "/objects/%s", id);
	r = qom_get(q, path, "type", &type, msg, len);
	if (r >= 0 &&
	    (!json_is_string(type) || strcmp(json_string_value(type), "memory-backend-file")))
		r = cli_qemu_fail(
		    msg, len, -EMEDIUMTYPE,
		    "memory backend '%s' is a %s: uffsnapctl writes the RAM into a file; use "
		    "-object memory-backend-file,id=%s,...,mem-path=FILE,share=on",
		    id, json_is_string(type) ? json_string_value(type) : "?", id);
	if (r >= 0)
		r = qom_get(q, path, "share", &share, msg, len);
	if (r >= 0 && !json_is_true(share))
		r = cli_qemu_fail(
		    msg, len, -EMEDIUMTYPE,
		    "memory backend '%s' is not shared: QEMU would not see the file's "
		    "content; add share=on",
		    id);
	if (r >= 0)
		r = qom_get(q, path, "mem-path", &file, msg, len);
	if (r >= 0 && !(*ret = strdup(json_string_value(file) ?: "")))
		r = -ENOMEM;
	json_decref(type);
	json_decref(share);
	json_decref(file);
	return r;
}

/* --- loading the device state ------------------------------------------------------------ */

struct feeder {
	pthread_t thread;
	int fd; /* the pipe's write end; the thread closes it (EOF ends QEMU's stream) */
	const uint8_t *data;
	size_t len, done;
	int error;
};

static void feeder_close(void *arg)
{
	close(((struct feeder *)arg)->fd);
}

static void *feeder_main(void *arg)
{
	struct feeder *f = arg;
	sigset_t pipe_sig;

	pthread_cleanup_push(feeder_close, f);
	/* A QEMU that gave up reading must not kill us with SIGPIPE: take EPIPE instead. */
	sigemptyset(&pipe_sig);
	sigaddset(&pipe_sig, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_sig, NULL);
	while (f->done < f->len) {
		ssize_t n = write(f->fd, f->data + f->done, f->len - f->done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			f->error = -errno;
			break;
		}
		f->done += n;
	}
	pthread_cleanup_pop(1);
	return NULL;
}

static int set_caps(struct qmp *q, char *msg, size_t len)
{
	json_t *args = json_pack("{s:[{s:s,s:b},{s:s,s:b}]}", "capabilities", "capability",
				 "x-ignore-shared", "state", 1, "capability", "events", "state", 1);
	int r = args ? qmp_exec(q, "migrate-set-capabilities", args, -1, NULL, msg, len) : -ENOMEM;

	json_decref(args);
	return r;
}

/* Passes the pipe's read end as LOAD_FD_NAME and starts the incoming migration from it. */
static int start_incoming(struct qmp *q, int rfd, char *msg, size_t len)
{
	json_t *args = json_pack("{s:s}", "fdname", LOAD_FD_NAME);
	int r = args ? qmp_exec(q, "getfd", args, rfd, NULL, msg, len) : -ENOMEM;

	json_decref(args);
	if (r < 0)
		return r;
	args = json_pack("{s:s}", "uri", "fd:" LOAD_FD_NAME);
	r = args ? qmp_exec(q, "migrate-incoming", args, -1, NULL, msg, len) : -ENOMEM;
	json_decref(args);
	return r;
}

/* Waits for the MIGRATION event that ends it: 0 for completed, -EPROTO for failed. */
static int wait_migration(struct qmp *q, int timeout_ms, char *msg, size_t len)
{
	int64_t deadline = cli_qemu_now_ms() + timeout_ms;

	for (;;) {
		json_t *ev = NULL;
		int64_t left = deadline - cli_qemu_now_ms();
		int r = qmp_wait_event(q, "MIGRATION", left > 0 ? (int)left : 0, &ev, msg, len);
		const char *status;

		if (r == -ETIMEDOUT)
			return cli_qemu_fail(msg, len, r,
					     "the device state was not loaded within %d s",
					     timeout_ms / 1000);
		if (r < 0)
			return r;
		status = cli_json_str(json_object_get(ev, "data"), "status");
		r = !status			   ? 1
		    : !strcmp(status, "completed") ? 0
		    : !strcmp(status, "failed") || !strcmp(status, "cancelled")
			? cli_qemu_fail(msg, len, -EPROTO,
					"QEMU refused the device state (migration %s; "
					"its log says why)",
					status)
			: 1;
		json_decref(ev);
		if (r <= 0)
			return r;
	}
}

static int cont(struct qmp *q, struct cli_qemu_load_stats *st, char *msg, size_t len)
{
	int r = qmp_exec(q, "cont", NULL, -1, NULL, msg, len);

	if (r == -EREMOTEIO && strstr(msg, NOT_FINALIZED)) {
		st->cont_retried = true;
		usleep(100 * 1000);
		r = qmp_exec(q, "cont", NULL, -1, NULL, msg, len);
	}
	return r;
}

int cli_qemu_load(struct qmp *q, const void *devstate, size_t devstate_len, int timeout_ms,
		  struct cli_qemu_load_stats *st, char *msg, size_t len)
{
	struct feeder f = {.data = devstate, .len = devstate_len};
	int p[2], r;
	int64_t t0;

	r = set_caps(q, msg, len);
	if (r < 0)
		return r;
	if (pipe2(p, O_CLOEXEC) < 0)
		return cli_qemu_fail(msg, len, -errno, "pipe: %s", strerror(errno));
	f.fd = p[1];
	r = -pthread_create(&f.thread, NULL, feeder_main, &f);
	if (r < 0) {
		close(p[0]);
		close(p[1]);
		return cli_qemu_fail(msg, len, r, "cannot start a thread: %s", strerror(-r));
	}
	t0 = cli_qemu_now_ms();
	r = start_incoming(q, p[0], msg, len);
	close(p[0]); /* QEMU holds its own copy now (or never will: the feeder gets EPIPE) */
	if (r >= 0)
		r = wait_migration(q, timeout_ms, msg, len);
	if (r < 0) /* QEMU may hold the read end and read no more: the write would block */
		pthread_cancel(f.thread);
	pthread_join(f.thread, NULL);
	st->migrate_ms = cli_qemu_now_ms() - t0;
	if (r >= 0 && f.error)
		r = cli_qemu_fail(msg, len, f.error, "writing the device state to QEMU: %s",
				  strerror(-f.error));
	if (r >= 0)
		r = dest_status(q, st->status, sizeof(st->status), msg, len);
	if (r >= 0 && strcmp(st->status, "running")) {
		r = cont(q, st, msg, len);
		if (r >= 0)
			r = dest_status(q, st->status, sizeof(st->status), msg, len);
	}
	return r;
}
