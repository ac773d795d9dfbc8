/* SPDX-License-Identifier: MIT */
/*
 * Pages the target discards after the snapshot instant, made to happen for certain: uffsnapd
 * streams the image into a pipe this test reads frame by frame; once the copier has reached the
 * target's 128 MiB region the test stops reading, so the copier blocks with most of the region
 * not yet saved. Then the target drops the whole region (MADV_DONTNEED) and the test reads on.
 *
 * - default: the snapshot completes, the image records the lost pages as DISCARDED frames
 *   inside the region and counts them in the --json summary (pages_discarded); the rest of
 *   the region is its content.
 * - --strict: uffsnapd exits 1 saying the target discarded memory not yet saved.
 * Either way the target is unharmed: its region reads as zeros, takes new writes, and it is
 * released (not traced, no userfaultfd, nothing left write-protected).
 *
 * A third run makes the sink too slow instead: with the copier blocked the same way, the
 * target rewrites its whole region. The fault handler's write-behind queue (32 MiB) fills, and
 * a fault then waits for the sink: the test sees the target blocked in handle_userfault, and
 * only then reads on. The image still holds every page of the region as it was at T, the
 * target's rewrite is intact, and the --json summary says faults waited for the sink
 * (fault_sink_waits).
 *
 * usage: test-snapshot-discard UFFSNAPD WORKLOAD CHECK
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

#include "snap-harness.h"
#include "test-proc.h"
#include "uffsnap/image.h"

#define REGION (128ull << 20)
#define PATTERN(a) ((uint64_t)(a) * 0x9e3779b97f4a7c15ull | 1)
#define PATTERN2(a) (~PATTERN(a))
/* How long the target must stay in one write fault to count as waiting for the sink. */
#define STUCK_POLLS 3
#define STUCK_POLL_US 100000

enum mode { DISCARD, STRICT, SLOW_SINK };

struct target {
	pid_t pid;
	int cmd, reply; /* pipes to and from it */
	uint64_t region;
};

/*
 * The target: fills a region, then obeys one-byte commands: 'd' drop it, 'c' check it,
 * 'w' rewrite it with PATTERN2 and read that back.
 */
