/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap-harness.h"
#include "uffsnap/image.h"
#include "test-proc.h"

int snap_paths_parse(int argc, char **argv, struct snap_paths *ret)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s UFFSNAPD WORKLOAD CHECK [args]\n", argv[0]);
		exit(2);
	}
	*ret = (struct snap_paths){argv[1], argv[2], argv[3]};
	return 4;
}

pid_t snap_start(const struct snap_paths *p, pid_t pid, const char *image, const char *extra)
{
	char pidstr[16], *copy = strdup(extra ? extra : ""), *save = NULL;
	const char *argv[24] = {"uffsnapd", "--pid", pidstr, "--output", image, "--force", "--json"};
	int n = 7;
	pid_t d;

	snprintf(pidstr, sizeof(pidstr), "%d", pid);
	for (char *a = strtok_r(copy, " ", &save); a && n < 23; a = strtok_r(NULL, " ", &save))
		argv[n++] = a; /* extra: options separated by spaces */
	d = fork();
	if (d == 0) {
		char json[4096];
		int fd;

		snprintf(json, sizeof(json), "%s.json", image); /* the JSON summary */
		fd = open(json, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		dup2(fd >= 0 ? fd : open("/dev/null", O_WRONLY), STDOUT_FILENO);
		execv(p->uffsnapd, (char **)argv);
		_exit(127);
	}
	free(copy);
	return d;
}

int snap_wait(pid_t daemon)
{
	int st;

	while (waitpid(daemon, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

long snap_tracer_of(pid_t pid)
{
	char v[32];
	int r = test_proc_field(pid, "status", "TracerPid", v, sizeof(v));

	return r < 0 ? r : strtol(v, NULL, 10);
}

/* Does pid still hold a userfaultfd (uffsnapd injects one and must take it back)? */
static int holds_uffd(pid_t pid)
{
	char path[64];
	int r = test_proc_find_fd(pid, "anon_inode:[userfaultfd]", path, sizeof(path));

	return r < 0 ? r : r > 0;
}

/* Counts the pages of [lo, hi) whose pagemap entry has bit 57 (write-protected by a uffd). */
static long wp_bits(int pm, unsigned long lo, unsigned long hi)
{
	long n = 0, ps = sysconf(_SC_PAGESIZE);
	uint64_t e[512];

	for (unsigned long a = lo; a < hi; a += 512 * ps) {
		size_t cnt = (hi - a) / ps < 512 ? (hi - a) / ps : 512;
		ssize_t r = pread(pm, e, cnt * 8, a / ps * 8);

		for (ssize_t i = 0; i < r / 8; i++)
			n += (e[i] >> 57) & 1;
	}
	return n;
}

/*
 * Pages of pid still write-protected by a userfaultfd, or VMAs still registered with one
 * (VmFlags "uw"), from /proc/PID/smaps and pagemap. Mappings with nothing resident, and huge
 * reservations such as a sanitizer's shadow (over 4 GiB), are not read page by page.
 */
static long uffd_wp_pages(pid_t pid)
{
	char path[64], line[512];
	unsigned long lo = 0, hi = 0, rss = 0;
	long n = 0;
	FILE *smaps;
	int pm = test_proc_open(pid, "pagemap", O_RDONLY);

	test_proc_path(path, sizeof(path), pid, "smaps");
	smaps = fopen(path, "re");
	if (pm < 0 || !smaps) {
		n = pm < 0 ? pm : -errno;
		goto out;
	}
	while (fgets(line, sizeof(line), smaps)) {
		unsigned long a, b;

		if (sscanf(line, "%lx-%lx ", &a, &b) == 2) {
			lo = a;
			hi = b;
		} else if (sscanf(line, "Rss: %lu kB", &rss) == 1) {
			continue;
		} else if (!strncmp(line, "VmFlags:", 8)) {
			if (strstr(line, " uw"))
				n += (hi - lo) / sysconf(_SC_PAGESIZE);
			else if (rss && hi - lo <= (4ul << 30))
				n += wp_bits(pm, lo, hi);
		}
	}
out:
	if (pm >= 0)
		close(pm);
	if (smaps)
		fclose(smaps);
	return n;
}

/*
 * After the snapshot the target runs exactly as it did before: not traced, holding no
 * userfaultfd, and no page of it left write-protected (each would cost it a fault forever).
 * This is what "not slower after the snapshot" rests on, checked without timing anything.
 */
int snap_child_do(int cmd, int reply, char c)
{
	char ok = 0;

	if (write(cmd, &c, 1) != 1 || read(reply, &ok, 1) != 1)
		return -EIO;
	return ok == 'y' ? 0 : -EIO;
}

int snap_target_released(pid_t pid)
{
	long tracer = snap_tracer_of(pid), wp = uffd_wp_pages(pid);
	int uffd = holds_uffd(pid);

	if (tracer != 0)
		fprintf(stderr, "FAIL: pid %d is still traced (TracerPid %ld)\n", pid, tracer);
	if (uffd != 0)
		fprintf(stderr, "FAIL: pid %d still holds a userfaultfd (%d)\n", pid, uffd);
	if (wp != 0)
		fprintf(stderr, "FAIL: pid %d has %ld pages still write-protected\n", pid, wp);
	return tracer || uffd || wp ? -1 : 0;
}

int snap_target_unharmed(struct wl_proc *w)
{
	uint64_t before[64];
	char line[256];
	int r;

	/* Every store thread makes progress again: none is left blocked on a protected page. */
	r = wl_proc_counters(w, before);
	if (r >= 0)
		r = wl_proc_wait_stores(w, before, 1000);
	if (r < 0) {
		fprintf(stderr, "FAIL: the target's threads do not make progress: %s\n",
			strerror(-r));
		return -1;
	}
	r = wl_proc_ask(w, SIGUSR1, line, sizeof(line));
	if (r < 0 || strncmp(line, "selfcheck ok", 12)) {
		fprintf(stderr, "FAIL: target self-check: %s\n", r < 0 ? strerror(-r) : line);
		return -1;
	}
	return snap_target_released(w->pid);
}

/* A hang guard, never a measurement. */
#define SNAP_PAUSE_WAIT_MS 120000

int snap_pause_wait(const char *dir, const char *point)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, point);
	for (int i = 0; i < SNAP_PAUSE_WAIT_MS; i++) {
		if (access(path, F_OK) == 0)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

void snap_pause_go(const char *dir)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/go", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

void snap_pause_clean(const char *dir, const char *point)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, point);
	unlink(path);
	snprintf(path, sizeof(path), "%s/go", dir);
	unlink(path);
	rmdir(dir);
}

bool snap_file_has(const char *path, const char *needle)
{
	char buf[8192] = "";
	FILE *f = fopen(path, "re");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = 0;
	return strstr(buf, needle) != NULL;
}

bool snap_image_complete(const char *path)
{
	struct img_summary sum;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return false;
	r = img_verify_fd(fd, &sum, NULL);
	close(fd);
	return r >= 0 && sum.status == IMG_COMPLETE;
}

pid_t snap_start_json(const char *uffsnapd, pid_t pid, const char *image, const char *json,
		      const char *extra)
{
	char pidstr[16];
	pid_t d;

	snprintf(pidstr, sizeof(pidstr), "%d", pid);
	d = fork();
	if (d == 0) {
		int out = open(json, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		dup2(out, STDOUT_FILENO);
		execl(uffsnapd, "uffsnapd", "--pid", pidstr, "--output", image, "--force", "--json",
		      extra ? extra : "--json", (char *)NULL);
		_exit(127);
	}
	return d;
}

uint64_t snap_json_stat(const char *json, const char *name)
{
	json_t *j = json_load_file(json, 0, NULL);
	uint64_t n = json_integer_value(json_object_get(j, name));

	json_decref(j);
	return n;
}

/* proto/FORMAT.md: a 64-byte header, then frames of a 48-byte header and a payload. */
#define IMG_HEADER 64
#define FRAME_HEADER 48
#define FRAME_EVENT 6
#define FRAME_INDEX 7

static uint32_t le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

json_t *snap_image_events(const char *path, const char *event)
{
	json_t *all = json_array();
	uint8_t h[FRAME_HEADER];
	FILE *f = fopen(path, "re");
	long pos = IMG_HEADER;

	while (f && all && fseek(f, pos, SEEK_SET) == 0 && fread(h, 1, sizeof(h), f) == sizeof(h) &&
	       !memcmp(h, "UFRM", 4) && (h[4] | h[5] << 8) != FRAME_INDEX) {
		uint32_t len = le32(h + 32);
		char *text = (h[4] | h[5] << 8) == FRAME_EVENT ? malloc(len + 1) : NULL;
		json_t *ev;

		if (text && fread(text, 1, len, f) == len) {
			ev = json_loadb(text, len, 0, NULL);
			if (ev && (!event || !strcmp(json_string_value(json_object_get(ev, "event")) ?: "",
						  event)))
				json_array_append(all, ev);
			json_decref(ev);
		}
		free(text);
		pos += FRAME_HEADER + len;
	}
	if (f)
		fclose(f);
	return all;
}

size_t snap_events_count(const json_t *events, const char *why, pid_t pid)
{
	size_t i, n = 0;
	json_t *ev;

	json_array_foreach(events, i, ev) {
		const char *w = json_string_value(json_object_get(ev, "why"));

		if ((!why || (w && !strcmp(w, why))) &&
		    (!pid || json_integer_value(json_object_get(ev, "pid")) == pid))
			n++;
	}
	return n;
}

bool snap_wait_traced(pid_t tid)
{
	/* A hang guard, never a measurement: uffsnapd seizes every thread at its start. */
	for (int i = 0; i < SNAP_PAUSE_WAIT_MS; i++) {
		if (snap_tracer_of(tid) > 0)
			return true;
		usleep(1000);
	}
	return false;
}

int snap_run(const char *const argv[])
{
	return snap_run_to(argv, NULL);
}

int snap_run_to(const char *const argv[], const char *out)
{
	pid_t p = fork();
	int st;

	if (p < 0)
		return -1;
	if (p == 0) {
		int fd = out ? open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;

		if (out && (fd < 0 || dup2(fd, STDOUT_FILENO) < 0))
			_exit(126);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	while (waitpid(p, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int snap_chain_image_ok(const char *uffsnapctl, const char *check, const char *img,
			const char *layout)
{
	char flat[PATH_MAX];
	const char *verify[] = {uffsnapctl, "image", "verify", img, NULL};
	const char *flatten[] = {uffsnapctl, "image", "flatten", img, "--output", flat, NULL};
	int rc = -1;

	snprintf(flat, sizeof(flat), "%s.flat", img);
	if (snap_run(verify) != 0)
		printf("%s: its chain does not verify\n", img);
	else if (snap_run(flatten) != 0)
		printf("%s cannot be flattened\n", img);
	else if (wl_run_check(check, flat, layout) != 0)
		printf("%s is not one instant\n", img);
	else
		rc = 0;
	unlink(flat);
	return rc;
}
