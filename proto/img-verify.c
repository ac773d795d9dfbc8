/* SPDX-License-Identifier: MIT */
/*
 * Front-to-back verification with read() only, so that it works on a stream as it arrives.
 * Beyond what the walker checks frame by frame, it checks the image as a whole: no page twice,
 * the index equal to the extents actually present, the trailer's counts and the digest.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "img-endian.h"
#include "img-walk.h"

struct entries {
	struct img_index_entry *v;
	size_t n, cap;
};

static int entries_add(struct entries *e, const struct img_index_entry *x)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 256;
		struct img_index_entry *v = realloc(e->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = *x;
	return 0;
}

struct verify {
	struct img_walker walk;
	struct entries seen;  /* extents found in the frames */
	struct entries index; /* entries found in the INDEX frames */
	struct img_summary *sum;
	char *meta;
};

static ssize_t fd_read(void *ctx, void *buf, size_t len)
{
	int fd = *(int *)ctx;

	for (;;) {
		ssize_t n = read(fd, buf, len);

		if (n >= 0 || errno != EINTR)
			return n < 0 ? -errno : n;
	}
}

static int check_json_object(struct verify *v, const struct img_frame *f, const char *what)
{
	json_t *j = json_loadb((const char *)v->walk.payload, f->payload_len, 0, NULL);
	int ok = json_is_object(j);

	json_decref(j);
	if (!ok)
		return img_fail(&v->sum->error, f->offset, -EBADMSG, "%s is not a JSON object",
				what);
	return 0;
}

static int take_meta(struct verify *v, const struct img_frame *f)
{
	int r = check_json_object(v, f, "metadata");

	if (r < 0)
		return r;
	v->meta = strndup((const char *)v->walk.payload, f->payload_len);
	return v->meta ? 0 : -ENOMEM;
}

static int take_index(struct verify *v, const struct img_frame *f)
{
	for (uint64_t i = 0; i < f->count; i++) {
		struct img_index_entry e;
		int r;

		img_index_entry_decode(v->walk.payload + i * IMG_INDEX_ENTRY_SIZE, &e);
		r = entries_add(&v->index, &e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int take_frame(struct verify *v, const struct img_frame *f)
{
	struct img_summary *s = v->sum;
	struct img_index_entry e = {f->addr, f->count, f->offset, f->type};

	s->frames++;
	switch (f->type) {
	case IMG_FRAME_META:
		return take_meta(v, f);
	case IMG_FRAME_PAGES:
		s->data_pages += f->count;
		return entries_add(&v->seen, &e);
	case IMG_FRAME_ZERO:
		s->zero_pages += f->count;
		return entries_add(&v->seen, &e);
	case IMG_FRAME_DISCARDED:
		s->discarded_pages += f->count;
		return entries_add(&v->seen, &e);
	case IMG_FRAME_PROGRESS:
		s->progress_marks++;
		if (!all_zero(v->walk.payload + 24, IMG_PROGRESS_SIZE - 24))
			return img_fail(&s->error, f->offset, -EBADMSG,
					"progress frame reserved bytes set");
		return 0;
	case IMG_FRAME_EVENT:
		s->events++;
		return check_json_object(v, f, "event");
	case IMG_FRAME_INDEX:
		return take_index(v, f);
	case IMG_FRAME_DEVSTATE:
		s->devstate_frames++;
		s->devstate_bytes += f->payload_len;
		return 0;
	default: /* an optional frame of a later minor version */
		return 0;
	}
}

static int check_overlap(struct verify *v)
{
	size_t i;

	img_index_sort(v->seen.v, v->seen.n);
	i = img_index_find_overlap(v->seen.v, v->seen.n, v->walk.header.page_size);
	if (i == v->seen.n)
		return 0;
	return img_fail(&v->sum->error, v->seen.v[i].offset, -EBADMSG,
			"page 0x%llx appears in two frames", (unsigned long long)v->seen.v[i].addr);
}

/* Field by field: the structs have padding, which memcmp would compare. */
static bool entries_equal(const struct entries *a, const struct entries *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct img_index_entry *x = &a->v[i], *y = &b->v[i];

		if (x->addr != y->addr || x->npages != y->npages || x->offset != y->offset ||
		    x->type != y->type)
			return false;
	}
	return true;
}

static int check_trailer(struct verify *v, int fd)
{
	const struct img_trailer *t = &v->walk.trailer;
	struct img_error *err = &v->sum->error;
	uint8_t digest[IMG_DIGEST_SIZE], extra;
	int r;

	if (!v->walk.in_index || t->index_offset != v->walk.index_offset)
		return img_fail(err, v->walk.offset, -EBADMSG,
				"trailer does not point at the index");
	if (t->frame_count != v->walk.seq || t->image_size != v->walk.offset + IMG_TRAILER_SIZE)
		return img_fail(err, v->walk.offset, -EBADMSG,
				"trailer counts do not match the image");
	r = img_digest_final(v->walk.digest, digest);
	if (r < 0)
		return r;
	if (memcmp(digest, t->digest, sizeof(digest)))
		return img_fail(err, v->walk.offset, -EBADMSG, "image digest mismatch");
	r = check_overlap(v);
	if (r < 0)
		return r;
	if (!entries_equal(&v->index, &v->seen))
		return img_fail(err, t->index_offset, -EBADMSG, "index does not match the frames");
	if (fd_read(&fd, &extra, 1) != 0)
		return img_fail(err, t->image_size, -EBADMSG, "data after the trailer");
	return 0;
}

/* Runs the walk to its end; returns the status, or -errno for an I/O error. */
static int verify_run(struct verify *v, int fd)
{
	struct img_error *err = &v->sum->error;
	struct img_frame f;
	int r;

	r = img_walk_start(&v->walk, fd_read, &fd, err);
	if (r == -ENODATA)
		return IMG_INCOMPLETE;
	if (r == -EBADMSG || r == -EPROTONOSUPPORT)
		return IMG_CORRUPT;
	if (r < 0)
		return r;
	v->sum->header = v->walk.header;
	while ((r = img_walk_next(&v->walk, &f, err)) == IMG_WALK_FRAME) {
		r = take_frame(v, &f);
		if (r < 0)
			break;
	}
	v->sum->valid_bytes = v->walk.offset;
	if (r == IMG_WALK_TRAILER) {
		r = check_trailer(v, fd);
		if (r >= 0) {
			v->sum->valid_bytes += IMG_TRAILER_SIZE;
			return IMG_COMPLETE;
		}
	} else if (r == IMG_WALK_END || r == IMG_WALK_TRUNCATED) {
		struct img_error keep = *err;

		r = check_overlap(v);
		if (r >= 0) {
			*err = keep;
			return IMG_INCOMPLETE;
		}
	}
	return r == -EBADMSG || r == -EPROTONOSUPPORT ? IMG_CORRUPT : r;
}

int img_verify_fd(int fd, struct img_summary *ret, char **ret_meta)
{
	struct verify v = {.sum = ret};
	int r;

	memset(ret, 0, sizeof(*ret));
	r = verify_run(&v, fd);
	img_walk_done(&v.walk);
	free(v.seen.v);
	free(v.index.v);
	if (r >= 0) {
		ret->status = r;
		if (r == IMG_COMPLETE)
			ret->error = (struct img_error){0};
		if (ret_meta) {
			*ret_meta = v.meta;
			v.meta = NULL;
		}
	}
	free(v.meta);
	return r < 0 ? r : 0;
}