static void target_main(int cmd, int reply)
{
	uint64_t *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char c, ok;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (p == MAP_FAILED)
		_exit(1);
	madvise(p, REGION, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < REGION / 8; i++)
		p[i] = PATTERN(&p[i]);
	if (write(reply, &p, sizeof(p)) != sizeof(p))
		_exit(1);
	while (read(cmd, &c, 1) == 1) {
		ok = 'y';
		if (c == 'd' && madvise(p, REGION, MADV_DONTNEED) < 0)
			ok = 'n';
		if (c == 'w') {
			for (size_t i = 0; i < REGION / 8; i++)
				p[i] = PATTERN2(&p[i]);
			for (size_t i = 0; i < REGION / 8; i++)
				if (p[i] != PATTERN2(&p[i]))
					ok = 'n';
		}
		if (c == 'c') { /* zeros since the drop; then it must take writes as ever */
			for (size_t i = 0; i < REGION / 8; i++)
				if (p[i] != 0 || (p[i] = PATTERN(&p[i])) != PATTERN(&p[i]))
					ok = 'n';
		}
		if (write(reply, &ok, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

static int target_start(struct target *t)
{
	int a[2], b[2];

	if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
		return -errno;
	t->pid = fork();
	if (t->pid == 0)
		target_main(a[0], b[1]);
	close(a[0]);
	close(b[1]);
	t->cmd = a[1];
	t->reply = b[0];
	if (t->pid < 0 || read(t->reply, &t->region, 8) != 8)
		return -EIO;
	return 0;
}

static int target_do(struct target *t, char c)
{
	return snap_child_do(t->cmd, t->reply, c);
}

static pid_t start_uffsnapd(const char *uffsnapd, pid_t pid, enum mode mode, int *ret_out,
			    int *ret_err)
{
	int out[2], err[2];
	char pidstr[16];
	pid_t d;

	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		return -1;
	snprintf(pidstr, sizeof(pidstr), "%d", pid);
	d = fork();
	if (d == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		/* the --json summary goes to stderr, the image being on stdout */
		execl(uffsnapd, "uffsnapd", "--pid", pidstr, "--output", "-", "--json",
		      mode == STRICT ? "--strict" : (char *)NULL, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	*ret_out = out[0];
	*ret_err = err[0];
	return d;
}

static int read_full(int fd, void *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		done += n;
	}
	return 0;
}

struct stream {
	int fd;
	FILE *copy; /* everything read, for the image checks afterwards */
	uint64_t discarded_in_region, data_in_region;
	bool reached;
};

/* Reads one frame. 1 at the trailer (end), 0 for a frame, -errno on error. */
static int next_frame(struct stream *st, const struct target *t, uint8_t *payload)
{
	uint8_t h[IMG_FRAME_HEADER_SIZE];
	struct img_error e;
	struct img_frame f;
	int r = read_full(st->fd, h, sizeof(h));

	if (r < 0)
		return r;
	fwrite(h, 1, sizeof(h), st->copy);
	if (!memcmp(h, "UFRM", 4) && img_frame_decode(h, &f, &e) < 0)
		return -EBADMSG;
	if (memcmp(h, "UFRM", 4)) { /* not a frame: the trailer ("\x89UFSEND\n") */
		uint8_t rest[IMG_TRAILER_SIZE - IMG_FRAME_HEADER_SIZE];

		r = read_full(st->fd, rest, sizeof(rest));
		fwrite(rest, 1, sizeof(rest), st->copy);
		return r < 0 ? r : 1;
	}
	r = read_full(st->fd, payload, f.payload_len);
	if (r < 0)
		return r;
	fwrite(payload, 1, f.payload_len, st->copy);
	if (f.addr >= t->region && f.addr < t->region + REGION) {
		if (f.type == IMG_FRAME_DISCARDED)
			st->discarded_in_region += f.count;
		if (f.type == IMG_FRAME_PAGES) {
			st->data_in_region += f.count;
			st->reached = true;
		}
	}
	return 0;
}

/*
 * The image is complete, and each page of the region reads as its content at T or, if it was
 * discarded before it could be saved (and may_discard), as discarded (-ESTALE): never anything
 * else. With may_discard, at least one page must be.
 */
static int check_image(const char *path, const struct target *t, bool may_discard)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = -EIO;
	struct img_reader *rd = NULL;
	uint64_t buf[4096 / 8], stale = 0;
	struct img_error e;

	if (fd < 0 || img_reader_open(fd, &rd, &e) < 0 || !img_reader_complete(rd)) {
		fprintf(stderr, "FAIL: the image is not complete\n");
		goto out;
	}
	for (uint64_t a = t->region; a < t->region + REGION; a += 4096) {
		int k = img_reader_read(rd, a, buf, sizeof(buf), &e);

		stale += k == -ESTALE;
		for (size_t i = 0; k == 0 && i < 512; i++)
			if (buf[i] != PATTERN(a + i * 8))
				k = -EBADMSG;
		if (k < 0 && (k != -ESTALE || !may_discard)) {
			fprintf(stderr, "FAIL: page 0x%" PRIx64 " of the image: %s\n", a,
				strerror(-k));
			goto out;
		}
	}
	r = stale || !may_discard ? 0 : -EIO;
	if (r < 0)
		fprintf(stderr, "FAIL: the image reads no page of the region as discarded\n");
out:
	img_reader_free(rd);
	if (fd >= 0)
		close(fd);
	return r;
}

/* Is the target's thread blocked in a userfaultfd fault now? */
static bool in_fault(pid_t pid)
{
	char wchan[128];

	return test_proc_read(pid, "wchan", wchan, sizeof(wchan)) > 0 &&
	       !strncmp(wchan, "handle_userfault", 16);
}

/* Faults the target has completed (minflt + majflt of /proc/PID/stat); 0 if unreadable. */
static uint64_t faults_done(pid_t pid)
{
	char buf[1024];
	unsigned long long minflt = 0, majflt = 0;
	const char *p;

	if (test_proc_read(pid, "stat", buf, sizeof(buf)) <= 0)
		return 0;
	p = strrchr(buf, ')'); /* comm may hold spaces: fields count from its end */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %llu %*u %llu", &minflt, &majflt) != 2)
		return 0;
	return minflt + majflt;
}

/*
 * With the sink stalled (we do not read), the target rewrites its region: once the fault
 * handler's queue is full, one of its faults waits for the sink, and no fault completes any
 * more. Returns when the target has been seen in a fault, with no fault completed since the
 * poll before, at STUCK_POLLS polls in a row; -1 if never. (On a loaded machine every fault is
 * slow and the target is in some fault at almost every poll: being in a fault alone does not
 * say the queue is full, one fault that never completes does.) The verdict rests on
 * uffsnapd's own count of waits, not on this.
 */
static int make_fault_wait_for_sink(struct target *t)
{
	uint64_t done = 0, prev;
	int stuck = 0;

	if (write(t->cmd, "w", 1) != 1)
		return -1;
	for (int i = 0; i < 600 && stuck < STUCK_POLLS; i++) {
		prev = done;
		done = faults_done(t->pid);
		stuck = in_fault(t->pid) && done == prev ? stuck + 1 : 0;
		usleep(STUCK_POLL_US);
	}
	return stuck == STUCK_POLLS ? 0 : -1;
}

static void read_all(int fd, char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len - 1 && (n = read(fd, buf + done, len - 1 - done)) > 0)
		done += n;
	buf[done] = 0;
}

/* The --json summary: the last line on uffsnapd's stderr that is a JSON object. */
static json_t *summary_of(const char *errbuf)
{
	const char *line = errbuf, *last = NULL;

	for (; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (*line == '{')
			last = line;
	return last ? json_loadb(last, strcspn(last, "\n"), 0, NULL) : NULL;
}

static uint64_t summary_u64(json_t *sum, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(sum, key));
}

/* Does the run's outcome (exit code, frames seen, the --json summary, image) fit the mode? */
static int verdict(enum mode mode, int r, const struct stream *st, json_t *sum,
		   const char *errbuf, const char *image, const struct target *t)
{
	const char *error = json_string_value(json_object_get(sum, "error")) ?: "";
	uint64_t waits = summary_u64(sum, "fault_sink_waits");

	if (!sum)
		return fprintf(stderr, "FAIL: no --json summary on stderr: %s\n", errbuf), -1;
	if (mode == STRICT) {
		if (r != 1 || !json_is_false(json_object_get(sum, "ok")) ||
		    !strstr(error, "discarded memory not yet saved"))
			return fprintf(stderr, "FAIL: --strict: exit %d, stderr: %s\n", r, errbuf), -1;
		return printf("ok --strict fails: %s\n", error), 0;
	}
	if (r != 0 || !json_is_true(json_object_get(sum, "ok")) ||
	    (mode == DISCARD) != (st->discarded_in_region > 0) ||
	    summary_u64(sum, "pages_discarded") != st->discarded_in_region ||
	    st->discarded_in_region + st->data_in_region > REGION / 4096) {
		fprintf(stderr, "FAIL: exit %d, %" PRIu64 " discarded (%" PRIu64 " in the summary)"
			" + %" PRIu64 " saved pages in the region; stderr: %s\n", r, st->discarded_in_region,
			summary_u64(sum, "pages_discarded"), st->data_in_region, errbuf);
		return -1;
	}
	if (check_image(image, t, mode == DISCARD) < 0)
		return -1;
	if (mode == DISCARD)
		return printf("ok %" PRIu64 " pages discarded after T, %" PRIu64 " saved before\n",
			      st->discarded_in_region, st->data_in_region), 0;
	if (!waits)
		return fprintf(stderr, "FAIL: fault_sink_waits is 0: no fault waited for "
				       "the sink: %s\n", errbuf), -1;
	return printf("ok slow sink: %" PRIu64 " faults waited for it, the image holds T\n",
		      waits), 0;
}

/* After the snapshot: the target's region is what its own last command made it. */
static int target_after(struct target *t, enum mode mode)
{
	char ok = 'n';

	if (mode != SLOW_SINK)
		return target_do(t, 'c');
	return read(t->reply, &ok, 1) == 1 && ok == 'y' ? 0 : -1; /* the reply to 'w' */
}

static int run(const char *uffsnapd, enum mode mode)
{
	struct target t = {0};
	struct stream st = {0};
	uint8_t hdr[IMG_HEADER_SIZE], *payload = malloc(64 << 20);
	char image[] = "/tmp/uffsnap-discard-XXXXXX", errbuf[4096] = "";
	json_t *sum = NULL;
	int out = -1, err = -1, r, rc = -1, ifd = mkstemp(image);
	pid_t d = -1;

	st.copy = fdopen(ifd, "w");
	if (!payload || !st.copy || target_start(&t) < 0) {
		fprintf(stderr, "FAIL: cannot set up the target\n");
		goto out;
	}
	d = start_uffsnapd(uffsnapd, t.pid, mode, &out, &err);
	st.fd = out;
	r = read_full(out, hdr, sizeof(hdr));
	fwrite(hdr, 1, sizeof(hdr), st.copy);
	while (r >= 0 && !st.reached)
		r = next_frame(&st, &t, payload);
	if (r != 0) {
		fprintf(stderr, "FAIL: the copier never reached the region (%d)\n", r);
		goto out;
	}
	/* Not reading: the copier blocks within a few MiB of the region's start. */
	if (mode == SLOW_SINK && make_fault_wait_for_sink(&t) < 0) {
		fprintf(stderr, "FAIL: the target never waited in a fault for the sink\n");
		goto out;
	}
	if (mode != SLOW_SINK && target_do(&t, 'd') < 0) {
		fprintf(stderr, "FAIL: the target could not drop its region\n");
		goto out;
	}
	while ((r = next_frame(&st, &t, payload)) == 0)
		;
	fflush(st.copy);
	read_all(err, errbuf, sizeof(errbuf));
	r = snap_wait(d);
	d = -1;
	sum = summary_of(errbuf);
	if (verdict(mode, r, &st, sum, errbuf, image, &t) < 0)
		goto out;
	if (target_after(&t, mode) < 0) {
		fprintf(stderr, "FAIL: the target's region is wrong after the snapshot\n");
		goto out;
	}
	rc = snap_target_released(t.pid) < 0 ? -1 : 0;
out:
	if (d > 0) {
		kill(d, SIGKILL);
		snap_wait(d);
	}
	if (t.pid > 0) {
		kill(t.pid, SIGKILL);
		waitpid(t.pid, NULL, 0);
	}
	if (st.copy)
		fclose(st.copy);
	if (out >= 0)
		close(out);
	if (err >= 0)
		close(err);
	unlink(image);
	free(payload);
	json_decref(sum);
	return rc;
}

int main(int argc, char **argv)
{
	struct snap_paths p;

	snap_paths_parse(argc, argv, &p);
	if (getuid() != 0) {
		printf("SKIP: needs root (ptrace any process, /dev/userfaultfd)\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	if (run(p.uffsnapd, DISCARD) < 0 || run(p.uffsnapd, STRICT) < 0 ||
	    run(p.uffsnapd, SLOW_SINK) < 0)
		return 1;
	return 0;
}
