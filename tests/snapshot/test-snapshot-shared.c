/* SPDX-License-Identifier: MIT */
/*
 * Shared memory that something other than the target's own mappings writes (issue 16): write
 * protection lives in the target's page tables, so neither another process's mapping of the
 * same memory nor a write(2) through a descriptor faults. The image must be exact, or say
 * precisely where it may not be.
 *
 * The target maps a 16-page memfd and keeps its descriptor open for writing, as QEMU does
 * with its guest RAM. One thread stores n into a first page, then n into a private page,
 * n = 1, 2, ...: every image must hold second <= first <= second + 1 (the pages nothing else
 * writes are exact). The first page is the memfd's page 0 (mapped), or private too (fd:
 * there the memfd is written by nothing but descriptors).
 *
 * - mapped: another process maps pages 8..15 writable and writes them; a third maps pages
 *   0..7 read-only, from a read-only descriptor (it cannot mprotect them writable); a child
 *   of the target inherits a MAP_SHARED|MAP_ANONYMOUS region and writes it. Every image
 *   names exactly the writer's pages and the child's region, with their pids (EVENT
 *   "may-not-be-exact", "shared with another process"; shared_writers 2), never the reader;
 *   --strict fails.
 * - fd: with a second process holding the memfd open for writing but not writing, the image
 *   names nothing (the memfd's ctime does not move). Then that process pwrite()s into page 4
 *   throughout, then the target itself does: each time the image names the descriptors open
 *   for writing, with their pids (EVENT "descriptor open for writing"; fd_writers), but
 *   --strict does not fail (engine/shared.h says why).
 *
 * The target is unharmed: it runs on, released, its stores as they were.
 *
 * usage: test-snapshot-shared UFFSNAPD WORKLOAD CHECK mapped|fd
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap-harness.h"
#include "uffsnap/image.h"

#define PAGE	 4096ul
#define PAGES	 16
#define SA_PAGES 4
#define RUNS	 3
#define WHY_MAP	 "shared with another process"
#define WHY_FD	 "descriptor open for writing"

/* What the test knows of the target, from its answer to the start. */
struct target_info {
	uint64_t shared, first, priv; /* the memfd's mapping, the stores' first and second page */
	uint64_t sa;		      /* the shared anonymous region (mapped) */
	void *map;
	pid_t child; /* the child writing the shared region (mapped) */
};

struct proc {
	pid_t pid;
	int cmd, reply;
};

static int memfd = -1;

static void die_with_parent(const char *name)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_NAME, name);
}

static void *pwriter(void *arg)
{
	for (uint64_t n = 1;; n++)
		if (pwrite(memfd, &n, sizeof(n), 4 * PAGE) != sizeof(n))
			_exit(3);
	return arg;
}

