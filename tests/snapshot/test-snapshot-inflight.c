/* SPDX-License-Identifier: MIT */
/*
 * I/O in flight at the snapshot instant (issue 16). A read issued with O_DIRECT pins the
 * reader's pages when it is issued and lands in them when the device answers: after the
 * instant, the kernel writes them through the pinned pages, which write protection does not
 * see. The kernel lists no buffers of requests in flight, so uffsnapd cannot save them as they
 * were; it must say so instead. A FUSE file system whose reads the test answers when it
 * chooses (fuse-slow.c) keeps the reads in flight across the instant, for certain:
 *
 * - async: the target reads with O_DIRECT through io_uring and through Linux AIO, and (when
 *   loop devices exist) through io_uring from a loop device in direct-I/O mode backed by the
 *   FUSE file (the block layer's path); it also reads a pipe through io_uring into an
 *   ordinary buffer. uffsnapd pauses just after the instant (uffsnapd-test, "instant"); the
 *   test then answers the reads and writes the pipe; then uffsnapd copies. Every image must
 *   hold each O_DIRECT buffer as at the instant or name its context (EVENT
 *   "may-not-be-exact", "I/O in flight", one per io_uring ring and AIO context; io_contexts),
 *   and must hold the pipe's buffer exactly: that read is copied by the target's own thread
 *   (copy_to_user), which faults. --strict does not fail on these (README says why).
 * - sync: a thread of another target is inside an O_DIRECT pread() when uffsnapd starts;
 *   the test answers it once uffsnapd has seized the thread. The thread cannot stop inside
 *   the read (it waits killable only), so the read lands before the instant: the image holds
 *   its data, with no event.
 *
 * The targets check the data every read brought and keep running, released.
 *
 * usage: test-snapshot-inflight UFFSNAPD-TEST WORKLOAD CHECK
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <linux/loop.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuse-slow.h"
#include "snap-harness.h"
#include "uffsnap/image.h"

#define PAGE	 4096ul
#define SENTINEL 0x5e5e5e5e00000000ull /* | buffer number: what each buffer holds before */
#define DATA	 0xda7ada7ada7ada7aull /* what the reads bring */
#define WHY	 "I/O in flight"
#define NBUF	 5

enum { B_URING, B_AIO, B_LOOP, B_PIPE, B_SYNC };

#ifdef __SANITIZE_THREAD__
/*
 * Under ThreadSanitizer (./dev test's TSan pass) the targets, forks of this program taken
 * while fuse-slow.c's server thread runs, start threads of their own, which TSan refuses by
 * default ("starting new threads after multi-threaded fork is not supported"). The children
 * never touch the server thread's state (its lock, its buffers), which is what that default
 * guards against.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}
#endif

static const char *const names[NBUF] = {"io_uring O_DIRECT", "AIO O_DIRECT",
					"io_uring O_DIRECT, loop device", "io_uring, pipe",
					"pread O_DIRECT"};

/* The target's state: set up before fork, so the test knows every address. */
struct target {
	uint64_t *buf[NBUF];
	int file, loop, pipe[2];
	pid_t pid;
	int cmd, reply;
	struct io_uring ring;
	aio_context_t aio;
};

static uint64_t *own_vma(void)
{
	uint8_t *p = mmap(NULL, 3 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || mprotect(p + PAGE, PAGE, PROT_READ | PROT_WRITE) < 0)
		return NULL;
	return (uint64_t *)(p + PAGE);
}

static void report(struct target *t, int b)
{
	char c = t->buf[b][0] == DATA ? '0' + b : 'x';

	if (write(t->reply, &c, 1) != 1)
		_exit(3);
}

/* The target's reaper: one byte to the test per completion, 'x' if its data is wrong. */
static void *reap_uring(void *arg)
{
	struct target *t = arg;
	struct io_uring_cqe *cqe;

	for (;;) {
		int k = io_uring_wait_cqe(&t->ring, &cqe);

		if (k == -EINTR)
			continue; /* uffsnapd's holds (README: the EINTR table) */
		if (k < 0 || (cqe->res != PAGE && cqe->res != 8))
			_exit(4);
		report(t, (int)cqe->user_data);
		io_uring_cqe_seen(&t->ring, cqe);
	}
	return NULL;
}

