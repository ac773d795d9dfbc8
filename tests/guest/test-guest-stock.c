// SPDX-License-Identifier: MIT
/*
 * The stock-QEMU path end to end, without uffsnapd: what uffsnapd --qemu and uffsnapctl qemu
 * restore build on (../shared/QEMU.md), checked on a real guest.
 *
 * Boot the guest (RAM in a shared memfd); stop it by QMP; save the device state with
 * x-ignore-shared through an fd passed with getfd; copy its RAM out of QEMU's memfd while it is
 * stopped; cont; the source keeps ticking with its page check clean. The copy must be exactly
 * the state after one tick T (the oracle). A second QEMU, same command line but a file backend
 * on the copy and -incoming defer, loads the device state and continues: its serial output is
 * the byte-exact continuation of the source's at the stop, and it completes tick T + 1 and
 * goes on, its page check clean. Costs one boot; a restore does not boot.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest-harness.h"
#include "guest-pattern.h"
#include "qmp.h"
#include "test-check.h"

static const char *const caps[] = {"x-ignore-shared", "events", NULL};

/* Safety nets so that a stuck test ends; nothing here asserts on time. */
#define BOOT_TIMEOUT_S  300
#define TICKS_TIMEOUT_S 120
#define QMP_TIMEOUT_S   60
#define TICKS_AFTER     30 /* ticks each guest must go on for, page check clean */

struct stock {
	struct guest_config cfg;
	struct guest src, dst;
	struct qmp *qsrc, *qdst;
	struct guest_layout layout;
	char dir[64], ram[128], dev[128], joined[128];
	char why[GUEST_WHY_LEN];
	off_t stop_off; /* the source's serial log size at the stop */
	long last_line; /* the last tick line the source had printed by then */
	struct guest_oracle state;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int read_ram(void *ctx, uint64_t gpa, void *buf)
{
	int fd = *(int *)ctx;

