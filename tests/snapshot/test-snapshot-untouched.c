/* SPDX-License-Identifier: MIT */
/*
 * Memory the target never touched is not read: a snapshot leaves it untouched, and the image
 * holds it as zeros. Write-protecting an unpopulated page leaves a uffd-wp marker, which
 * PAGEMAP_SCAN calls "swapped" (engine/wpmarker.h); reading each such page through
 * /proc/PID/mem faulted the kernel's zero page into the target, for gigabytes of thread stacks
 * in a process with many threads, and took seconds.
 *
 * The target maps three regions and starts idle threads (each with an 8 MiB stack it barely
 * uses): UNTOUCHED, never touched; READ, read once (the kernel maps its zero page there); DATA,
 * written with a pattern. For each way of taking a snapshot (arming live, arming held,
 * pre-copy): the image reads as zeros in UNTOUCHED and READ and as the pattern in DATA, and
 * afterwards no page of UNTOUCHED is mapped in the target (/proc/PID/pagemap: neither present
 * nor swapped), which it would be had the snapshot read it. The target is released each time.
 *
 * usage: test-snapshot-untouched UFFSNAPD WORKLOAD CHECK
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

#define UNTOUCHED    (64ull << 20)
#define READ	     (8ull << 20)
#define DATA	     (8ull << 20)
#define IDLE_THREADS 16
#define PATTERN(a)   ((uint64_t)(a)*0x9e3779b97f4a7c15ull | 1)
/* Documentation/admin-guide/mm/pagemap.rst */
#define PM_SWAP	   (1ull << 62)
#define PM_PRESENT (1ull << 63)

struct regions {
	uint64_t untouched, read, data;
};

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static uint64_t *map(size_t len)
{
	uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(1);
	madvise(p, len, MADV_NOHUGEPAGE); /* the zero page of READ is a 4 KiB one */
	return p;
}

/* The target: maps the regions, starts the threads, says where the regions are, waits. */
static void target_main(int reply)
{
	volatile uint64_t *r;
	uint64_t *d;
	struct regions g;
	uint64_t sum = 0;
	pthread_t th;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	g.untouched = (uintptr_t)map(UNTOUCHED);
	r = map(READ);
	d = map(DATA);
	for (size_t i = 0; i < READ / 8; i += 512)
		sum += r[i];
	for (size_t i = 0; i < DATA / 8; i++)
		d[i] = PATTERN(&d[i]);
	g.read = (uintptr_t)r;
	g.data = (uintptr_t)d;
	for (int i = 0; i < IDLE_THREADS; i++)
		if (pthread_create(&th, NULL, idle, NULL))
			_exit(1);
	if (sum || write(reply, &g, sizeof(g)) != sizeof(g))
		_exit(1);
	for (;;)
		pause();
}

/* Every page of [a, a + len) in the image reads as zeros (data == false) or the pattern. */
static int check_range(struct img_reader *rd, uint64_t a, uint64_t len, bool data, const char *what)
{
	uint64_t buf[4096 / 8];
	struct img_error e;

	for (uint64_t end = a + len; a < end; a += sizeof(buf)) {
		int k = img_reader_read(rd, a, buf, sizeof(buf), &e);

		for (size_t i = 0; k == 0 && i < 512; i++)
			if (buf[i] != (data ? PATTERN(a + i * 8) : 0))
				k = -EBADMSG;
		if (k < 0)
			return fprintf(stderr, "FAIL: %s page 0x%" PRIx64 " of the image: %s\n",
				       what, a, strerror(-k)),
			       -1;
	}
	return 0;
}

static int check_image(const char *path, const struct regions *g)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = -1;
	struct img_reader *rd = NULL;
	struct img_error e;

	if (fd < 0 || img_reader_open(fd, &rd, &e) < 0 || !img_reader_complete(rd))
		fprintf(stderr, "FAIL: the image is not complete\n");
	else if (check_range(rd, g->untouched, UNTOUCHED, false, "untouched") == 0 &&
		 check_range(rd, g->read, READ, false, "read") == 0 &&
		 check_range(rd, g->data, DATA, true, "data") == 0)
		r = 0;
	img_reader_free(rd);
	if (fd >= 0)
		close(fd);
	return r;
}

/* How many pages of the untouched region the target has mapped; -1 if pagemap is unreadable. */
static long mapped_pages(pid_t pid, uint64_t start, uint64_t len)
{
	char path[64];
	uint64_t e[512];
	long n = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (uint64_t a = start; a < start + len; a += sizeof(e) / 8 * 4096) {
		if (pread(fd, e, sizeof(e), a / 4096 * 8) != sizeof(e)) {
			n = -1;
			break;
		}
		for (size_t i = 0; i < 512; i++)
			n += !!(e[i] & (PM_PRESENT | PM_SWAP));
	}
	close(fd);
	return n;
}

static int run(const struct snap_paths *p, pid_t pid, const struct regions *g, const char *how)
{
	char image[] = "/tmp/uffsnap-untouched.XXXXXX", json[sizeof(image) + 8];
	int fd = mkstemp(image), r;
	long mapped;

	if (fd < 0)
		return perror("mkstemp"), -1;
	close(fd);
	r = snap_wait(snap_start(p, pid, image, how));
	if (r != 0) {
		fprintf(stderr, "FAIL: uffsnapd %s exited %d\n", how ? how : "(arming live)", r);
		r = -1;
	} else if (check_image(image, g) < 0) {
		r = -1;
	} else if ((mapped = mapped_pages(pid, g->untouched, UNTOUCHED)) != 0) {
		fprintf(stderr,
			"FAIL: after uffsnapd %s, %ld pages of the untouched region are "
			"mapped in the target: the snapshot read them\n",
			how ? how : "(arming live)", mapped);
		r = -1;
	} else {
		r = snap_target_released(pid);
	}
	snprintf(json, sizeof(json), "%s.json", image);
	unlink(json);
	unlink(image);
	if (r == 0)
		printf("ok: %s\n", how ? how : "live");
	return r;
}

int main(int argc, char **argv)
{
	static const char *const hows[] = {NULL, "--arm-held", "--precopy"};
	struct snap_paths p;
	struct regions g;
	int reply[2], rc = 0;
	pid_t pid;

	snap_paths_parse(argc, argv, &p);
	if (getuid() != 0) {
		printf(
		    "SKIP: needs root (ptrace any process, /dev/userfaultfd, and CAP_SYS_ADMIN for "
		    "pagemap to tell an untouched page from a swapped one)\n");
		return 77;
	}
	if (pipe2(reply, O_CLOEXEC) < 0)
		return perror("pipe2"), 1;
	pid = fork();
	if (pid == 0)
		target_main(reply[1]);
	close(reply[1]);
	if (pid < 0 || read(reply[0], &g, sizeof(g)) != sizeof(g)) {
		fprintf(stderr, "FAIL: the target did not start\n");
		rc = 1;
	}
	for (size_t i = 0; !rc && i < sizeof(hows) / sizeof(hows[0]); i++)
		rc = run(&p, pid, &g, hows[i]) < 0;
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return rc;
}