/* The target's loop: the ordered stores the oracle checks. */
static void *storer(void *arg)
{
	volatile uint64_t *shared = ((volatile uint64_t **)arg)[0];
	volatile uint64_t *priv = ((volatile uint64_t **)arg)[1];

	for (uint64_t n = 1;; n++) { /* seq_cst stores stay in order (a fence is not TSan's) */
		__atomic_store_n(&shared[0], n, __ATOMIC_SEQ_CST);
		__atomic_store_n(&priv[0], n, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static pid_t child_writing(volatile uint64_t *sa)
{
	pid_t c = fork();

	if (c == 0) {
		die_with_parent("shared-child");
		close(memfd);
		for (uint64_t n = 1;; n++)
			sa[n % (SA_PAGES * PAGE / 8)] = n;
	}
	return c;
}

/* Commands: 'w' start pwrite()s into the memfd; answers 'y'. */
static void target_main(int cmd, int reply, bool mapped)
{
	static volatile uint64_t *ptrs[2];
	struct target_info ti = {0};
	volatile uint64_t *sa = NULL;
	pthread_t th;
	char c;

	die_with_parent("shared-target");
	if (mapped) { /* before the memfd is mapped: the child shares the region only */
		sa = mmap(NULL, SA_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			  -1, 0);
		ti.child = sa == MAP_FAILED ? -1 : child_writing(sa);
	}
	ti.map = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	ptrs[0] = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ptrs[1] = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mapped)
		ptrs[0] = ti.map;
	if (ti.map == MAP_FAILED || ptrs[0] == MAP_FAILED || ptrs[1] == MAP_FAILED ||
	    ti.child < 0 || pthread_create(&th, NULL, storer, ptrs))
		_exit(1);
	ti.shared = (uintptr_t)ti.map;
	ti.first = (uintptr_t)ptrs[0];
	ti.priv = (uintptr_t)ptrs[1];
	ti.sa = (uintptr_t)sa;
	if (write(reply, &ti, sizeof(ti)) != sizeof(ti))
		_exit(1);
	while (read(cmd, &c, 1) == 1)
		if (c == 'w' && pthread_create(&th, NULL, pwriter, NULL) == 0)
			write(reply, "y", 1);
	_exit(0);
}

/* Another process: maps [first, first + n) pages of the memfd, writable or read-only. */
static void other_main(int cmd, int reply, int first, int n, bool writable)
{
	int fd = memfd;
	char c, path[64];
	volatile uint64_t *p;

	die_with_parent(writable ? "shared-writer" : "shared-reader");
	if (!writable) { /* a read-only descriptor: its mapping can never become writable */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		close(memfd);
	}
	p = n ? mmap(NULL, n * PAGE, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd,
		     first * PAGE)
	      : NULL;
	if (p == MAP_FAILED || write(reply, "y", 1) != 1)
		_exit(1);
	if (n && writable)
		for (uint64_t i = 1;; i++)
			p[i % (n * PAGE / 8)] = i;
	while (read(cmd, &c, 1) == 1)
		if (c == 'w' && pthread_create(&(pthread_t){0}, NULL, pwriter, NULL) == 0)
			write(reply, "y", 1);
	_exit(0);
}

static int spawn(struct proc *pr, void (*body)(int, int, void *), void *arg)
{
	int c[2], r[2];

	if (pipe2(c, O_CLOEXEC) < 0 || pipe2(r, O_CLOEXEC) < 0)
		return -errno;
	pr->pid = fork();
	if (pr->pid == 0) {
		close(c[1]);
		close(r[0]);
		body(c[0], r[1], arg);
	}
	close(c[0]);
	close(r[1]);
	pr->cmd = c[1];
	pr->reply = r[0];
	return pr->pid < 0 ? -errno : 0;
}

static void target_body(int cmd, int reply, void *arg)
{
	target_main(cmd, reply, arg != NULL);
}

static void writer_body(int cmd, int reply, void *arg)
{
	other_main(cmd, reply, 8, 8, true);
	(void)arg;
}

static void reader_body(int cmd, int reply, void *arg)
{
	other_main(cmd, reply, 0, 8, false);
	(void)arg;
}

static void idle_body(int cmd, int reply, void *arg)
{
	other_main(cmd, reply, 0, 0, true);
	(void)arg;
}

static void stop(struct proc *pr)
{
	if (pr->pid > 0) {
		kill(pr->pid, SIGKILL);
		waitpid(pr->pid, NULL, 0);
		close(pr->cmd);
		close(pr->reply);
	}
	pr->pid = 0;
}

static int read_u64(struct img_reader *rd, uint64_t addr, uint64_t *ret)
{
	uint8_t page[PAGE];
	struct img_error e;
	int k = img_reader_read(rd, addr & ~(PAGE - 1), page, sizeof(page), &e);

	if (k == 0)
		memcpy(ret, page + (addr & (PAGE - 1)), sizeof(*ret));
	return k;
}

/* The oracle of the pages nothing else writes: second <= first <= second + 1. */
static int check_stores(const char *image, const struct target_info *ti)
{
	int fd = open(image, O_RDONLY | O_CLOEXEC), r = -1;
	struct img_reader *rd = NULL;
	uint64_t sh = 0, pv = 0;
	struct img_error e;

	if (fd < 0 || img_reader_open(fd, &rd, &e) < 0 || !img_reader_complete(rd))
		fprintf(stderr, "FAIL: the image is not complete\n");
	else if (read_u64(rd, ti->first, &sh) < 0 || read_u64(rd, ti->priv, &pv) < 0)
		fprintf(stderr, "FAIL: the image lacks the target's stores\n");
	else if (pv > sh || sh > pv + 1)
		fprintf(stderr, "FAIL: first %" PRIu64 ", second %" PRIu64 ": not an instant\n", sh,
			pv);
	else
		r = 0;
	img_reader_free(rd);
	if (fd >= 0)
		close(fd);
	return r;
}

static uint64_t hex(const json_t *ev, const char *name)
{
	const char *v = json_string_value(json_object_get(ev, name));

	return v ? strtoull(v, NULL, 16) : 0;
}

/* Exactly one event of that why and pid, over [start, end). */
static int check_event(const json_t *events, const char *why, pid_t pid, uint64_t start,
		       uint64_t end)
{
	size_t i;
	json_t *ev;

	if (snap_events_count(events, why, pid) != 1)
		return fprintf(stderr, "FAIL: %zu events \"%s\" for pid %d, not 1\n",
			       snap_events_count(events, why, pid), why, pid),
		       -1;
	json_array_foreach(
	    events, i,
	    ev) if (json_integer_value(json_object_get(ev, "pid")) == pid &&
		    !strcmp(json_string_value(json_object_get(ev, "why")) ?: "", why) &&
		    (hex(ev, "start") != start ||
		     hex(ev, "end") != end)) return fprintf(stderr,
							    "FAIL: pid %d: range 0x%" PRIx64
							    "-0x%" PRIx64 ", not 0x%" PRIx64
							    "-0x%" PRIx64 "\n",
							    pid, hex(ev, "start"), hex(ev, "end"),
							    start, end),
	    -1;
	return 0;
}

/* Per process: tests running at the same time (this one's other mode) use their own. */
static char image[64], json[64];

/* One snapshot: uffsnapd's exit code (want), the stores' oracle; its events, or NULL. */
static json_t *snapshot(const char *uffsnapd, pid_t pid, const struct target_info *ti, bool strict,
			int want)
{
	int k = snap_wait(snap_start_json(uffsnapd, pid, image, json, strict ? "--strict" : NULL));

	if (k != want)
		return fprintf(stderr, "FAIL: uffsnapd%s exited %d, not %d\n",
			       strict ? " --strict" : "", k, want),
		       NULL;
	if (want)
		return json_array();
	if (check_stores(image, ti) < 0)
		return NULL;
	return snap_image_events(image, "may-not-be-exact");
}

static int run_mapped(const char *uffsnapd, struct proc *t, const struct target_info *ti)
{
	struct proc w = {0}, r = {0};
	json_t *ev;
	char c;
	int rc = -1;

	if (spawn(&w, writer_body, NULL) < 0 || read(w.reply, &c, 1) != 1 ||
	    spawn(&r, reader_body, NULL) < 0 || read(r.reply, &c, 1) != 1)
		goto out;
	close(memfd);
	for (int i = 0; i < RUNS; i++) {
		int k;

		ev = snapshot(uffsnapd, t->pid, ti, false, 0);
		k = ev ? 0 : -1;

		if (k == 0)
			k = check_event(ev, WHY_MAP, w.pid, ti->shared + 8 * PAGE,
					ti->shared + PAGES * PAGE);
		if (k == 0)
			k = check_event(ev, WHY_MAP, ti->child, ti->sa, ti->sa + SA_PAGES * PAGE);
		if (k == 0 && (snap_events_count(ev, WHY_MAP, r.pid) ||
			       snap_json_stat(json, "shared_writers") != 2))
			k = fprintf(stderr,
				    "FAIL: the reader is named, or shared_writers %" PRIu64
				    " is not 2\n",
				    snap_json_stat(json, "shared_writers"));
		printf("snapshot %d: %zu events, writer and child named: %s\n", i,
		       json_array_size(ev), k ? "no" : "yes");
		json_decref(ev);
		if (k)
			goto out;
	}
	ev = snapshot(uffsnapd, t->pid, ti, true, 1); /* --strict fails */
	rc = ev ? 0 : -1;
	json_decref(ev);
out:
	stop(&w);
	stop(&r);
	return rc;
}

/* A snapshot whose events must name the descriptors of n processes, these among them. */
static int fd_round(const char *uffsnapd, pid_t pid, const struct target_info *ti, bool strict,
		    uint64_t n, pid_t a, pid_t b)
{
	json_t *ev = snapshot(uffsnapd, pid, ti, strict, 0);
	int k = ev ? 0 : -1;

	if (k == 0 && (snap_json_stat(json, "fd_writers") != n ||
		       snap_events_count(ev, NULL, 0) != snap_events_count(ev, WHY_FD, 0) ||
		       (a && snap_events_count(ev, WHY_FD, a) != 1) ||
		       (b && snap_events_count(ev, WHY_FD, b) != 1)))
		k = fprintf(stderr, "FAIL: fd_writers %" PRIu64 " (want %" PRIu64 "), %zu events\n",
			    snap_json_stat(json, "fd_writers"), n, json_array_size(ev));
	printf("%s%zu events, fd_writers %" PRIu64 ": %s\n", strict ? "--strict: " : "",
	       json_array_size(ev), snap_json_stat(json, "fd_writers"), k ? "WRONG" : "ok");
	json_decref(ev);
	return k ? -1 : 0;
}

static int run_fd(const char *uffsnapd, struct proc *t, const struct target_info *ti)
{
	struct proc h = {0};
	int rc = -1;
	char c;

	if (spawn(&h, idle_body, NULL) < 0 || read(h.reply, &c, 1) != 1)
		goto out;
	close(memfd);
	printf("a second descriptor open for writing, nothing written through it:\n");
	if (fd_round(uffsnapd, t->pid, ti, false, 0, 0, 0) < 0)
		goto out;
	printf("the other process pwrite()s into the memfd:\n");
	if (write(h.cmd, "w", 1) != 1 || read(h.reply, &c, 1) != 1 ||
	    fd_round(uffsnapd, t->pid, ti, false, 2, h.pid, t->pid) < 0 ||
	    fd_round(uffsnapd, t->pid, ti, true, 2, h.pid, t->pid) < 0)
		goto out;
	stop(&h);
	printf("the target itself pwrite()s into it:\n");
	if (write(t->cmd, "w", 1) != 1 || read(t->reply, &c, 1) != 1 ||
	    fd_round(uffsnapd, t->pid, ti, false, 1, t->pid, 0) < 0)
		goto out;
	rc = 0;
out:
	stop(&h);
	return rc;
}

int main(int argc, char **argv)
{
	struct snap_paths p;
	int i = snap_paths_parse(argc, argv, &p), rc = 1;
	bool mapped = i < argc && !strcmp(argv[i], "mapped");
	uint8_t page[PAGE];
	struct target_info ti;
	struct proc t = {0};

	snprintf(image, sizeof(image), "/tmp/test-snapshot-shared.%d.img", getpid());
	snprintf(json, sizeof(json), "/tmp/test-snapshot-shared.%d.json", getpid());
	if (getuid() != 0) {
		printf("SKIP: needs root (ptrace any process, /dev/userfaultfd)\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(page, 0x5a, sizeof(page));
	memfd = memfd_create("test-shared", 0);		 /* inherited by every process here */
	for (int pg = 0; memfd >= 0 && pg < PAGES; pg++) /* dirty, as a running program's */
		if (pwrite(memfd, page, PAGE, pg * PAGE) != PAGE)
			memfd = -1;
	if (memfd < 0 || spawn(&t, target_body, mapped ? &t : NULL) < 0 ||
	    read(t.reply, &ti, sizeof(ti)) != sizeof(ti)) {
		fprintf(stderr, "FAIL: setup: %m\n");
		goto out;
	}
	if ((mapped ? run_mapped : run_fd)(p.uffsnapd, &t, &ti) < 0)
		goto out;
	if (kill(t.pid, 0) < 0 || waitpid(t.pid, NULL, WNOHANG) == t.pid ||
	    snap_target_released(t.pid) < 0) {
		fprintf(stderr, "FAIL: the target exited or was not released\n");
		goto out;
	}
	rc = 0;
	printf("ok\n");
out:
	if (ti.child > 0)
		kill(ti.child, SIGKILL);
	stop(&t);
	unlink(image);
	unlink(json);
	return rc;
}
