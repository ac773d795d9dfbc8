// SPDX-License-Identifier: MIT
/*
 * A QEMU guest snapshotted live by `uffsnapd --qemu` while it dirties its memory, then restored
 * by stock QEMU both ways `uffsnapctl qemu restore` offers:
 *   - the source guest keeps ticking, its own page check clean, no tick lost;
 *   - the image's guest RAM is exactly one state of the guest program (the oracle of
 *     guest-oracle.c: after tick T, plus a prefix of tick T + 1), and the guest had found no
 *     bad page by then;
 *   - restored into a QEMU we start with -incoming defer (--qmp), and into one uffsnapctl
 *     starts itself (-- QEMU-ARGS), the guest goes on from tick T: its first tick line is T
 *     or T + 1 (T's line may not have been printed at the instant), then 30 more, clean.
 *
 * usage: test-guest-uffsnapd UFFSNAPD UFFSNAPCTL
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "guest-harness.h"
#include "guest-pattern.h"
#include "qmp.h"
#include "test-check.h"
#include "uffsnap/image.h"

/* Safety nets so that a stuck test ends; nothing here asserts on time. */
#define BOOT_TIMEOUT_S	300
#define TICKS_TIMEOUT_S 120
#define TICKS_AFTER	30

struct run {
	const char *uffsnapd, *uffsnapctl;
	struct guest_config cfg;
	struct guest src, dst1, dst2;
	struct guest_layout layout;
	struct guest_oracle state;
	char dir[64], img[128], ram1[128], out[128], restore_dir[160];
	char why[GUEST_WHY_LEN];
};

