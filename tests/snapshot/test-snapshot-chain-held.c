/* SPDX-License-Identifier: MIT */
/*
 * Incremental chains and the memory copied while held (engine/heldcopy.h): a writable private
 * file mapping cannot be write-protected, so every image copies it while the target is held,
 * and an increment writes only its pages whose bytes changed since the image before (a page
 * it lacks reads as its parent's). The test decides every store: a target with such a
 * mapping of NPAGES pages changes chosen pages between two images (one to new bytes, one back
 * to bytes an older image had, a zero page to data and a data page to zero) and then waits;
 * which instant each change came before is read from the images' own instants.
 * Each image, read through the chain, must hold the mapping exactly as it was at that
 * instant, every page; each increment must hold exactly the pages that changed (and no
 * other page of the mapping); the target must be unharmed.
 *
 * usage: test-snapshot-chain-held UFFSNAPD
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "test-check.h"
#include "uffsnap/chain.h"
#include "uffsnap/image.h"

#define PAGE   4096ul
#define NPAGES 64
#define IMAGES 4

/* A change: page = value (every 8-byte word of it; 0 makes it a zero page). */
struct change {
	unsigned page;
	uint64_t value;
};

/* What changes after image i (before image i + 1). */
static const struct change changes[IMAGES - 1][3] = {
    {{10, 0xaaaa}, {0, 5}, {NPAGES, 0}},      /* new bytes; a zero page gets data */
    {{10, 10}, {20, 0}, {NPAGES, 0}},	      /* back to image 0's bytes; data to zero */
    {{NPAGES, 0}, {NPAGES, 0}, {NPAGES, 0}}, /* nothing */
};

static uint64_t initial(unsigned page)
{
	return page < 4 ? 0 : page; /* pages 0-3 zero */
}

static void fill(uint8_t *p, uint64_t v)
{
	for (size_t i = 0; i < PAGE / 8; i++)
		((uint64_t *)p)[i] = v;
}

struct target {
	pid_t pid;
	int cmd, reply;
};

/* The target: applies the changes it is told (a page number, a value), answers each. */
static void target_main(uint8_t *map, int cmd, int reply)
{
	struct change c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (read(cmd, &c, sizeof(c)) == sizeof(c)) {
		fill(map + c.page * PAGE, c.value);
		if (write(reply, "y", 1) != 1)
			_exit(3);
	}
	_exit(0);
}

static int spawn(uint8_t *map, struct target *t)
{
	int c[2], r[2];

	if (pipe2(c, O_CLOEXEC) < 0 || pipe2(r, O_CLOEXEC) < 0)
		return -errno;
	t->pid = fork();
	if (t->pid == 0) {
		close(c[1]);
		close(r[0]);
		target_main(map, c[0], r[1]);
	}
	close(c[0]);
	close(r[1]);
	t->cmd = c[1];
	t->reply = r[0];
	return t->pid < 0 ? -errno : 0;
}

static int change(struct target *t, const struct change *c)
{
	char y;

	return write(t->cmd, c, sizeof(*c)) == sizeof(*c) && read(t->reply, &y, 1) == 1 ? 0
											 : -EIO;
}

