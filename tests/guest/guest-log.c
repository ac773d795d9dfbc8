// SPDX-License-Identifier: MIT
/*
 * Reading the guest program's serial output (guest-harness.h): its layout lines and its ticks.
 * The console turns "\n" into "\r\n"; SeaBIOS's escape sequences may precede the first line.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guest-harness.h"
#include "guest-pattern.h"
#include "test-check.h"

/* Reads bytes [from, to) (to < 0: to the end); *ret_partial: from is not a line start. */
static int read_range(const char *path, off_t from, off_t to, char **ret, size_t *ret_len,
		      bool *ret_partial)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;
	char before = '\n', *buf = NULL;
	off_t end;

	if (fd < 0)
		return -errno;
	end = lseek(fd, 0, SEEK_END);
	if (to < 0 || to > end)
		to = end;
	if (from > to)
		from = to;
	if (end < 0 || !(buf = malloc(to - from + 1)))
		r = end < 0 ? -EIO : -ENOMEM;
	if (r == 0 && from > 0 && pread(fd, &before, 1, from - 1) != 1)
		r = -EIO;
	if (r == 0 && pread(fd, buf, to - from, from) != to - from)
		r = -EIO;
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[to - from] = '\0';
	*ret = buf;
	*ret_len = to - from;
	*ret_partial = before != '\n';
	return 0;
}

static void tick_line(struct guest_log *log, const char *line)
{
	long t;
	int end = 0;

	if (sscanf(line, "tick %ld ok%n", &t, &end) == 1 && end && !line[end]) {
		if (log->last_tick >= 0 && t != log->last_tick + 1 && !log->gaps++)
			snprintf(log->first_gap, sizeof(log->first_gap), "tick %ld then tick %ld",
				 log->last_tick, t);
		if (log->first_tick < 0)
			log->first_tick = t;
		log->last_tick = t;
		log->ticks++;
	} else if (sscanf(line, "tick %ld BAD%n", &t, &end) == 1 && end) {
		if (!log->bad++)
			snprintf(log->first_bad, sizeof(log->first_bad), "%s", line);
	}
}

static int layout_add_run(struct guest_layout *l, const char *line)
{
	uint64_t first, gpa, count, k;
	int dir;

	if (sscanf(line, "gc map %" SCNu64 " 0x%" SCNx64 " %" SCNu64 " %d", &first, &gpa, &count,
		   &dir) != 4 ||
	    (dir != 1 && dir != -1) || !l->gpa || first + count > l->pages)
		return -EBADMSG;
	for (k = 0; k < count; k++)
		l->gpa[first + k] = gpa + dir * (int64_t)(k * GP_PAGE_SIZE);
	return 0;
}

/* One "gc ..." line; *done set at "gc map end". */
static int layout_line(struct guest_layout *l, const char *line, bool *done)
{
	const char *p;

	if ((p = strstr(line, "gc start "))) {
		if (sscanf(p, "gc start pages %" SCNu64 " per_tick %" SCNu64, &l->pages,
			   &l->per_tick) != 2 || !l->pages)
			return -EBADMSG;
		free(l->gpa);
		l->gpa = calloc(l->pages, sizeof(*l->gpa));
		return l->gpa ? 0 : -ENOMEM;
	}
	if (sscanf(line, "gc ctl 0x%" SCNx64, &l->ctl_gpa) == 1)
		return 0;
	if (!strncmp(line, "gc map end", 10)) {
		*done = true;
		return 0;
	}
	if (!strncmp(line, "gc map ", 7))
		return layout_add_run(l, line);
	return 0;
}

void guest_layout_free(struct guest_layout *l)
{
	if (!l)
		return;
	free(l->gpa);
	l->gpa = NULL;
}

int guest_log_read(const char *path, off_t from, off_t to, struct guest_log *ret,
		   struct guest_layout *ret_layout)
{
	struct guest_log log = {.first_tick = -1, .last_tick = -1};
	struct guest_layout l = {0};
	bool done = false;
	char *buf = NULL, *line, *nl;
	size_t len = 0;
	int r = read_range(path, from, to, &buf, &len, &log.partial_start);

	if (r < 0)
		return r;
	line = buf;
	if (log.partial_start)
		line = (nl = strchr(buf, '\n')) ? nl + 1 : buf + len;
	for (; (nl = strchr(line, '\n')); line = nl + 1) {
		*nl = '\0';
		if (nl > line && nl[-1] == '\r')
			nl[-1] = '\0';
		tick_line(&log, line);
		if (strstr(line, "gc exited") || strstr(line, "Kernel panic"))
			log.ended = true;
		if (ret_layout && r == 0 && strstr(line, "gc "))
			r = layout_line(&l, line, &done);
	}
	free(buf);
	*ret = log;
	if (!ret_layout)
		return 0;
	if (r == 0 && (!done || !l.gpa))
		r = -ENODATA;
	if (r < 0) {
		guest_layout_free(&l);
		return r;
	}
	*ret_layout = l;
	return 0;
}

static uint64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* The end of a guest's serial log on stderr: why it ended, once its files are gone. */
static void print_log_tail(const char *path)
{
	char buf[2048];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t end = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
	ssize_t n;

	if (end < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	n = pread(fd, buf, sizeof(buf) - 1,
		  end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	fprintf(stderr, "--- the end of %s:\n%s\n---\n", path, buf);
}

int guest_wait_tick(struct guest *g, off_t from, long tick, unsigned timeout_s,
		    struct guest_log *ret, char *why, size_t why_len)
{
	uint64_t deadline = now_s() + timeout_s;
	struct guest_log log = {.first_tick = -1, .last_tick = -1};

	for (;;) {
		int r = guest_log_read(g->serial_path, from, -1, &log, NULL);

		*ret = log;
		if (r == 0 && log.last_tick >= 0 && log.last_tick >= tick)
			return 0;
		if (!guest_alive(g) || log.ended) {
			snprintf(why, why_len, "QEMU %s before tick %ld (last tick %ld; see %s, %s)",
				 log.ended ? "'s guest ended" : "exited", tick, log.last_tick,
				 g->serial_path, g->stderr_path);
			print_log_tail(g->serial_path);
			print_log_tail(g->stderr_path);
			return -ESRCH;
		}
		if (now_s() > deadline) {
			snprintf(why, why_len,
				 "no tick %ld within %u s (safety net; last tick %ld; see %s)", tick,
				 timeout_s, log.last_tick, g->serial_path);
			return -ETIMEDOUT;
		}
		test_sleep_ms(100);
	}
}
