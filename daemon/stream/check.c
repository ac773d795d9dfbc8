/* SPDX-License-Identifier: MIT */
/* Incremental image check for the receiver (see stream/check.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "stream/check.h"

#define TRAILER_MAGIC "\x89UFSEND\n"

enum check_state {
	CHECK_HEADER,  /* collecting the 64-byte file header */
	CHECK_FRAME,   /* collecting a frame header (or the trailer, after an INDEX frame) */
	CHECK_PAYLOAD, /* inside a payload */
	CHECK_DONE,    /* the trailer checked out */
	CHECK_FAILED,
};

struct stream_check {
	enum check_state state;
	uint64_t offset; /* bytes fed */
	uint8_t buf[IMG_TRAILER_SIZE];
	size_t have, need;  /* bytes in buf, bytes wanted there */
	uint64_t frame_off; /* offset of the structure being collected */
	struct img_frame frame;
	uint32_t page_size;
	uint32_t flags;	      /* header flags (FORMAT.md: REWRITES allows a second META) */
	uint64_t seq;	      /* next expected frame sequence number */
	uint64_t metas;	      /* META frames so far */
	uint64_t meta_offset; /* a pre-copy image's second META frame */
	uint64_t payload_left;
	uint32_t crc;
	bool in_index;
	uint64_t index_offset;
	EVP_MD_CTX *sha;
};

int stream_check_new(struct stream_check **ret)
{
	struct stream_check *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->sha = EVP_MD_CTX_new();
	if (!c->sha || EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL) != 1) {
		stream_check_free(c);
		return -ENOMEM;
	}
	c->need = IMG_HEADER_SIZE;
	*ret = c;
	return 0;
}

void stream_check_free(struct stream_check *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->sha);
	free(c);
}

uint64_t stream_check_offset(const struct stream_check *c)
{
	return c->offset;
}

static int fail(struct stream_check *c, struct img_error *err, uint64_t off, int r, const char *msg)
{
	c->state = CHECK_FAILED;
	if (err && msg) {
		err->offset = off;
		snprintf(err->msg, sizeof(err->msg), "%s", msg);
	}
	return r;
}

/* META first; a pre-copy image (1.2) has one more, later; UNMAPPED only where allowed. */
static int meta_rules(struct stream_check *c, const struct img_frame *f, struct img_error *err)
{
	bool rewrites = c->flags & IMG_HEADER_F_REWRITES;

	if (f->seq == 0 && f->type != IMG_FRAME_META)
		return fail(c, err, c->frame_off, -EBADMSG, "META frame not first, or missing");
	if (f->seq && f->type == IMG_FRAME_META && (!rewrites || c->metas > 1))
		return fail(c, err, c->frame_off, -EBADMSG,
			    rewrites ? "a third META frame"
				     : "a second META frame (only a pre-copy image has one)");
	if (f->type == IMG_FRAME_UNMAPPED &&
	    !(c->flags & (IMG_HEADER_F_REWRITES | IMG_HEADER_F_INCREMENTAL)))
		return fail(
		    c, err, c->frame_off, -EBADMSG,
		    "an UNMAPPED frame in an image that is neither pre-copy nor incremental");
	if (f->type == IMG_FRAME_META && c->metas++)
		c->meta_offset = c->frame_off;
	return 0;
}

static int frame_rules(struct stream_check *c, const struct img_frame *f, struct img_error *err)
{
	char m[160];
	int r;

	if (f->seq != c->seq)
		return snprintf(m, sizeof(m), "frame sequence %llu, expected %llu",
				(unsigned long long)f->seq, (unsigned long long)c->seq),
		       fail(c, err, c->frame_off, -EBADMSG, m);
	r = meta_rules(c, f, err);
	if (r < 0)
		return r;
	if (c->in_index && f->type != IMG_FRAME_INDEX)
		return fail(c, err, c->frame_off, -EBADMSG, "a frame after the index");
	if (f->payload_len > IMG_MAX_FRAME_PAYLOAD)
		return fail(c, err, c->frame_off, -EBADMSG, "frame payload too large");
	if (f->type == IMG_FRAME_PAGES && (f->count == 0 || f->count > IMG_MAX_FRAME_PAYLOAD ||
					   f->count * c->page_size != f->payload_len))
		return fail(c, err, c->frame_off, -EBADMSG, "page frame length does not match");
	if (f->type > IMG_FRAME_INDEX && f->type != IMG_FRAME_UNMAPPED &&
	    !(f->flags & IMG_FRAME_F_OPTIONAL))
		return fail(c, err, c->frame_off, -EPROTONOSUPPORT, "unknown frame type");
	if (f->type == IMG_FRAME_INDEX && !c->in_index) {
		c->in_index = true;
		c->index_offset = c->frame_off;
	}
	return 0;
}

static int end_header(struct stream_check *c, struct img_error *err)
{
	struct img_header h;
	int r = img_header_decode(c->buf, &h, err);

	if (r < 0)
		return c->state = CHECK_FAILED, r;
	c->page_size = h.page_size;
	c->flags = h.flags;
	EVP_DigestUpdate(c->sha, c->buf, IMG_HEADER_SIZE);
	c->state = CHECK_FRAME;
	c->need = IMG_FRAME_HEADER_SIZE;
	return 0;
}

