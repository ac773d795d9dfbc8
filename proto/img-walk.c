/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "img-walk.h"

static ssize_t read_full(struct img_walker *w, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = w->read(w->ctx, (char *)buf + done, len - done);

		if (n < 0)
			return n;
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

int img_walk_start(struct img_walker *w, img_read_fn read, void *ctx, struct img_error *err)
{
	uint8_t hdr[IMG_HEADER_SIZE];
	ssize_t n;
	int r;

	memset(w, 0, sizeof(*w));
	w->read = read;
	w->ctx = ctx;
	n = read_full(w, hdr, sizeof(hdr));
	if (n < 0)
		return n;
	/* Short input is incomplete only if what is there is the start of a real header. */
	if (n < (ssize_t)sizeof(hdr) && memcmp(hdr, IMG_MAGIC, n < IMG_MAGIC_LEN ? n : IMG_MAGIC_LEN))
		return img_fail(err, 0, -EBADMSG, "not a uffsnap image (bad magic)");
	if (n < (ssize_t)sizeof(hdr))
		return img_fail(err, n, -ENODATA,
				n ? "file too short for an image header (%zd bytes)" : "empty file",
				n);
	r = img_header_decode(hdr, &w->header, err);
	if (r < 0)
		return r;
	r = img_digest_new(&w->digest);
	if (r < 0)
		return r;
	w->offset = IMG_HEADER_SIZE;
	return img_digest_update(w->digest, hdr, sizeof(hdr));
}

void img_walk_done(struct img_walker *w)
{
	free(w->payload);
	img_digest_free(w->digest);
	w->payload = NULL;
	w->digest = NULL;
}

static int read_trailer(struct img_walker *w, const uint8_t *first, struct img_error *err)
{
	uint8_t buf[IMG_TRAILER_SIZE];
	ssize_t n;
	int r;

	memcpy(buf, first, IMG_FRAME_HEADER_SIZE);
	n = read_full(w, buf + IMG_FRAME_HEADER_SIZE, IMG_TRAILER_SIZE - IMG_FRAME_HEADER_SIZE);
	if (n < 0)
		return n;
	if (n < IMG_TRAILER_SIZE - IMG_FRAME_HEADER_SIZE)
		return img_fail(err, w->offset, IMG_WALK_TRUNCATED,
				"image ends inside its trailer");
	r = img_trailer_decode(buf, &w->trailer, NULL);
	if (r < 0)
		return img_fail(err, w->offset, -EBADMSG, "trailer checksum mismatch");
	return IMG_WALK_TRAILER;
}

/* META first; a second one only in a pre-copy image, once (FORMAT.md "Pre-copy images"). */
static int check_meta(struct img_walker *w, const struct img_frame *f, struct img_error *err)
{
	if (w->seq == 0 && f->type != IMG_FRAME_META)
		return img_fail(err, w->offset, -EBADMSG, "the first frame is not the meta frame");
	if (w->seq == 0 || f->type != IMG_FRAME_META)
		return 0;
	if (!(w->header.flags & IMG_HEADER_F_REWRITES))
		return img_fail(err, w->offset, -EBADMSG,
				"a second meta frame (only a pre-copy image has one)");
	if (w->metas > 1)
		return img_fail(err, w->offset, -EBADMSG, "a third meta frame");
	return 0;
}

/*
 * The order rules: META first, DEVSTATE frames right after it (not after a second META),
 * UNMAPPED only where the header allows it, INDEX last.
 */
static int check_order(struct img_walker *w, const struct img_frame *f, struct img_error *err)
{
	int r;

	if (f->seq != w->seq)
		return img_fail(err, w->offset, -EBADMSG,
				"frame sequence %llu where %llu was expected",
				(unsigned long long)f->seq, (unsigned long long)w->seq);
	r = check_meta(w, f, err);
	if (r < 0)
		return r;
	if (f->type == IMG_FRAME_DEVSTATE &&
	    (w->metas != 1 ||
	     (w->last_type != IMG_FRAME_META && w->last_type != IMG_FRAME_DEVSTATE)))
		return img_fail(err, w->offset, -EBADMSG, "devstate frame after a %s frame",
				w->metas > 1 ? "second meta" : img_frame_type_name(w->last_type));
	if (f->type == IMG_FRAME_UNMAPPED && !img_extent_allowed(f->type, w->header.flags))
		return img_fail(err, w->offset, -EBADMSG,
				"an unmapped frame in an image that is neither pre-copy nor "
				"incremental");
	if (w->in_index && f->type != IMG_FRAME_INDEX)
		return img_fail(err, w->offset, -EBADMSG, "%s frame after the index",
				img_frame_type_name(f->type));
	return 0;
}

static int read_payload(struct img_walker *w, const struct img_frame *f, struct img_error *err)
{
	ssize_t n;

	if (f->payload_len > w->payload_cap) {
		uint8_t *p = realloc(w->payload, f->payload_len);

		if (!p)
			return -ENOMEM;
		w->payload = p;
		w->payload_cap = f->payload_len;
	}
	n = read_full(w, w->payload, f->payload_len);
	if (n < 0)
		return n;
	if (n < f->payload_len)
		return img_fail(err, w->offset, IMG_WALK_TRUNCATED,
				"image ends inside a frame (%s)", img_frame_type_name(f->type));
	if (img_crc32c(0, w->payload, f->payload_len) != f->payload_crc)
		return img_fail(err, w->offset, -EBADMSG, "%s frame payload checksum mismatch",
				img_frame_type_name(f->type));
	return 0;
}

int img_walk_next(struct img_walker *w, struct img_frame *ret_frame, struct img_error *err)
{
	uint8_t hdr[IMG_FRAME_HEADER_SIZE];
	struct img_frame f;
	ssize_t n;
	int r;

	n = read_full(w, hdr, sizeof(hdr));
	if (n < 0)
		return n;
	if (n == 0)
		return img_fail(err, w->offset, IMG_WALK_END,
				"image ends after %llu frames without a trailer",
				(unsigned long long)w->seq);
	if (n >= IMG_MAGIC_LEN && !memcmp(hdr, IMG_TRAILER_MAGIC, IMG_MAGIC_LEN) && w->seq)
		return n < (ssize_t)sizeof(hdr) ? img_fail(err, w->offset, IMG_WALK_TRUNCATED,
							   "image ends inside its trailer")
						: read_trailer(w, hdr, err);
	if (n < (ssize_t)sizeof(hdr) && memcmp(hdr, IMG_FRAME_MAGIC, n < 4 ? n : 4) &&
	    memcmp(hdr, IMG_TRAILER_MAGIC, n < IMG_MAGIC_LEN ? n : IMG_MAGIC_LEN))
		return img_fail(err, w->offset, -EBADMSG, "bad frame magic");
	if (n < (ssize_t)sizeof(hdr))
		return img_fail(err, w->offset, IMG_WALK_TRUNCATED,
				"image ends inside a frame header");
	r = img_frame_decode(hdr, &f, err);
	if (r >= 0)
		r = img_frame_check(&f, w->header.page_size, err);
	if (r < 0) {
		if (err)
			err->offset = w->offset;
		return r;
	}
	r = check_order(w, &f, err);
	if (r < 0)
		return r;
	r = read_payload(w, &f, err);
	if (r != 0)
		return r;
	r = img_digest_update(w->digest, hdr, sizeof(hdr));
	if (r < 0)
		return r;
	f.offset = w->offset;
	if (f.type == IMG_FRAME_INDEX && !w->in_index) {
		w->in_index = true;
		w->index_offset = w->offset;
	}
	if (f.type == IMG_FRAME_META && w->metas++)
		w->meta_offset = w->offset;
	w->offset += sizeof(hdr) + f.payload_len;
	w->seq++;
	w->last_type = f.type;
	*ret_frame = f;
	return IMG_WALK_FRAME;
}
