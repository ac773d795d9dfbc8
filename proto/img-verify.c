/* SPDX-License-Identifier: MIT */
/*
 * Front-to-back verification with read() only, so that it works on a stream as it arrives.
 * Beyond what the walker checks frame by frame, it checks the image as a whole: no page twice
 * (in a pre-copy image: the extents resolved, later wins), the index equal to the effective
 * extents, the trailer's counts, its pointer to a pre-copy image's second META, and the digest.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
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
	struct entries seen;  /* extents found in the frames, in seq order */
	struct entries index; /* entries found in the INDEX frames */
	/* The effective extents, once settled: seen sorted, or resolved (pre-copy) */
	const struct img_index_entry *eff;
	size_t neff;
	struct img_index_entry *resolved; /* what eff points to in a pre-copy image */
	bool settled;
	struct img_summary *sum;
	char *meta; /* the last META frame's text */
};

static bool rewrites(const struct verify *v)
{
	return v->walk.header.flags & IMG_HEADER_F_REWRITES;
}

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
	free(v->meta); /* a pre-copy image's second META replaces the first */
	v->meta = strndup((const char *)v->walk.payload, f->payload_len);
	v->sum->metas++;
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
	case IMG_FRAME_ZERO:
	case IMG_FRAME_DISCARDED:
	case IMG_FRAME_UNMAPPED: /* counted once settled: a later frame may cover them */
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

/* Adds the pages of the effective extents to the summary's counts, by type. */
static void count_pages(struct verify *v)
{
	struct img_summary *s = v->sum;

	for (size_t i = 0; i < v->neff; i++) {
		const struct img_index_entry *e = &v->eff[i];
		uint64_t *n = e->type == IMG_FRAME_PAGES       ? &s->data_pages
			      : e->type == IMG_FRAME_ZERO      ? &s->zero_pages
			      : e->type == IMG_FRAME_DISCARDED ? &s->discarded_pages
							       : &s->unmapped_pages;

		*n += e->npages;
	}
	s->superseded_pages =
	    img_index_pages(v->seen.v, v->seen.n) - img_index_pages(v->eff, v->neff);
}

/*
 * The effective extents of the frames seen: a pre-copy image's resolved (later wins), any
 * other's sorted (overlaps are for check_overlap() to find). Then the page counts.
 */
static int settle(struct verify *v)
{
	int r;

	if (v->settled)
		return 0;
	if (rewrites(v)) {
		r = img_resolve(v->seen.v, v->seen.n, v->walk.header.page_size, &v->resolved,
				&v->neff);
		if (r < 0)
			return r;
		v->eff = v->resolved;
	} else {
		img_index_sort(v->seen.v, v->seen.n);
		v->eff = v->seen.v;
		v->neff = v->seen.n;
	}
	count_pages(v);
	v->settled = true;
	return 0;
}

/* Outside a pre-copy image, no page is in two frames. */
static int check_overlap(struct verify *v)
{
	int r = settle(v);
	size_t i;

	if (r < 0 || rewrites(v))
		return r;
	i = img_index_find_overlap(v->seen.v, v->seen.n, v->walk.header.page_size);
	if (i == v->seen.n)
		return 0;
	return img_fail(&v->sum->error, v->seen.v[i].offset, -EBADMSG,
			"page 0x%llx appears in two frames", (unsigned long long)v->seen.v[i].addr);
}

/* A pre-copy image's trailer points at its second META; any other's meta_offset is zero. */
static int check_meta_offset(struct verify *v)
{
	const struct img_trailer *t = &v->walk.trailer;
	struct img_error *err = &v->sum->error;

	if (!rewrites(v))
		return t->meta_offset
			   ? img_fail(err, v->walk.offset, -EBADMSG, "trailer reserved bytes set")
			   : 0;
	if (!v->walk.meta_offset)
		return img_fail(err, v->walk.offset, -EBADMSG,
				"a pre-copy image without the meta frame of its instant");
	if (t->meta_offset != v->walk.meta_offset)
		return img_fail(err, v->walk.offset, -EBADMSG,
				"trailer does not point at the second meta frame");
	return 0;
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
	r = check_meta_offset(v);
	if (r >= 0)
		r = check_overlap(v);
	if (r < 0)
		return r;
	if (!img_index_equal(v->index.v, v->index.n, v->eff, v->neff))
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
	int r, k;

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
	/* The page counts, whatever the outcome: info shows what a damaged image holds. */
	k = settle(v);
	if (k < 0)
		return k;
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
			if (rewrites(v) && !v->walk.meta_offset)
				snprintf(err->msg, sizeof(err->msg), "%s", IMG_NO_INSTANT_MSG);
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
	free(v.resolved);
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
