/* SPDX-License-Identifier: MIT */
/*
 * Arming while the target runs (daemon/engine/live.c): a mapping that the target replaces
 * between the two holds (munmap, then a new mapping at the same addresses) must be protected
 * at the instant like any other. Made certain with the pause between the holds of the test
 * build of uffsnapd (uffsnapd-test.c: UFFSNAPD_TEST_PAUSE=armed:DIR) and a copier stalled on a
 * pipe:
 *
 * 1. the target maps region A (256 KiB, content P0), then a 64 MiB region B below it;
 * 2. uffsnapd arms, and pauses between its holds: the target replaces A with a new mapping
 *    holding P1;
 * 3. the final hold (the instant) passes; the copier is stuck in B on a full pipe;
 * 4. the target writes P2 over A, after the instant;
 * 5. the image must hold P1 in A: had A been left unprotected, the copier would read P2.
 * The target is unharmed and released; it reads P2 in A.
 *
 * usage: test-snapshot-prearm UFFSNAPD-TEST WORKLOAD CHECK
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap-harness.h"
#include "uffsnap/image.h"

#define A_SIZE (256u << 10)
#define B_SIZE (64u << 20)
#define VAL(a, gen) ((((uint64_t)(a) * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)(gen) << 56)) | 1)

static void fill(uint64_t *p, size_t len, int gen)
{
	for (size_t i = 0; i < len / 8; i++)
		p[i] = VAL(&p[i], gen);
}

static int check(const uint64_t *p, uint64_t base, size_t len, int gen)
{
	for (size_t i = 0; i < len / 8; i++)
		if (p[i] != VAL(base + i * 8, gen))
			return -1;
	return 0;
}

/* The target: commands 'r' replace A (P1), 'w' write P2 into A, 'c' check A holds P2. */
static void target_main(int cmd, int reply)
{
	uint64_t *a = mmap(NULL, A_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *b;
	char c, ok;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	b = mmap(NULL, B_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		_exit(1);
	madvise(a, A_SIZE, MADV_NOHUGEPAGE);
	fill(a, A_SIZE, 0);
	fill(b, B_SIZE, 9);
	if (write(reply, &a, sizeof(a)) != sizeof(a))
		_exit(1);
	while (read(cmd, &c, 1) == 1) {
		ok = 'y';
		if (c == 'r') {
			if (munmap(a, A_SIZE) < 0 ||
			    mmap(a, A_SIZE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != a)
				ok = 'n';
			else
				fill(a, A_SIZE, 1);
		} else if (c == 'w') {
			fill(a, A_SIZE, 2);
		} else if (c == 'c' && check(a, (uintptr_t)a, A_SIZE, 2) < 0) {
			ok = 'n';
		}
		if (write(reply, &ok, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

struct target {
	pid_t pid;
	int cmd, reply;
	uint64_t a;
};

static int target_do(struct target *t, char c)
{
	return snap_child_do(t->cmd, t->reply, c);
}

/* The instant has passed: the image has begun (written in the final hold) and nobody traces. */
static int wait_released(pid_t pid, int out)
{
	for (int i = 0; i < 30000; i++) {
		int n = 0;

		if (ioctl(out, FIONREAD, &n) == 0 && n > 0 && snap_tracer_of(pid) == 0)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

static pid_t start_uffsnapd(const char *uffsnapd, pid_t pid, const char *dir, int *ret_out)
{
	int out[2];
	char pidstr[16], pause[600];
	pid_t d;

	if (pipe2(out, O_CLOEXEC) < 0)
		return -1;
	fcntl(out[0], F_SETPIPE_SZ, 1 << 20); /* the final hold's own writes fit */
	snprintf(pidstr, sizeof(pidstr), "%d", pid);
	snprintf(pause, sizeof(pause), "armed:%s", dir);
	d = fork();
	if (d == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setenv("UFFSNAPD_TEST_PAUSE", pause, 1);
		dup2(out[1], STDOUT_FILENO);
		execl(uffsnapd, "uffsnapd", "--pid", pidstr, "--output", "-", "--quiet",
		      (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	*ret_out = out[0];
	return d;
}

static int copy_all(int in, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char buf[1 << 16];
	ssize_t n;

	if (fd < 0)
		return -errno;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(fd, buf, n) != n)
			n = -1;
	close(fd);
	return n < 0 ? -EIO : 0;
}

/* The image holds P1 in A: the content at the instant. */
static int image_has_p1(const char *path, uint64_t a)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = -1, k;
	uint64_t *buf = malloc(A_SIZE);
	struct img_reader *rd = NULL;
	struct img_error e;

	if (fd < 0 || !buf || img_reader_open(fd, &rd, &e) < 0 || !img_reader_complete(rd)) {
		fprintf(stderr, "FAIL: the image is not complete\n");
		goto out;
	}
	k = img_reader_read(rd, a, buf, A_SIZE, &e);
	if (k < 0)
		fprintf(stderr, "FAIL: reading A from the image: %s\n", strerror(-k));
	else if (check(buf, a, A_SIZE, 1) < 0)
		fprintf(stderr, "FAIL: A in the image is not what it held at the instant (%s)\n",
			check(buf, a, A_SIZE, 2) == 0 ? "it holds the later writes"
						       : check(buf, a, A_SIZE, 0) == 0
							 ? "it holds the replaced mapping"
							 : "garbage");
	else
		r = 0;
out:
	img_reader_free(rd);
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/uffsnap-prearm-XXXXXX", image[600];
	struct snap_paths p;
	struct target t = {0};
	int c[2], r[2], out = -1, rc = 1;
	pid_t d = -1;

	snap_paths_parse(argc, argv, &p);
	if (getuid() != 0) {
		printf("SKIP: needs root (ptrace any process, /dev/userfaultfd)\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir) || pipe2(c, O_CLOEXEC) < 0 || pipe2(r, O_CLOEXEC) < 0)
		return 1;
	snprintf(image, sizeof(image), "%s/image", dir);
	t.pid = fork();
	if (t.pid == 0)
		target_main(c[0], r[1]);
	t.cmd = c[1];
	t.reply = r[0];
	if (t.pid < 0 || read(t.reply, &t.a, 8) != 8) {
		fprintf(stderr, "FAIL: cannot start the target\n");
		goto out;
	}
	d = start_uffsnapd(p.uffsnapd, t.pid, dir, &out);
	if (snap_pause_wait(dir, "armed") < 0 || target_do(&t, 'r') < 0) {
		fprintf(stderr, "FAIL: no pause between the holds, or the target could not remap\n");
		goto out;
	}
	snap_pause_go(dir);
	if (wait_released(t.pid, out) < 0 || target_do(&t, 'w') < 0) {
		fprintf(stderr, "FAIL: the final hold never ended, or the target could not write\n");
		goto out;
	}
	if (copy_all(out, image) < 0 || snap_wait(d) != 0) {
		fprintf(stderr, "FAIL: the snapshot failed\n");
		d = -1;
		goto out;
	}
	d = -1;
	if (image_has_p1(image, t.a) < 0)
		goto out;
	if (target_do(&t, 'c') < 0 || snap_target_released(t.pid) < 0) {
		fprintf(stderr, "FAIL: the target is harmed\n");
		goto out;
	}
	printf("ok: a mapping replaced between the holds holds its content at the instant\n");
	rc = 0;
out:
	if (d > 0) {
		kill(d, SIGKILL);
		snap_wait(d);
	}
	if (t.pid > 0) {
		kill(t.pid, SIGKILL);
		waitpid(t.pid, NULL, 0);
	}
	unlink(image);
	snap_pause_clean(dir, "armed");
	return rc;
}