	return pread(fd, buf, GP_PAGE_SIZE, gpa) == GP_PAGE_SIZE ? 0 : -EIO;
}

/* Copies the guest's RAM (QEMU's memfd) into a regular file, leaving zero pages as holes. */
static int copy_ram(const struct guest *g, const char *to)
{
	static const char zero[GP_PAGE_SIZE];
	const size_t chunk = 1 << 20;
	char path[128], *buf = malloc(chunk);
	int in = -EBADF, out = -EBADF, r = guest_memfd_path(g, path, sizeof(path));
	uint64_t off, k;

	if (r == 0 && (in = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		r = -errno;
	if (r == 0 && (out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		r = -errno;
	if (r == 0 && ftruncate(out, GUEST_RAM_BYTES) < 0)
		r = -errno;
	for (off = 0; r == 0 && buf && off < GUEST_RAM_BYTES; off += chunk) {
		if (pread(in, buf, chunk, off) != (ssize_t)chunk) {
			r = -EIO;
			break;
		}
		for (k = 0; k < chunk && r == 0; k += GP_PAGE_SIZE)
			if (memcmp(buf + k, zero, GP_PAGE_SIZE) &&
			    pwrite(out, buf + k, GP_PAGE_SIZE, off + k) != GP_PAGE_SIZE)
				r = -EIO;
	}
	if (!buf)
		r = -ENOMEM;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0 && r == 0)
		r = -errno;
	free(buf);
	return r;
}

static int boot(struct stock *s)
{
	struct guest_log log;
	double t0 = now_s();

	CHECK(guest_start(&s->src, &s->cfg, s->why, sizeof(s->why)) == 0, "%s", s->why);
	CHECK(guest_wait_tick(&s->src, 0, 10, BOOT_TIMEOUT_S, &log, s->why, sizeof(s->why)) == 0,
	      "%s", s->why);
	printf("source booted: tick 10 after %.1f s (informational)\n", now_s() - t0);
	CHECK(guest_log_read(s->src.serial_path, 0, -1, &log, &s->layout) == 0,
	      "no complete page layout in %s", s->src.serial_path);
	CHECK(log.bad == 0 && log.gaps == 0, "source before the snapshot: %s%s", log.first_bad,
	      log.first_gap);
	CHECK(guest_qmp_open(&s->src, QMP_TIMEOUT_S, &s->qsrc, s->why, sizeof(s->why)) == 0, "%s",
	      s->why);
	return 0;
fail:
	return -1;
}

/* stop, device state into s->dev, RAM into s->ram, cont. */
static int snapshot(struct stock *s)
{
	struct guest_log log;
	struct stat st;
	int fd;

	CHECK(guest_qmp_caps(s->qsrc, caps, true, s->why, sizeof(s->why)) == 0, "%s", s->why);
	CHECK(guest_qmp(s->qsrc, "stop", NULL, -1, NULL, s->why, sizeof(s->why)) == 0, "%s",
	      s->why);
	/* With the vCPUs stopped nothing more reaches the serial port: the log ends here. */
	s->stop_off = guest_serial_size(&s->src);
	fd = open(s->dev, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "%s: %m", s->dev);
	CHECK(guest_qmp(s->qsrc, "getfd", json_pack("{s:s}", "fdname", "dev"), fd, NULL, s->why,
			sizeof(s->why)) == 0,
	      "%s", s->why);
	close(fd);
	CHECK(guest_qmp(s->qsrc, "migrate", json_pack("{s:s}", "uri", "fd:dev"), -1, NULL, s->why,
			sizeof(s->why)) == 0,
	      "%s", s->why);
	CHECK(guest_qmp_wait_migration(s->qsrc, QMP_TIMEOUT_S, s->why, sizeof(s->why)) == 0,
	      "device state migration did not complete: %s", s->why);
	CHECK(stat(s->dev, &st) == 0 && st.st_size > 0, "empty device state %s", s->dev);
	printf("device state: %lld bytes (x-ignore-shared)\n", (long long)st.st_size);
	CHECK(copy_ram(&s->src, s->ram) == 0, "copying the guest RAM out of QEMU's memfd failed");
	CHECK(guest_qmp_cont(s->qsrc, s->why, sizeof(s->why)) == 0, "%s", s->why);

	CHECK(guest_log_read(s->src.serial_path, 0, s->stop_off, &log, NULL) == 0, "log");
	s->last_line = log.last_tick;
	CHECK(guest_wait_tick(&s->src, s->stop_off, s->last_line + TICKS_AFTER, TICKS_TIMEOUT_S,
			      &log, s->why, sizeof(s->why)) == 0,
	      "source after cont: %s", s->why);
	CHECK(guest_log_read(s->src.serial_path, 0, -1, &log, NULL) == 0, "log");
	CHECK(log.bad == 0 && log.gaps == 0, "source after cont: %s%s", log.first_bad,
	      log.first_gap);
	printf("source: stopped after tick line %ld, went on to tick %ld, clean\n", s->last_line,
	       log.last_tick);
	return 0;
fail:
	return -1;
}

static int oracle(struct stock *s)
{
	int fd = open(s->ram, O_RDONLY | O_CLOEXEC), r;

	CHECK(fd >= 0, "%s: %m", s->ram);
	r = guest_oracle_check(&s->layout, read_ram, &fd, &s->state, s->why, sizeof(s->why));
	close(fd);
	CHECK(r == 0, "the RAM copy is no state of the guest: %s", s->why);
	printf("RAM copy: exactly the state after tick %llu + %llu pages and %u words of the next "
	       "(control page: started %llu done %llu bad %llu)\n",
	       (unsigned long long)s->state.tick, (unsigned long long)s->state.prefix_pages,
	       s->state.prefix_words, (unsigned long long)s->state.tick_started,
	       (unsigned long long)s->state.tick_done, (unsigned long long)s->state.guest_bad);
	CHECK(s->state.guest_bad == 0, "the guest had found bad pages");
	/* A tick's line is printed after its writes: every line out by the stop is <= T. */
	CHECK(s->last_line <= (long)s->state.tick, "tick line %ld printed, RAM at tick %llu",
	      s->last_line, (unsigned long long)s->state.tick);
	return 0;
fail:
	return -1;
}

/* Appends bytes [0, len) of file `from` (len < 0: all of it) to fd. */
static int append(int fd, const char *from, off_t len)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	char buf[65536];
	ssize_t n = 0;

	if (in < 0)
		return -errno;
	while (len != 0 && (n = read(in, buf, len > 0 && len < (off_t)sizeof(buf) ? len
								     : (off_t)sizeof(buf))) > 0) {
		if (write(fd, buf, n) != n) {
			n = -1;
			break;
		}
		if (len > 0)
			len -= n;
	}
	close(in);
	return n < 0 ? -EIO : 0;
}

/* The source's log up to the stop, then everything the restored guest printed. */
static int join_logs(struct stock *s, struct guest_log *ret)
{
	int fd = open(s->joined, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), r;

	if (fd < 0)
		return -errno;
	r = append(fd, s->src.serial_path, s->stop_off);
	if (r == 0)
		r = append(fd, s->dst.serial_path, -1);
	close(fd);
	return r < 0 ? r : guest_log_read(s->joined, 0, -1, ret, NULL);
}

static int restore(struct stock *s)
{
	long next = s->state.tick + 1;
	struct guest_log log, joined;
	json_t *status = NULL;
	int fd;

	CHECK(guest_start_incoming(&s->dst, &s->cfg, s->ram, s->why, sizeof(s->why)) == 0, "%s",
	      s->why);
	CHECK(guest_qmp_open(&s->dst, QMP_TIMEOUT_S, &s->qdst, s->why, sizeof(s->why)) == 0, "%s",
	      s->why);
	CHECK(guest_qmp_caps(s->qdst, caps, true, s->why, sizeof(s->why)) == 0, "%s", s->why);
	fd = open(s->dev, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "%s: %m", s->dev);
	CHECK(guest_qmp(s->qdst, "getfd", json_pack("{s:s}", "fdname", "dev"), fd, NULL, s->why,
			sizeof(s->why)) == 0,
	      "%s", s->why);
	close(fd);
	CHECK(guest_qmp(s->qdst, "migrate-incoming", json_pack("{s:s}", "uri", "fd:dev"), -1, NULL,
			s->why, sizeof(s->why)) == 0,
	      "%s", s->why);
	CHECK(guest_qmp_wait_migration(s->qdst, QMP_TIMEOUT_S, s->why, sizeof(s->why)) == 0,
	      "loading the device state failed: %s; see %s", s->why, s->dst.stderr_path);
	CHECK(guest_qmp(s->qdst, "query-status", NULL, -1, &status, s->why, sizeof(s->why)) == 0,
	      "%s", s->why);
	printf("restored guest after migrate-incoming: %s\n",
	       json_string_value(json_object_get(status, "status")));
	json_decref(status);
	CHECK(guest_qmp_cont(s->qdst, s->why, sizeof(s->why)) == 0, "%s", s->why);

	CHECK(guest_wait_tick(&s->dst, 0, next + TICKS_AFTER, TICKS_TIMEOUT_S, &log, s->why,
			      sizeof(s->why)) == 0,
	      "restored guest: %s", s->why);
	CHECK(log.bad == 0 && log.gaps == 0, "restored guest: %s%s", log.first_bad, log.first_gap);
	/* Tick T + 1 is completed after the restore, so its whole line is the restored guest's. */
	CHECK(log.first_tick >= 0 && log.first_tick <= next, "restored guest's first line tick %ld, "
	      "but tick %ld was not complete in its RAM", log.first_tick, next);
	CHECK(join_logs(s, &joined) == 0, "cannot join the logs into %s", s->joined);
	CHECK(joined.bad == 0 && joined.gaps == 0,
	      "the restored guest's output does not continue the source's at the stop: %s",
	      joined.first_gap);
	printf("restored guest: first line tick %ld (RAM at tick %ld), went on to tick %ld, clean; "
	       "its output continues the source's exactly\n",
	       log.first_tick, next - 1, log.last_tick);
	return 0;
fail:
	return -1;
}

int main(void)
{
	struct stock *s = calloc(1, sizeof(*s));
	int status = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!s)
		return 1;
	if (guest_config_find(&s->cfg, s->why, sizeof(s->why)) < 0) {
		printf("SKIP: cannot boot a test guest: %s\n", s->why);
		free(s);
		return GUEST_SKIP;
	}
	snprintf(s->dir, sizeof(s->dir), "/tmp/uffsnap-guest-stock.XXXXXX");
	if (!mkdtemp(s->dir)) {
		printf("FAIL: mkdtemp: %m\n");
		free(s);
		return 1;
	}
	snprintf(s->ram, sizeof(s->ram), "%s/ram", s->dir);
	snprintf(s->dev, sizeof(s->dev), "%s/devstate", s->dir);
	snprintf(s->joined, sizeof(s->joined), "%s/joined.log", s->dir);
	if (boot(s) == 0 && snapshot(s) == 0 && oracle(s) == 0 && restore(s) == 0)
		status = 0;
	qmp_close(s->qsrc);
	qmp_close(s->qdst);
	guest_stop(&s->src);
	guest_stop(&s->dst);
	guest_layout_free(&s->layout);
	unlink(s->ram);
	unlink(s->dev);
	unlink(s->joined);
	rmdir(s->dir);
	printf("%s\n", status ? "FAIL" : "PASS");
	free(s);
	return status;
}