static void *reap_aio(void *arg)
{
	struct target *t = arg;
	struct io_event ev;

	for (;;) {
		long k = syscall(SYS_io_getevents, t->aio, 1, 1, &ev, NULL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k != 1 || ev.res != PAGE)
			_exit(5);
		report(t, B_AIO);
	}
	return NULL;
}

static void submit_uring(struct target *t, int b, int fd, size_t len)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);

	io_uring_prep_read(sqe, fd, t->buf[b], len, 0);
	sqe->user_data = b;
}

/* 'a': every asynchronous read, issued on buffers holding their sentinel. */
static void submit_all(struct target *t)
{
	struct iocb cb = {.aio_fildes = t->file,
			  .aio_lio_opcode = IOCB_CMD_PREAD,
			  .aio_buf = (uintptr_t)t->buf[B_AIO],
			  .aio_nbytes = PAGE,
			  .aio_offset = PAGE};
	struct iocb *cbs[1] = {&cb};

	for (int b = 0; b < NBUF; b++)
		t->buf[b][0] = SENTINEL | b;
	submit_uring(t, B_URING, t->file, PAGE);
	submit_uring(t, B_PIPE, t->pipe[0], 8);
	if (t->loop >= 0)
		submit_uring(t, B_LOOP, t->loop, PAGE);
	if (io_uring_submit(&t->ring) < 2 || syscall(SYS_io_submit, t->aio, 1, cbs) != 1)
		_exit(6);
}

static void *sync_read(void *arg)
{
	struct target *t = arg;
	pid_t tid = gettid();

	if (write(t->reply, &tid, sizeof(tid)) != sizeof(tid) ||
	    pread(t->file, t->buf[B_SYNC], PAGE, 2 * PAGE) != PAGE)
		_exit(7);
	report(t, B_SYNC);
	return NULL;
}

/* Commands: 'a' the asynchronous reads (answers 'y' once issued), 's' the blocking read. */
static void target_main(struct target *t, bool with_async)
{
	pthread_t th;
	char c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (with_async &&
	    (io_uring_queue_init(8, &t->ring, 0) < 0 || syscall(SYS_io_setup, 8, &t->aio) < 0 ||
	     pthread_create(&th, NULL, reap_uring, t) || pthread_create(&th, NULL, reap_aio, t)))
		_exit(2);
	while (read(t->cmd, &c, 1) == 1) {
		if (c == 'a') {
			submit_all(t);
			if (write(t->reply, "y", 1) != 1)
				_exit(3);
		} else if (c == 's' && pthread_create(&th, NULL, sync_read, t)) {
			_exit(2);
		}
	}
	_exit(0);
}

static int spawn(struct target *t, bool with_async)
{
	int c[2], r[2];

	if (pipe2(c, O_CLOEXEC) < 0 || pipe2(r, O_CLOEXEC) < 0)
		return -errno;
	t->pid = fork();
	if (t->pid == 0) {
		close(c[1]);
		close(r[0]);
		t->cmd = c[0];
		t->reply = r[1];
		target_main(t, with_async);
	}
	close(c[0]);
	close(r[1]);
	t->cmd = c[1];
	t->reply = r[0];
	return t->pid < 0 ? -errno : 0;
}

static void stop(struct target *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		close(t->cmd);
		close(t->reply);
	}
	t->pid = 0;
}

/*
 * A loop device in direct-I/O mode over the FUSE file, read-only, detached by the kernel once
 * nobody has it open (LO_FLAGS_AUTOCLEAR: whatever way the test ends). Its fd, or -errno.
 */
static int loop_setup(const char *file)
{
	struct loop_config lc = {
	    .block_size = PAGE,
	    .info = {.lo_flags = LO_FLAGS_DIRECT_IO | LO_FLAGS_AUTOCLEAR | LO_FLAGS_READ_ONLY}};
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC), n, dev = -1, k;
	int backing = open(file, O_RDONLY | O_DIRECT | O_CLOEXEC);
	char path[32];

	n = ctl < 0 ? -1 : ioctl(ctl, LOOP_CTL_GET_FREE);
	snprintf(path, sizeof(path), "/dev/loop%d", n);
	if (n >= 0)
		dev = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	lc.fd = backing;
	if (dev >= 0 && backing >= 0 && ioctl(dev, LOOP_CONFIGURE, &lc) == 0)
		k = dev;
	else
		k = -(errno ? errno : ENODEV);
	if (k < 0 && dev >= 0)
		close(dev);
	if (ctl >= 0)
		close(ctl);
	if (backing >= 0)
		close(backing);
	return k;
}

