/* SPDX-License-Identifier: MIT */
/*
 * io_uring registered buffers: the kernel writes them through pages it pinned
 * (io_sqe_buffers_register -> io_pin_pages, FOLL_LONGTERM), never through the target's page
 * tables, so write protection does not see those writes (issue 16).
 *
 * The target keeps a READ_FIXED of 8 bytes from a pipe into a registered buffer in flight,
 * resubmitting it as soon as it completes. A feeder thread writes 1, 2, 3, ... into the pipe
 * and stores in ordinary memory how many it sent *before* it writes each. At any instant the
 * buffer holds a number no larger than that count; so must every image: a larger one is a
 * kernel write after the instant that the image took for the instant's.
 *
 * - exact (default): 20 snapshots, each must pass the oracle; uffsnapd's --json summary says
 *   the buffer was copied while held (pinned_bytes_held).
 * - bound: the target also registers a buffer larger than the 64 MiB uffsnapd copies while
 *   held: the image reads its pages beyond the bound as discarded (never as content), the
 *   summary counts them (pinned_bytes_not_exact); with --strict uffsnapd fails instead.
 *
 * - nofd: the target registers its ring's descriptor (io_uring_register_ring_fd()) and closes
 *   it: the ring runs on, but its registered buffers are listed only in the fdinfo of a
 *   descriptor, and on 6.18 the ring's mapping cannot be opened again to get one
 *   (/proc/PID/map_files of an anonymous inode: ENXIO). Every image must then name the ring
 *   (EVENT "may-not-be-exact", "io_uring ring with no descriptor"; io_rings_hidden in the
 *   summary), so that a wrong image is never unannounced; --strict fails instead.
 *
 * The target retries io_uring_wait_cqe() on EINTR (uffsnapd's attach can make it return
 * that) and counts how often it did; the test prints the count.
 *
 * usage: test-snapshot-pinned UFFSNAPD WORKLOAD CHECK [runs | nofd]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <liburing.h>

#include "snap-harness.h"
#include "uffsnap/image.h"

#define RUNS	20
#define BIG_BUF (72ull << 20) /* more than uffsnapd's 64 MiB copied while held */
#define WHY_NO_FD "io_uring ring with no descriptor"

enum mode { EXACT, BOUND, NOFD };

/* The target's ordinary memory (private: the child's own after fork). */
struct state {
	uint64_t sent; /* numbers written to the pipe, counted before each write */
	int pipe[2];
};

/* Shared with the test, not part of the oracle: what the target saw. */
struct report {
	uint64_t completions, eintr, other_err, short_reads;
};

static void *feeder(void *arg)
{
	struct state *st = arg;

	for (uint64_t n = 1;; n++) {
		__atomic_store_n(&st->sent, n, __ATOMIC_SEQ_CST);
		if (write(st->pipe[1], &n, sizeof(n)) != sizeof(n))
			_exit(3);
	}
	return NULL;
}

static int wait_cqe(struct io_uring *ring, struct io_uring_cqe **cqe, struct report *rep)
{
	int k;

	while ((k = io_uring_wait_cqe(ring, cqe)) == -EINTR)
		__atomic_add_fetch(&rep->eintr, 1, __ATOMIC_RELAXED);
	return k;
}

/* Answers 'y' once the read is in flight, 's' if io_uring is unavailable, else 'n'. */
static void target_main(int reply, struct state *st, uint64_t *buf, void *big, struct report *rep,
			bool nofd)
{
	struct iovec iov[2] = {{buf, 4096}, {big, BIG_BUF}};
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	pthread_t th;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (io_uring_queue_init(4, &ring, 0) < 0 ||
	    io_uring_register_buffers(&ring, iov, big ? 2 : 1) < 0 ||
	    (nofd && io_uring_register_ring_fd(&ring) != 1)) {
		write(reply, "s", 1);
		_exit(0);
	}
	if (nofd)
		close(ring.ring_fd); /* liburing enters through the registered index from now on */
	if (pipe(st->pipe) < 0 || pthread_create(&th, NULL, feeder, st)) {
		write(reply, "n", 1);
		_exit(1);
	}
	write(reply, "y", 1);
	for (;;) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		io_uring_prep_read_fixed(sqe, st->pipe[0], buf, sizeof(*buf), -1, 0);
		if (io_uring_submit(&ring) != 1)
			_exit(4);
		if (wait_cqe(&ring, &cqe, rep) < 0) {
			__atomic_add_fetch(&rep->other_err, 1, __ATOMIC_RELAXED);
			_exit(5);
		}
		if (cqe->res != sizeof(*buf))
			__atomic_add_fetch(&rep->short_reads, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&rep->completions, 1, __ATOMIC_RELAXED);
		io_uring_cqe_seen(&ring, cqe);
	}
}