/* uffsnapd --incremental, its stdout (one JSON line per image) on *out. */
static pid_t start_chain(const char *uffsnapd, pid_t target, const char *dir, FILE **out)
{
	char pid[16], count[8];
	int p[2];
	pid_t c;

	snprintf(pid, sizeof(pid), "%d", target);
	snprintf(count, sizeof(count), "%d", IMAGES);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	c = fork();
	if (c == 0) {
		dup2(p[1], STDOUT_FILENO);
		execl(uffsnapd, uffsnapd, "--pid", pid, "--incremental", "--every", "2", "--count",
		      count, "--dir", dir, "--json", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*out = fdopen(p[0], "r");
	return c;
}

/* Every page of the mapping in image path, read through its chain, is expected[]. */
static int check_instant(const char *path, uint64_t base, const uint64_t *expected,
			 const bool *known)
{
	struct img_chain *c = NULL;
	struct img_error e = {0};
	uint8_t page[PAGE], want[PAGE];
	int rc = -1;

	CHECK(img_chain_open(path, NULL, &c, &e) >= 0, "%s: cannot open its chain: %s", path,
	      e.msg);
	for (unsigned i = 0; i < NPAGES; i++) {
		if (!known[i])
			continue;
		fill(want, expected[i]);
		CHECK(img_chain_read(c, base + i * PAGE, page, PAGE, &e) >= 0,
		      "%s: page %u of the mapping cannot be read: %s", path, i, e.msg);
		CHECK(!memcmp(page, want, PAGE),
		      "%s: page %u of the mapping holds %#" PRIx64 "..., not %#" PRIx64, path, i,
		      *(uint64_t *)page, expected[i]);
	}
	rc = 0;
fail:
	img_chain_free(c);
	return rc;
}

/*
 * The increment path holds exactly the pages of the mapping whose bytes differ between its
 * parent's instant (was) and its own (now).
 */
static int check_holds(const char *path, uint64_t base, const uint64_t *was, const bool *was_known,
		       const uint64_t *now, const bool *now_known)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;
	struct img_reader *rd = NULL;
	struct img_error e = {0};
	uint8_t page[PAGE];

	CHECK(fd >= 0 && img_reader_open(fd, &rd, &e) >= 0, "%s: cannot open it: %s", path,
	      e.msg);
	for (unsigned i = 0; i < NPAGES; i++) {
		int k = img_reader_read(rd, base + i * PAGE, page, PAGE, &e);
		bool changed = was[i] != now[i];

		CHECK(k >= 0 || k == -ENOENT, "%s: page %u: %s", path, i, strerror(-k));
		if (!was_known[i] || !now_known[i])
			continue;
		CHECK((k >= 0) == changed, "%s: page %u of the mapping %s, but it %s", path, i,
		      k >= 0 ? "is in the increment" : "is not in the increment",
		      changed ? "changed" : "did not change");
	}
	rc = 0;
fail:
	img_reader_free(rd);
	if (fd >= 0)
		close(fd);
	return rc;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The image's instant (META time.realtime_ns), or 0. */
static uint64_t instant_of(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct img_reader *rd = NULL;
	struct img_error e;
	json_t *meta = NULL;
	uint64_t t = 0;

	if (fd >= 0 && img_reader_open(fd, &rd, &e) >= 0)
		meta = json_loads(img_reader_meta(rd), 0, NULL);
	t = (uint64_t)json_integer_value(json_object_get(json_object_get(meta, "time"),
							 "realtime_ns"));
	json_decref(meta);
	img_reader_free(rd);
	if (fd >= 0)
		close(fd);
	return t;
}

/* A change the target made, between before and after (CLOCK_REALTIME). */
struct made {
	struct change c;
	uint64_t before, after;
};

/*
 * What the mapping held at instant t: the initial bytes and every change the target had
 * answered before t. Changes are made between two images and --every leaves seconds for
 * them, but a loaded machine may start an image late or early: so the test goes by the
 * instants the images record, not by which image came before a change. A change under way at
 * t (sent before t, answered after) leaves its page undecided (-1: not checked).
 */
static void state_at(uint64_t t, const struct made *m, size_t n, uint64_t *state,
		     bool *known)
{
	for (unsigned i = 0; i < NPAGES; i++)
		state[i] = initial(i), known[i] = true;
	for (size_t i = 0; i < n; i++) {
		if (m[i].after < t)
			state[m[i].c.page] = m[i].c.value;
		else if (m[i].before <= t)
			known[m[i].c.page] = false;
	}
}

static int run(const char *uffsnapd, uint8_t *map, const char *dir)
{
	uint64_t state[IMAGES][NPAGES];
	bool known[IMAGES][NPAGES];
	struct made made[IMAGES * 3];
	char paths[IMAGES][4096];
	struct target t = {0};
	FILE *out = NULL;
	pid_t chain = -1;
	char *line = NULL;
	size_t cap = 0, nmade = 0;
	unsigned got = 0;
	int st, rc = -1;

	CHECK(spawn(map, &t) >= 0, "fork: %s", strerror(errno));
	chain = start_chain(uffsnapd, t.pid, dir, &out);
	CHECK(chain > 0 && out, "cannot start %s", uffsnapd);
	while (got < IMAGES && getline(&line, &cap, out) > 0) {
		json_t *j = json_loads(line, 0, NULL);
		const char *img = json_string_value(json_object_get(j, "image"));

		CHECK(img && json_is_true(json_object_get(j, "ok")), "image %u: %s", got, line);
		snprintf(paths[got], sizeof(paths[got]), "%s", img);
		json_decref(j);
		for (unsigned c = 0; got + 1 < IMAGES && c < 3; c++) {
			struct made *m = &made[nmade];

			if (changes[got][c].page >= NPAGES)
				continue;
			m->c = changes[got][c];
			m->before = realtime_ns();
			CHECK(change(&t, &m->c) == 0, "the target does not answer");
			m->after = realtime_ns();
			nmade++;
		}
		got++;
	}
	CHECK(got == IMAGES, "uffsnapd wrote %u images, not %d", got, IMAGES);
	CHECK(waitpid(chain, &st, 0) == chain && WIFEXITED(st) && !WEXITSTATUS(st),
	      "uffsnapd --incremental failed");
	chain = -1;
	for (unsigned i = 0; i < IMAGES; i++) {
		uint64_t when = instant_of(paths[i]);

		CHECK(when, "%s: no instant in its metadata", paths[i]);
		state_at(when, made, nmade, state[i], known[i]);
		CHECK(check_instant(paths[i], (uintptr_t)map, state[i], known[i]) == 0, "image %u",
		      i);
		if (i)
			CHECK(check_holds(paths[i], (uintptr_t)map, state[i - 1], known[i - 1],
					  state[i], known[i]) == 0, "image %u", i);
	}
	/* unharmed: it still answers */
	{
		struct change c = {33, 33};

		CHECK(change(&t, &c) == 0, "the target does not answer after the chain");
	}
	printf("ok\n");
	rc = 0;
fail:
	if (chain > 0) {
		kill(chain, SIGKILL);
		waitpid(chain, NULL, 0);
	}
	if (out)
		fclose(out);
	free(line);
	if (t.pid > 0) {
		kill(t.pid, SIGKILL);
		waitpid(t.pid, NULL, 0);
		close(t.cmd);
		close(t.reply);
	}
	return rc;
}

int main(int argc, char **argv)
{
	char file[] = "/var/tmp/uffsnap-chain-held-XXXXXX", dir[] = "/tmp/uffsnap-chain-held-XXXXXX";
	uint8_t *map = MAP_FAILED;
	char cmd[128];
	int fd, rc = 1;

	if (argc != 2)
		return fprintf(stderr, "usage: %s UFFSNAPD\n", argv[0]), 2;
	if (getuid() != 0)
		return printf("SKIP: needs root (uffsnapd attaches to a process it did not start)\n"),
		       77;
	signal(SIGPIPE, SIG_IGN);
	fd = mkstemp(file);
	if (fd < 0 || ftruncate(fd, NPAGES * PAGE) < 0 || !mkdtemp(dir))
		return perror("setup"), 1;
	unlink(file);
	map = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return perror("mmap"), 1;
	for (unsigned i = 0; i < NPAGES; i++)
		fill(map + i * PAGE, initial(i));
	rc = run(argv[1], map, dir) < 0;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return rc;
}