static int end_frame_header(struct stream_check *c, struct img_error *err)
{
	int r = img_frame_decode(c->buf, &c->frame, err);

	if (r < 0) {
		if (err)
			err->offset = c->frame_off;
		return c->state = CHECK_FAILED, r;
	}
	r = frame_rules(c, &c->frame, err);
	if (r < 0)
		return r;
	EVP_DigestUpdate(c->sha, c->buf, IMG_FRAME_HEADER_SIZE);
	c->seq++;
	c->payload_left = c->frame.payload_len;
	c->crc = 0;
	c->state = CHECK_PAYLOAD;
	if (c->payload_left == 0) {
		if (c->frame.payload_crc != 0)
			return fail(c, err, c->frame_off, -EBADMSG,
				    "empty payload with a checksum");
		c->state = CHECK_FRAME;
		c->need = IMG_FRAME_HEADER_SIZE;
	}
	return 0;
}

static int end_trailer(struct stream_check *c, struct img_error *err)
{
	uint8_t digest[IMG_DIGEST_SIZE];
	struct img_trailer t;
	unsigned int n = 0;
	int r = img_trailer_decode(c->buf, &t, err);

	if (r < 0)
		return c->state = CHECK_FAILED, r;
	if (t.index_offset != c->index_offset || t.frame_count != c->seq ||
	    t.image_size != c->frame_off + IMG_TRAILER_SIZE)
		return fail(c, err, c->frame_off, -EBADMSG,
			    "trailer does not match the frames (index offset, count or size)");
	/* 1.2: a pre-copy image's trailer points at its second META; other images' is zero. */
	if (t.meta_offset != c->meta_offset ||
	    ((c->flags & IMG_HEADER_F_REWRITES) && !t.meta_offset))
		return fail(c, err, c->frame_off, -EBADMSG,
			    "trailer does not point at the second META frame");
	if (EVP_DigestFinal_ex(c->sha, digest, &n) != 1 || n != IMG_DIGEST_SIZE ||
	    memcmp(digest, t.digest, IMG_DIGEST_SIZE))
		return fail(c, err, c->frame_off, -EBADMSG, "digest mismatch");
	c->state = CHECK_DONE;
	return 1;
}

/* buf holds need bytes of the structure at frame_off: act on it. */
static int end_struct(struct stream_check *c, struct img_error *err)
{
	c->have = 0;
	if (c->state == CHECK_HEADER)
		return end_header(c, err);
	if (c->need == IMG_TRAILER_SIZE)
		return end_trailer(c, err);
	return end_frame_header(c, err);
}

/* Collects header/frame/trailer bytes; returns bytes consumed or a negative errno. */
static ssize_t collect(struct stream_check *c, const uint8_t *p, size_t len, struct img_error *err)
{
	size_t n = c->need - c->have;
	int r;

	if (n > len)
		n = len;
	if (c->have == 0)
		c->frame_off = c->offset;
	memcpy(c->buf + c->have, p, n);
	c->have += n;
	/* After an INDEX frame, the trailer's magic switches to collecting 80 bytes. */
	if (c->state == CHECK_FRAME && c->in_index && c->have >= 8 && c->need != IMG_TRAILER_SIZE &&
	    !memcmp(c->buf, TRAILER_MAGIC, 8))
		c->need = IMG_TRAILER_SIZE;
	if (c->have < c->need)
		return n;
	r = end_struct(c, err);
	return r < 0 ? r : (ssize_t)n;
}

static size_t payload(struct stream_check *c, const uint8_t *p, size_t len, struct img_error *err,
		      int *r)
{
	size_t n = len < c->payload_left ? len : c->payload_left;

	c->crc = img_crc32c(c->crc, p, n);
	c->payload_left -= n;
	*r = 0;
	if (c->payload_left == 0) {
		if (c->crc != c->frame.payload_crc)
			*r =
			    fail(c, err, c->frame_off, -EBADMSG, "frame payload checksum mismatch");
		c->state = CHECK_FRAME;
		c->need = IMG_FRAME_HEADER_SIZE;
	}
	return n;
}

int stream_check_feed(struct stream_check *c, const uint8_t *buf, size_t len, struct img_error *err)
{
	int r = 0;

	while (len) {
		ssize_t n;

		if (c->state == CHECK_FAILED)
			return -EBADMSG;
		if (c->state == CHECK_DONE)
			return fail(c, err, c->offset, -EBADMSG, "bytes after the trailer");
		if (c->state == CHECK_PAYLOAD) {
			n = payload(c, buf, len, err, &r);
		} else {
			n = collect(c, buf, len, err);
			r = n < 0 ? (int)n : 0;
			if (c->state == CHECK_DONE)
				r = 1;
		}
		if (n < 0)
			return r;
		c->offset += n;
		buf += n;
		len -= n;
		if (r < 0)
			return r;
	}
	return c->state == CHECK_DONE ? 1 : 0;
}
