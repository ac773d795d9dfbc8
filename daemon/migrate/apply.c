/* SPDX-License-Identifier: MIT */
/* The destination's page writer of a migration (apply.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate/apply.h"

enum apply_state {
	A_HEADER,  /* the image header */
	A_FRAME,   /* a frame header */
	A_PAYLOAD, /* inside a payload */
	A_TAIL,	   /* after the first INDEX frame: only the index and the trailer follow */
};

void apply_init(struct apply *a)
{
	*a = (struct apply){.meta = a->meta, .ctx = a->ctx, .state = A_HEADER};
}

int apply_set_backends(struct apply *a, const struct apply_backend *b, size_t n)
{
	free(a->b);
	a->b = calloc(n ? n : 1, sizeof(*b));
	if (!a->b)
		return -ENOMEM;
	memcpy(a->b, b, n * sizeof(*b));
	a->nb = n;
	return 0;
}

void apply_free(struct apply *a)
{
	free(a->b);
	free(a->meta_buf);
	a->b = NULL;
	a->meta_buf = NULL;
}

/* The backend holding all of the frame's extent, or a message why there is none. */
static int find_backend(struct apply *a, char *msg, size_t len)
{
	uint64_t end = a->f.addr + a->f.count * a->page_size;

	a->cur = NULL;
	for (size_t i = 0; i < a->nb; i++)
		if (a->f.addr >= a->b[i].addr && end <= a->b[i].addr + a->b[i].size)
			a->cur = &a->b[i];
	if (a->cur)
		return 0;
	snprintf(msg, len,
		 "the stream has %s pages at 0x%" PRIx64 "-0x%" PRIx64 " outside every memory "
		 "backend of the guest",
		 img_frame_type_name(a->f.type), a->f.addr, end);
	return -EBADMSG;
}

/* ZERO: a hole (tmpfs and most file systems), else zeros written. */
static int zero_range(int fd, uint64_t off, uint64_t n)
{
	static const uint8_t zeros[65536];

	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)n) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	for (uint64_t done = 0; done < n;) {
		size_t c = n - done < sizeof(zeros) ? n - done : sizeof(zeros);
		ssize_t w = pwrite(fd, zeros, c, (off_t)(off + done));

		if (w < 0)
			return -errno;
		done += (uint64_t)w;
	}
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* A frame header arrived: what its payload means here. */
static int on_frame(struct apply *a, char *msg, size_t len)
{
	struct img_error err = {0};
	int k = img_frame_decode(a->hdr, &a->f, &err);
	uint64_t off;

	if (k < 0)
		return snprintf(msg, len, "%s", err.msg), k;
	a->done = 0;
	a->state = a->f.payload_len ? A_PAYLOAD : A_FRAME;
	switch (a->f.type) {
	case IMG_FRAME_META:
		free(a->meta_buf);
		a->meta_buf = malloc(a->f.payload_len + 1);
		return a->meta_buf ? 0 : -ENOMEM;
	case IMG_FRAME_PAGES:
		return find_backend(a, msg, len);
	case IMG_FRAME_ZERO:
		k = find_backend(a, msg, len);
		off = a->f.addr - (a->cur ? a->cur->addr : 0);
		if (k >= 0 && (k = zero_range(a->cur->fd, off, a->f.count * a->page_size)) < 0)
			snprintf(msg, len, "cannot zero guest RAM: %s", strerror(-k));
		a->pages_zeroed += k >= 0 ? a->f.count : 0;
		return k;
	case IMG_FRAME_DISCARDED:
	case IMG_FRAME_UNMAPPED:
		snprintf(msg, len,
			 "the stream has no content for guest RAM at 0x%" PRIx64 " (%" PRIu64
			 " pages %s): a guest cannot run without it",
			 a->f.addr, a->f.count, img_frame_type_name(a->f.type));
		return -EBADMSG;
	case IMG_FRAME_INDEX:
		a->state = A_TAIL;
		return 0;
	}
	return 0; /* PROGRESS, EVENT, DEVSTATE, unknown optional frames: skipped */
}

/* n payload bytes of the current frame. */
static int on_payload(struct apply *a, const uint8_t *p, size_t n, char *msg, size_t len)
{
	int k = 0;

	if (a->f.type == IMG_FRAME_PAGES) {
		k = write_all(a->cur->fd, p, n, a->f.addr - a->cur->addr + a->done);
		if (k < 0)
			return snprintf(msg, len, "cannot write guest RAM: %s", strerror(-k)), k;
	} else if (a->f.type == IMG_FRAME_META) {
		memcpy(a->meta_buf + a->done, p, n);
	}
	a->done += n;
	if (a->done < a->f.payload_len)
		return 0;
	a->state = A_FRAME;
	if (a->f.type == IMG_FRAME_PAGES)
		a->pages_written += a->f.count;
	if (a->f.type != IMG_FRAME_META)
		return 0;
	a->meta_buf[a->f.payload_len] = 0;
	k = a->meta(a->ctx, a->metas++, a->meta_buf, a->f.payload_len, msg, len);
	if (k >= 0 && !a->nb)
		k = -EINVAL, snprintf(msg, len, "the image names no memory backend");
	return k;
}

int apply_feed(struct apply *a, const uint8_t *buf, size_t n, char *msg, size_t len)
{
	int k = 0;

	while (n && k >= 0 && a->state != A_TAIL) {
		size_t want, c;

		if (a->state == A_PAYLOAD) {
			c = a->f.payload_len - a->done < n ? a->f.payload_len - a->done : n;
			k = on_payload(a, buf, c, msg, len);
			buf += c;
			n -= c;
			continue;
		}
		want = a->state == A_HEADER ? IMG_HEADER_SIZE : IMG_FRAME_HEADER_SIZE;
		c = want - a->have < n ? want - a->have : n;
		memcpy(a->hdr + a->have, buf, c);
		a->have += c;
		buf += c;
		n -= c;
		if (a->have < want)
			break;
		a->have = 0;
		if (a->state == A_FRAME) {
			k = on_frame(a, msg, len);
		} else {
			struct img_header h;
			struct img_error err = {0};

			k = img_header_decode(a->hdr, &h, &err);
			if (k < 0)
				snprintf(msg, len, "%s", err.msg);
			a->page_size = h.page_size;
			a->state = A_FRAME;
		}
	}
	return k;
}