/* Per process: tests running at the same time (this one's other mode) use their own. */
static char image[64], json[64];

static int read_u64(const char *path, uint64_t addr, uint64_t *ret)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), k = -EIO;
	struct img_reader *rd = NULL;
	uint8_t page[PAGE];
	struct img_error e;

	if (fd >= 0 && img_reader_open(fd, &rd, &e) == 0 && img_reader_complete(rd))
		k = img_reader_read(rd, addr, page, sizeof(page), &e);
	if (k == 0)
		memcpy(ret, page, sizeof(*ret));
	img_reader_free(rd);
	if (fd >= 0)
		close(fd);
	return k;
}

/* Events "I/O in flight" naming a context of that kind ("io_uring", "aio"). */
static size_t named(const json_t *events, const char *context)
{
	size_t i, n = 0;
	json_t *ev;

	json_array_foreach(events, i, ev) n +=
	    !strcmp(json_string_value(json_object_get(ev, "why")) ?: "", WHY) &&
	    !strcmp(json_string_value(json_object_get(ev, "context")) ?: "", context);
	return n;
}

/* Each buffer of the async round: as at the instant, or written after it and named. */
static int check_async(const struct target *t)
{
	json_t *ev = snap_image_events(image, "may-not-be-exact");
	int bad = named(ev, "io_uring") != 1 || named(ev, "aio") != 1 ||
		  snap_json_stat(json, "io_contexts") != 2;

	if (bad)
		fprintf(stderr, "FAIL: the ring and the AIO context are not both named once\n");
	for (int b = 0; b <= B_PIPE && !bad; b++) {
		uint64_t v = 0;

		if (b == B_LOOP && t->loop < 0)
			continue;
		bad = read_u64(image, (uintptr_t)t->buf[b], &v) < 0 ||
		      (v != (SENTINEL | b) && (v != DATA || b == B_PIPE));
		printf("  %-32s %s\n", names[b],
		       bad	   ? "WRONG"
		       : v == DATA ? "written after the instant, named"
				   : "exact");
		if (bad)
			fprintf(stderr, "FAIL: %s reads 0x%" PRIx64 "\n", names[b], v);
	}
	json_decref(ev);
	return bad ? -1 : 0;
}

/* Waits for n completions of the target, each with the data it expects. */
static int completions(struct target *t, int n)
{
	char c;

	for (int i = 0; i < n; i++)
		if (read(t->reply, &c, 1) != 1 || c == 'x')
			return fprintf(stderr, "FAIL: a read of the target failed (%c)\n", c), -1;
	return 0;
}

static int round_async(const char *uffsnapd, struct fslow *f, struct target *t, bool strict)
{
	char dir[] = "/tmp/test-inflight.XXXXXX", env[64], c;
	int direct = t->loop >= 0 ? 3 : 2, k = -1;
	pid_t d;

	if (write(t->cmd, "a", 1) != 1 || read(t->reply, &c, 1) != 1 || !mkdtemp(dir))
		return fprintf(stderr, "FAIL: the target did not issue its reads\n"), -1;
	fslow_wait_pending(f, direct);
	snprintf(env, sizeof(env), "instant:%s", dir);
	setenv("UFFSNAPD_TEST_PAUSE", env, 1);
	d = snap_start_json(uffsnapd, t->pid, image, json, strict ? "--strict" : NULL);
	unsetenv("UFFSNAPD_TEST_PAUSE");
	if (snap_pause_wait(dir, "instant") == 0) {
		/* After the instant: the device answers, the pipe gets its data. */
		fslow_release(f, DATA, true);
		k = write(t->pipe[1], &(uint64_t){DATA}, 8) == 8 ? completions(t, direct + 1) : -1;
	}
	snap_pause_go(dir);
	if (snap_wait(d) != 0)
		k = (fprintf(stderr, "FAIL: uffsnapd%s failed\n", strict ? " --strict" : ""), -1);
	snap_pause_clean(dir, "instant");
	return k < 0 ? -1 : check_async(t);
}

