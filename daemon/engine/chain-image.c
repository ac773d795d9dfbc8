/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/chain-image.h"
#include "sys/clock.h"
#include "uffsnap/image.h"

int chain_image_wait(int wake_fd, uint64_t at)
{
	for (;;) {
		uint64_t now = sys_now_ns();
		struct pollfd p = {.fd = wake_fd, .events = POLLIN};
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

/* fd (perhaps open for writing only, perhaps unnamed) again, for reading. */
static int reopen(int fd)
{
	char proc[64];
	int rfd;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	rfd = open(proc, O_RDONLY | O_CLOEXEC);
	return rfd < 0 ? -errno : rfd;
}

int chain_image_verify(int fd, const char *name, char *msg, size_t len)
{
	struct img_summary sum;
	int k, rfd = reopen(fd);

	if (rfd < 0)
		return snprintf(msg, len, "cannot reopen '%s' to verify it: %s", name,
				strerror(-rfd)),
		       rfd;
	k = img_verify_fd(rfd, &sum, NULL);
	close(rfd);
	if (k >= 0 && sum.status != IMG_COMPLETE)
		k = -EBADMSG;
	if (k < 0)
		snprintf(msg, len, "the image '%s' does not verify: %s", name,
			 k == -EBADMSG ? sum.error.msg : strerror(-k));
	return k;
}

int chain_image_write(struct snapshot_chain *c, int fd, int cancel_fd, const char *name,
		      const char *parent_json, struct snap_stats *ret_stats, char *msg, size_t len)
{
	struct snap_error err = {{0}};
	struct img_sink *sink = NULL;
	int k = img_sink_fd_new(fd, &sink);

	if (k >= 0)
		img_sink_fd_set_cancel(sink, cancel_fd);
	if (k < 0)
		snprintf(msg, len, "cannot set up the output: %s", strerror(-k));
	if (k >= 0) {
		k = snapshot_chain_take(c, sink, parent_json, ret_stats, &err);
		if (k < 0)
			snprintf(msg, len, "%s", err.msg[0] ? err.msg : strerror(-k));
	}
	img_sink_free(sink);
	if (k >= 0 && fsync(fd) < 0)
		k = -errno, snprintf(msg, len, "cannot write '%s': %s", name, strerror(-k));
	if (k >= 0)
		k = chain_image_verify(fd, name, msg, len);
	return k;
}

/* The trailer's digest of the complete image in fd, as hex. */
static int trailer_digest(int fd, char hex[2 * IMG_DIGEST_SIZE + 1])
{
	uint8_t raw[IMG_TRAILER_SIZE];
	struct img_trailer t;
	struct img_error e;
	off_t end = lseek(fd, 0, SEEK_END);

	if (end < IMG_TRAILER_SIZE)
		return end < 0 ? -errno : -EBADMSG;
	if (pread(fd, raw, sizeof(raw), end - IMG_TRAILER_SIZE) != sizeof(raw))
		return -EIO;
	if (img_trailer_decode(raw, &t, &e) < 0)
		return -EBADMSG;
	for (int i = 0; i < IMG_DIGEST_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", t.digest[i]);
	return 0;
}

int chain_image_parent(int fd, const char *name, char *ret, size_t len)
{
	int rfd = reopen(fd), k = rfd;
	char hex[2 * IMG_DIGEST_SIZE + 1];
	struct img_reader *rd = NULL;
	struct img_error e;
	json_t *meta = NULL, *p = NULL;
	char *s = NULL;

	if (k >= 0)
		k = trailer_digest(rfd, hex);
	if (k >= 0)
		k = img_reader_open(rfd, &rd, &e);
	if (k >= 0)
		meta = json_loads(img_reader_meta(rd), 0, NULL);
	if (k >= 0)
		p = json_pack(
		    "{s:s, s:s, s:s}", "digest", hex, "time",
		    json_string_value(json_object_get(json_object_get(meta, "time"), "iso8601"))
			?: "",
		    "file", name);
	if (k >= 0)
		s = json_dumps(p, JSON_COMPACT);
	if (k >= 0 && (!s || strlen(s) >= len))
		k = s ? -ENAMETOOLONG : -ENOMEM;
	if (k >= 0)
		snprintf(ret, len, "%s", s);
	free(s);
	json_decref(p);
	json_decref(meta);
	img_reader_free(rd);
	if (rfd >= 0)
		close(rfd);
	return k;
}