static int read_u64(struct img_reader *rd, uint64_t addr, uint64_t *ret)
{
	uint8_t page[4096];
	struct img_error e;
	uint64_t base = addr & ~4095ull;
	int k = img_reader_read(rd, base, page, sizeof(page), &e);

	if (k == 0)
		memcpy(ret, page + (addr - base), sizeof(*ret));
	return k;
}

/* The oracle: the buffer's number is no larger than the count of numbers sent. 1 if it fails. */
static int check_image(const char *path, const struct state *st, const uint64_t *buf,
		       const uint8_t *big, uint64_t *ret_sent)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = -1, k = 0;
	struct img_reader *rd = NULL;
	struct img_error e;
	uint64_t sent = 0, got = 0, stale = 0, x;

	if (fd < 0 || img_reader_open(fd, &rd, &e) < 0 || !img_reader_complete(rd)) {
		fprintf(stderr, "FAIL: the image is not complete\n");
		goto out;
	}
	if (read_u64(rd, (uintptr_t)&st->sent, &sent) < 0 ||
	    read_u64(rd, (uintptr_t)buf, &got) < 0) {
		fprintf(stderr, "FAIL: the image lacks the counter or the buffer\n");
		goto out;
	}
	for (uint64_t a = 0; big && a < BIG_BUF && (k >= 0 || k == -ESTALE); a += 4096) {
		k = read_u64(rd, (uintptr_t)big + a, &x);
		stale += k == -ESTALE;
		if (k == 0 && x != a) /* the big buffer never changes: the pages read as filled */
			k = -EBADMSG;
	}
	if (k < 0 && k != -ESTALE) {
		fprintf(stderr, "FAIL: the big buffer reads wrong: %s\n", strerror(-k));
		goto out;
	}
	if (big && stale < (BIG_BUF - (64ull << 20)) / 4096) {
		fprintf(stderr,
			"FAIL: only %" PRIu64 " pages of the big buffer read as discarded\n",
			stale);
		goto out;
	}
	*ret_sent = sent;
	r = got > sent;
	if (r)
		fprintf(stderr,
			"FAIL: the image's buffer holds %" PRIu64 " but only %" PRIu64
			" were sent at the instant\n",
			got, sent);
out:
	img_reader_free(rd);
	if (fd >= 0)
		close(fd);
	return r;
}