static int round_sync(const char *uffsnapd, struct fslow *f, struct target *t)
{
	json_t *ev = NULL;
	uint64_t v = 0;
	pid_t tid, d;
	int k = -1;

	if (write(t->cmd, "s", 1) != 1 || read(t->reply, &tid, sizeof(tid)) != sizeof(tid))
		return fprintf(stderr, "FAIL: the target did not start its read\n"), -1;
	fslow_wait_pending(f, 1);
	d = snap_start_json(uffsnapd, t->pid, image, json, NULL);
	if (snap_wait_traced(tid)) { /* uffsnapd waits for the thread to stop: answer now */
		fslow_release(f, DATA, true);
		k = completions(t, 1);
	}
	if (snap_wait(d) != 0)
		k = (fprintf(stderr, "FAIL: uffsnapd failed\n"), -1);
	if (k == 0) {
		ev = snap_image_events(image, "may-not-be-exact");
		k = read_u64(image, (uintptr_t)t->buf[B_SYNC], &v) == 0 && v == DATA &&
			    json_array_size(ev) == 0
			? 0
			: -1;
		printf("  %-32s %s (0x%" PRIx64 ", %zu events)\n", names[B_SYNC],
		       k ? "WRONG" : "landed before the instant", v, json_array_size(ev));
	}
	json_decref(ev);
	return k;
}

static int unharmed(const struct target *t)
{
	if (kill(t->pid, 0) < 0 || waitpid(t->pid, NULL, WNOHANG) == t->pid)
		return fprintf(stderr, "FAIL: the target exited\n"), -1;
	return snap_target_released(t->pid);
}

static int run(const char *uffsnapd, struct fslow *f, struct target *t)
{
	struct target a = *t, s = *t;
	int rc = -1;

	if (spawn(&a, true) < 0 || spawn(&s, false) < 0)
		goto out;
	printf("reads in flight at the instant, answered after it:\n");
	if (round_async(uffsnapd, f, &a, false) < 0)
		goto out;
	printf("again, with --strict (which these do not fail):\n");
	if (round_async(uffsnapd, f, &a, true) < 0 || unharmed(&a) < 0)
		goto out;
	printf("a thread inside a blocking O_DIRECT read when uffsnapd starts:\n");
	if (round_sync(uffsnapd, f, &s) < 0 || unharmed(&s) < 0)
		goto out;
	rc = 0;
out:
	stop(&a);
	stop(&s);
	return rc;
}

static int setup(struct fslow *f, struct target *t)
{
	int k = fslow_private_ns();

	if (k == 0)
		k = fslow_mount(f, false, DATA);
	if (k < 0)
		return printf("SKIP: cannot mount a FUSE file system: %s\n", strerror(-k)), 77;
	for (int b = 0; b < NBUF; b++)
		if (!(t->buf[b] = own_vma()))
			return fprintf(stderr, "FAIL: mmap: %m\n"), 1;
	t->file = open(f->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (t->file < 0 || pipe2(t->pipe, O_CLOEXEC) < 0)
		return fprintf(stderr, "FAIL: %s: %m\n", f->path), 1;
	t->loop = loop_setup(f->path);
	if (t->loop < 0)
		printf("NOTE: no loop device (%s): the block layer's path is left out\n",
		       strerror(-t->loop));
	fslow_release(f, DATA, true); /* from now on reads wait for the test */
	return 0;
}

int main(int argc, char **argv)
{
	struct target t = {.loop = -1, .file = -1};
	struct snap_paths p;
	struct fslow f = {.devfd = -1, .stop = {-1, -1}};
	int k;

	snap_paths_parse(argc, argv, &p);
	snprintf(image, sizeof(image), "/tmp/test-snapshot-inflight.%d.img", getpid());
	snprintf(json, sizeof(json), "/tmp/test-snapshot-inflight.%d.json", getpid());
	if (getuid() != 0) {
		printf("SKIP: needs root (ptrace any process, /dev/userfaultfd, FUSE mounts)\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	k = setup(&f, &t);
	if (k == 0)
		k = run(p.uffsnapd, &f, &t) < 0;
	if (t.loop >= 0)
		close(t.loop);
	if (t.file >= 0)
		close(t.file);
	fslow_unmount(&f);
	unlink(image);
	unlink(json);
	if (k == 0)
		printf("ok\n");
	return k;
}