/* Runs argv (NULL-ended), stdout to out_path (or inherited); its exit status, or -1. */
static int run_cmd(const char *const *argv, const char *out_path)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (out_path) {
			int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
				_exit(127);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int boot(struct run *r)
{
	struct guest_log log;

	CHECK(guest_start(&r->src, &r->cfg, r->why, sizeof(r->why)) == 0, "%s", r->why);
	CHECK(guest_wait_tick(&r->src, 0, 10, BOOT_TIMEOUT_S, &log, r->why, sizeof(r->why)) == 0,
	      "%s", r->why);
	CHECK(guest_log_read(r->src.serial_path, 0, -1, &log, &r->layout) == 0,
	      "no complete page layout in %s", r->src.serial_path);
	return 0;
fail:
	return -1;
}

/* uffsnapd --qemu while the guest runs; then the source goes on, clean and without a gap. */
static int snapshot(struct run *r)
{
	const char *argv[] = {r->uffsnapd, "--qemu", r->src.qmp_path, "--output", r->img,
			      "--json", NULL};
	struct guest_log log;
	json_error_t jerr;
	json_t *j, *g;
	int rc;

	rc = run_cmd(argv, r->out);
	CHECK(rc == 0, "uffsnapd --qemu exited %d", rc);
	j = json_load_file(r->out, 0, &jerr);
	g = json_object_get(j, "guest");
	CHECK(json_is_true(json_object_get(j, "ok")) && g, "no guest in the summary: %s",
	      jerr.text);
	printf("uffsnapd: guest downtime %.1f ms, device state %lld bytes in %.1f ms, target held "
	       "%.1f ms, %lld write faults (informational)\n",
	       json_integer_value(json_object_get(g, "downtime_ns")) / 1e6,
	       (long long)json_integer_value(json_object_get(g, "devstate_bytes")),
	       json_integer_value(json_object_get(g, "devstate_ns")) / 1e6,
	       json_integer_value(json_object_get(j, "held_ns")) / 1e6,
	       (long long)json_integer_value(json_object_get(j, "faults")));
	json_decref(j);

	CHECK(guest_log_read(r->src.serial_path, 0, -1, &log, NULL) == 0, "log");
	CHECK(guest_wait_tick(&r->src, 0, log.last_tick + TICKS_AFTER, TICKS_TIMEOUT_S, &log,
			      r->why, sizeof(r->why)) == 0,
	      "source after the snapshot: %s", r->why);
	CHECK(guest_log_read(r->src.serial_path, 0, -1, &log, NULL) == 0, "log");
	CHECK(log.bad == 0 && log.gaps == 0, "source: %s%s", log.first_bad, log.first_gap);
	printf("source: went on to tick %ld, its page check clean, no tick lost\n", log.last_tick);
	return 0;
fail:
	return -1;
}

struct image_ram {
	struct img_reader *rd;
	uint64_t base; /* where backend GUEST_RAM_ID was mapped in QEMU */
};

static int read_image(void *ctx, uint64_t gpa, void *buf)
{
	struct image_ram *ir = ctx;
	struct img_error err;

	return img_reader_read(ir->rd, ir->base + gpa, buf, GP_PAGE_SIZE, &err);
}

/* The image's RAM is exactly one state of the guest program. */
static int oracle(struct run *r)
{
	struct image_ram ir = {0};
	struct img_error err = {0};
	json_t *meta = NULL, *b;
	size_t i;
	int fd = open(r->img, O_RDONLY | O_CLOEXEC), k = -1;

	CHECK(fd >= 0, "%s: %m", r->img);
	CHECK(img_reader_open(fd, &ir.rd, &err) == 0, "%s", err.msg);
	meta = json_loads(img_reader_meta(ir.rd), 0, NULL);
	json_array_foreach(json_object_get(json_object_get(meta, "guest"), "backends"), i, b)
		if (!strcmp(json_string_value(json_object_get(b, "id")), GUEST_RAM_ID))
			ir.base = strtoull(json_string_value(json_object_get(b, "addr")), NULL, 16);
	CHECK(ir.base, "the image names no backend " GUEST_RAM_ID);
	k = guest_oracle_check(&r->layout, read_image, &ir, &r->state, r->why, sizeof(r->why));
	CHECK(k == 0, "the image's RAM is no state of the guest: %s", r->why);
	printf("image: exactly the guest after tick %llu + %llu pages and %u words of the next "
	       "(guest's own bad count %llu)\n",
	       (unsigned long long)r->state.tick, (unsigned long long)r->state.prefix_pages,
	       r->state.prefix_words, (unsigned long long)r->state.guest_bad);
	CHECK(r->state.guest_bad == 0, "the guest had found bad pages");
	k = 0;
fail:
	json_decref(meta);
	img_reader_free(ir.rd);
	if (fd >= 0)
		close(fd);
	return k;
}

/* The restored guest goes on from the instant: first tick line T or T + 1, then clean. */
static int check_restored(struct run *r, struct guest *g, const char *how)
{
	long t = (long)r->state.tick;
	struct guest_log log;

	CHECK(guest_wait_tick(g, 0, t + 1 + TICKS_AFTER, TICKS_TIMEOUT_S, &log, r->why,
			      sizeof(r->why)) == 0,
	      "guest restored %s: %s", how, r->why);
	CHECK(log.bad == 0 && log.gaps == 0, "guest restored %s: %s%s", how, log.first_bad,
	      log.first_gap);
	CHECK(log.first_tick == t || log.first_tick == t + 1,
	      "guest restored %s: first tick line %ld, but the image is at tick %ld", how,
	      log.first_tick, t);
	printf("restored %s: first tick line %ld (image at tick %ld), went on to %ld, clean\n", how,
	       log.first_tick, t, log.last_tick);
	return 0;
fail:
	return -1;
}

static bool wait_socket(const char *path)
{
	for (int i = 0; i < BOOT_TIMEOUT_S * 20; i++) {
		if (access(path, F_OK) == 0)
			return true;
		test_sleep_ms(50);
	}
	return false;
}

/* Into a QEMU we start, waiting with -incoming defer on an empty RAM file. */
static int restore_qmp(struct run *r)
{
	const char *argv[] = {r->uffsnapctl, "qemu", "restore", r->img, "--qmp", NULL, NULL};
	int fd = open(r->ram1, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc;

	CHECK(fd >= 0 && ftruncate(fd, GUEST_RAM_BYTES) == 0, "%s: %m", r->ram1);
	close(fd);
	CHECK(guest_start_incoming(&r->dst1, &r->cfg, r->ram1, r->why, sizeof(r->why)) == 0, "%s",
	      r->why);
	CHECK(wait_socket(r->dst1.qmp_path), "QEMU never made %s", r->dst1.qmp_path);
	argv[5] = r->dst1.qmp_path;
	rc = run_cmd(argv, NULL);
	CHECK(rc == 0, "uffsnapctl qemu restore --qmp exited %d", rc);
	return check_restored(r, &r->dst1, "with --qmp");
fail:
	return -1;
}

/* uffsnapctl starts QEMU itself, with our command line but RAM in files of its own. */
static int restore_self(struct run *r)
{
	const char *argv[64] = {r->uffsnapctl, "qemu", "restore", r->img, "--ram-dir",
				r->restore_dir, "--"};
	char sock[200], msg[256];
	struct guest_argv a;
	struct qmp *q = NULL;
	size_t n = 7;
	int rc;

	CHECK(guest_prepare(&r->dst2, r->why, sizeof(r->why)) == 0, "%s", r->why);
	snprintf(r->restore_dir, sizeof(r->restore_dir), "%s/restore", r->dst2.dir);
	guest_argv(&r->dst2, &r->cfg, &a);
	for (size_t i = 0; a.argv[i] && n < 63; i++)
		argv[n++] = a.argv[i];
	argv[n] = NULL;
	rc = run_cmd(argv, NULL);
	/* That QEMU is not our child: its pid, to watch and to stop it, from its QMP socket. */
	snprintf(sock, sizeof(sock), "%s/qmp.sock", r->restore_dir);
	if (qmp_open_path(sock, 60000, &q, msg, sizeof(msg)) == 0)
		r->dst2.pid = qmp_peer_pid(q);
	qmp_close(q);
	CHECK(rc == 0, "uffsnapctl qemu restore (self-started) exited %d", rc);
	CHECK(r->dst2.pid > 0, "no QEMU on %s: %s", sock, msg);
	return check_restored(r, &r->dst2, "by uffsnapctl's own QEMU");
fail:
	return -1;
}

int main(int argc, char **argv)
{
	struct run *r = calloc(1, sizeof(*r));
	int status = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!r || argc != 3) {
		fprintf(stderr, "usage: %s UFFSNAPD UFFSNAPCTL\n", argv[0]);
		return 2;
	}
	r->uffsnapd = argv[1];
	r->uffsnapctl = argv[2];
	if (geteuid() != 0) {
		printf("SKIP: needs root (ptrace of QEMU, /dev/userfaultfd)\n");
		return GUEST_SKIP;
	}
	if (guest_config_find(&r->cfg, r->why, sizeof(r->why)) < 0) {
		printf("SKIP: cannot boot a test guest: %s\n", r->why);
		return GUEST_SKIP;
	}
	snprintf(r->dir, sizeof(r->dir), "/tmp/uffsnap-guest-uffsnapd.XXXXXX");
	if (!mkdtemp(r->dir)) {
		printf("FAIL: mkdtemp: %m\n");
		return 1;
	}
	snprintf(r->img, sizeof(r->img), "%s/guest.img", r->dir);
	snprintf(r->ram1, sizeof(r->ram1), "%s/ram1", r->dir);
	snprintf(r->out, sizeof(r->out), "%s/summary.json", r->dir);
	if (boot(r) == 0 && snapshot(r) == 0 && oracle(r) == 0 && restore_qmp(r) == 0 &&
	    restore_self(r) == 0)
		status = 0;
	guest_stop(&r->src);
	guest_stop(&r->dst1);
	guest_stop(&r->dst2); /* its RAM dir too: it is inside dst2's directory */
	guest_layout_free(&r->layout);
	unlink(r->img);
	unlink(r->ram1);
	unlink(r->out);
	rmdir(r->dir);
	printf("%s\n", status ? "FAIL" : "PASS");
	free(r);
	return status;
}