/* uffsnapd with its --json summary in a file; its exit code. */
static int snapshot(const struct snap_paths *p, pid_t pid, const char *image, const char *json,
		    bool strict)
{
	char pidstr[16];
	pid_t d;

	snprintf(pidstr, sizeof(pidstr), "%d", pid);
	d = fork();
	if (d == 0) {
		int out = open(json, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		dup2(out, STDOUT_FILENO);
		execl(p->uffsnapd, "uffsnapd", "--pid", pidstr, "--output", image, "--force",
		      "--json", strict ? "--strict" : "--json", (char *)NULL);
		_exit(127);
	}
	return snap_wait(d);
}

static uint64_t json_stat(const char *path, const char *name)
{
	json_t *j = json_load_file(path, 0, NULL), *v;
	uint64_t n;

	v = json_object_get(json_object_get(j, "stats"), name);
	if (!v)
		v = json_object_get(j, name);
	n = json_integer_value(v);
	json_decref(j);
	return n;
}

/*
 * A page in a VMA of its own: a write fault on the counter saves a window of pages around it
 * (opts.window_pages), which must not take the buffer's page along at the same moment.
 */
static uint64_t *own_vma(void)
{
	uint8_t *p = mmap(NULL, 3 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || mprotect(p + 4096, 4096, PROT_READ | PROT_WRITE) < 0)
		return MAP_FAILED;
	return (uint64_t *)(p + 4096);
}

/*
 * nofd: the image must name the ring it cannot inspect, and the summary count it. 1 if not.
 * Then a wrong image is a reported one: returns whether it was wrong, for the record.
 */
static int check_reported(const char *image, const char *json, int wrong, int *ret_wrong)
{
	json_t *ev = snap_image_events(image, "may-not-be-exact");
	size_t n = snap_events_count(ev, WHY_NO_FD, 0);

	json_decref(ev);
	if (n != 1 || json_stat(json, "io_rings_hidden") != 1)
		return fprintf(stderr, "FAIL: the ring with no descriptor is not named (%zu events, "
				       "io_rings_hidden %" PRIu64 ")\n",
			       n, json_stat(json, "io_rings_hidden")),
		       1;
	*ret_wrong += wrong;
	return 0;
}

static int run(const struct snap_paths *p, int runs, enum mode mode)
{
	bool with_big = mode == BOUND;
	struct state *st =
	    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *buf = own_vma();
	struct report *rep =
	    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint8_t *big = NULL;
	char image[64], json[64];
	int fds[2], failed = 0, reported = 0, k, rc = 1;
	uint64_t sent = 0;
	pid_t pid;
	char c = 0;

	/* Per process: snapshot-pinned and snapshot-pinned-nofd may run at the same time. */
	snprintf(image, sizeof(image), "/tmp/test-snapshot-pinned.%d.img", getpid());
	snprintf(json, sizeof(json), "/tmp/test-snapshot-pinned.%d.json", getpid());
	if (with_big) {
		big =
		    mmap(NULL, BIG_BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		for (uint64_t a = 0; big != MAP_FAILED && a < BIG_BUF; a += 4096)
			memcpy(big + a, &a, sizeof(a));
	}
	if (st == MAP_FAILED || buf == MAP_FAILED || rep == MAP_FAILED || big == MAP_FAILED ||
	    pipe2(fds, O_CLOEXEC) < 0)
		return fprintf(stderr, "FAIL: setup: %m\n"), 1;
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		target_main(fds[1], st, buf, big, rep, mode == NOFD);
	}
	close(fds[1]);
	if (read(fds[0], &c, 1) != 1 || c != 'y') {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (c == 's')
			printf("SKIP: io_uring with registered buffers%s is unavailable\n",
			       mode == NOFD ? " and registered ring descriptors" : "");
		return c == 's' ? 77 : (fprintf(stderr, "FAIL: the target did not start\n"), 1);
	}
	usleep(100000);
	for (int i = 0; i < runs; i++) {
		k = snapshot(p, pid, image, json, false);
		if (k != 0) {
			fprintf(stderr, "FAIL: snapshot %d: uffsnapd exited %d\n", i, k);
			goto out;
		}
		k = check_image(image, st, buf, big, &sent);
		if (k < 0 || (mode == NOFD && check_reported(image, json, k, &reported)))
			goto out;
		failed += mode == NOFD ? 0 : k;
		printf("snapshot %d: %s, %" PRIu64 " sent; pinned held %" PRIu64
		       " B, not exact %" PRIu64 " B; target: %" PRIu64 " completions, %" PRIu64
		       " EINTR\n",
		       i, k ? "WRONG" : "ok", sent, json_stat(json, "pinned_bytes_held"),
		       json_stat(json, "pinned_bytes_not_exact"), rep->completions, rep->eintr);
		if (kill(pid, 0) < 0 || waitpid(pid, NULL, WNOHANG) == pid) {
			fprintf(stderr, "FAIL: the target exited (error %" PRIu64 ")\n",
				rep->other_err);
			goto out;
		}
	}
	if (mode != EXACT && snapshot(p, pid, image, json, true) != 1) {
		fprintf(stderr, "FAIL: uffsnapd --strict did not fail on %s\n",
			with_big ? "a buffer beyond the bound" : "a ring with no descriptor");
		goto out;
	}
	if (snap_target_released(pid) < 0)
		goto out;
	printf("%d of %d images wrong (%d more wrong and reported); the target's "
	       "io_uring_wait_cqe returned EINTR %" PRIu64 " times\n",
	       failed, runs, reported, rep->eintr);
	rc = failed ? 1 : 0;
out:
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(image);
	unlink(json);
	return rc;
}

int main(int argc, char **argv)
{
	struct snap_paths p;
	int i = snap_paths_parse(argc, argv, &p), runs = i < argc ? atoi(argv[i]) : RUNS, k;

	if (getuid() != 0) {
		printf("SKIP: needs root (ptrace any process, /dev/userfaultfd)\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	if (i < argc && !strcmp(argv[i], "nofd")) {
		printf("nofd: %d snapshots of a READ_FIXED in flight, the ring's fd closed\n", RUNS);
		return run(&p, RUNS, NOFD);
	}
	printf("exact: %d snapshots of a READ_FIXED in flight\n", runs);
	k = run(&p, runs, EXACT);
	if (k)
		return k;
	printf("bound: a %llu MiB registered buffer\n", BIG_BUF >> 20);
	return run(&p, 3, BOUND);
}
