/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "oneshot-chain.h"
#include "sys/clock.h"
#include "sys/out-file.h"
#include "uffsnap/image.h"

struct chain_run {
	const struct chain_cli *cc;
	struct snapshot_chain *chain;
	char prefix[64];   /* uffsnap-PID-YYYYmmddTHHMMSSZ: the chain's images' names */
	char parent[512];  /* the last image, as its child's META "parent" names it */
};

/* Sleeps until at (CLOCK_MONOTONIC), or -EINTR as soon as efd is readable. */
static int wait_until(int efd, uint64_t at)
{
	for (;;) {
		uint64_t now = sys_now_ns();
		struct pollfd p = {.fd = efd, .events = POLLIN};
		int n;

		if (now >= at)
			return 0;
		n = poll(&p, 1, (int)((at - now + 999999) / 1000000));
		if (n > 0)
			return -EINTR;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* fd (open for writing) again, for reading. */
static int reopen(int fd)
{
	char proc[64];
	int rfd;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	rfd = open(proc, O_RDONLY | O_CLOEXEC);
	return rfd < 0 ? -errno : rfd;
}

/* The parent of the next image: the complete image in fd, named name (FORMAT.md "Chains"). */
static int describe_parent(struct chain_run *r, int wfd, const char *name)
{
	int fd = reopen(wfd);
	uint8_t raw[IMG_TRAILER_SIZE];
	struct img_trailer t;
	struct img_reader *rd = NULL;
	struct img_error e;
	json_t *meta = NULL;
	char hex[2 * IMG_DIGEST_SIZE + 1];
	off_t end = fd < 0 ? 0 : lseek(fd, 0, SEEK_END);
	int k = fd < 0 ? fd : end < IMG_TRAILER_SIZE ? -EBADMSG : 0;

	if (k >= 0 && pread(fd, raw, sizeof(raw), end - IMG_TRAILER_SIZE) != sizeof(raw))
		k = -EIO;
	if (k >= 0)
		k = img_trailer_decode(raw, &t, &e);
	if (k >= 0)
		k = img_reader_open(fd, &rd, &e);
	if (k >= 0)
		meta = json_loads(img_reader_meta(rd), 0, NULL);
	for (int i = 0; k >= 0 && i < IMG_DIGEST_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", t.digest[i]);
	if (k >= 0)
		snprintf(r->parent, sizeof(r->parent),
			 "{\"digest\":\"%s\",\"time\":\"%s\",\"file\":\"%s\"}", hex,
			 json_string_value(json_object_get(json_object_get(meta, "time"),
							   "iso8601")) ?: "",
			 name);
	json_decref(meta);
	img_reader_free(rd);
	if (fd >= 0)
		close(fd);
	return k;
}

/* Reads the finished image back, front to back, as `uffsnapctl image verify` would. */
static int verify(int fd, char *msg, size_t len)
{
	struct img_summary sum;
	int k, rfd = reopen(fd); /* not named yet */

	if (rfd < 0)
		return snprintf(msg, len, "cannot reopen the image: %s", strerror(-rfd)), rfd;
	k = img_verify_fd(rfd, &sum, NULL);
	close(rfd);
	if (k >= 0 && sum.status != IMG_COMPLETE)
		k = -EBADMSG;
	if (k < 0)
		snprintf(msg, len, "the image does not verify: %s",
			 k == -EBADMSG ? sum.error.msg : strerror(-k));
	return k;
}

/* Writes image i into out (named name in the chain's directory). */
static int write_image(struct chain_run *r, unsigned i, struct out_file *out,
		       struct snap_stats *st, char *msg, size_t len)
{
	struct snap_error err = {{0}};
	struct img_sink *sink = NULL;
	int k = img_sink_fd_new(out->fd, &sink);

	if (k >= 0)
		img_sink_fd_set_cancel(sink, r->cc->cancel_efd);
	if (k >= 0) {
		k = snapshot_chain_take(r->chain, sink, i ? r->parent : NULL, st, &err);
		if (k < 0)
			snprintf(msg, len, "%s", err.msg[0] ? err.msg : strerror(-k));
	}
	img_sink_free(sink);
	if (k >= 0 && fsync(out->fd) < 0)
		k = -errno, snprintf(msg, len, "cannot write the image: %m");
	if (k >= 0)
		k = verify(out->fd, msg, len);
	return k;
}

static int take_one(struct chain_run *r, unsigned i, char *path, struct snap_stats *st,
		    char *msg, size_t len)
{
	struct out_file out = OUT_FILE_INIT;
	char name[128];
	int k;

	snprintf(name, sizeof(name), "%s-%04u.img", r->prefix, i);
	snprintf(path, PATH_MAX, "%s/%s", r->cc->dir, name);
	k = out_file_open(&out, path, false, 0600);
	if (k < 0)
		snprintf(msg, len, "cannot create '%s': %s", path,
			 k == -EEXIST ? "it exists" : strerror(-k));
	if (k >= 0)
		k = write_image(r, i, &out, st, msg, len);
	if (k >= 0 && (k = out_file_commit(&out)) < 0)
		snprintf(msg, len, "cannot name '%s': %s", path, strerror(-k));
	if (k >= 0 && (k = describe_parent(r, out.fd, name)) < 0)
		snprintf(msg, len, "cannot read back '%s': %s", path, strerror(-k));
	out_file_close(&out); /* a failed image's temporary goes */
	return k;
}

static void report(const struct chain_run *r, unsigned i, const char *path,
		   const struct snap_stats *st, int k, const char *msg)
{
	const struct chain_cli *cc = r->cc;
	json_t *j = NULL;

	if (cc->json && snapshot_stats_to_json(st, &j) >= 0) {
		json_object_set_new(j, "image", json_string(path));
		json_object_set_new(j, "index", json_integer(i));
		json_object_set_new(j, "ok", json_boolean(k >= 0));
		if (k < 0)
			json_object_set_new(j, "error", json_string(msg));
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		fflush(stdout);
		json_decref(j);
	} else if (k >= 0 && !cc->quiet) {
		printf("uffsnapd: image %u of pid %d%s: %s, %.1f MiB, held %.3f ms, %u rounds%s\n",
		       i, cc->pid, i ? " (changes since the one before)" : " (full)", path,
		       st->bytes / 1048576.0, st->hold_final_ns / 1e6, st->rounds,
		       st->converged ? "" : " (did not converge: the last copied while held)");
		fflush(stdout);
	}
	if (k < 0)
		fprintf(stderr, "uffsnapd: image %u of the chain: %s\n", i, msg);
}

int oneshot_chain(const struct chain_cli *cc, const struct snap_opts *opts)
{
	struct chain_run r = {.cc = cc};
	struct snap_error err = {{0}};
	time_t now = time(NULL);
	uint64_t t0 = sys_now_ns();
	struct tm tm;
	int k;

	gmtime_r(&now, &tm);
	snprintf(r.prefix, sizeof(r.prefix), "uffsnap-%d-", cc->pid);
	strftime(r.prefix + strlen(r.prefix), sizeof(r.prefix) - strlen(r.prefix),
		 "%Y%m%dT%H%M%SZ", &tm);
	k = snapshot_chain_start(cc->pid, opts, &r.chain, &err);
	if (k < 0)
		return fprintf(stderr, "uffsnapd: %s\n", err.msg[0] ? err.msg : strerror(-k)), 1;
	for (unsigned i = 0; k >= 0 && (!cc->count || i < cc->count); i++) {
		char path[PATH_MAX], msg[PATH_MAX + 512] = "";
		struct snap_stats st = {0};

		if (i && wait_until(cc->cancel_efd, t0 + (uint64_t)i * cc->every_s * 1000000000ull))
			break; /* interrupted between two images: every image is complete */
		k = take_one(&r, i, path, &st, msg, sizeof(msg));
		report(&r, i, path, &st, k, msg);
	}
	snapshot_chain_end(r.chain);
	return k < 0;
}
