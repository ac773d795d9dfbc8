/* SPDX-License-Identifier: MIT */
/*
 * Pre-copy images (format 1.2, header flag REWRITES): pages written again by later rounds, the
 * later frame winning; UNMAPPED extents; the second META, the instant's. Written by the real
 * writer and checked page by page against a page map filled in write order: through the
 * verifier (effective counts, superseded pages) and the reader (every page, ranges across
 * extents); cut at every frame boundary, before and after the second META; four writer
 * threads racing over the same pages; and hand-built images breaking each rule.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "img-internal.h"
#include "img-test-util.h"

#define RW_PS	      4096u
#define RW_BASE	      0x7f0000000000ull
#define RW_WINDOW     64 /* pages the tests write in */
#define RW_ADDR(page) (RW_BASE + (uint64_t)(page)*RW_PS)

static const char rw_meta0[] =
    "{\"format\":\"uffsnap\",\"version\":1,\"time\":{\"iso8601\":\"start\"}}";
static const char rw_meta2[] =
    "{\"format\":\"uffsnap\",\"version\":1,\"time\":{\"iso8601\":\"instant\"}}";

/* One call to the writer; IMG_FRAME_META stands for img_writer_meta() (the second META). */
struct rw_op {
	uint16_t type;
	uint32_t first, npages; /* pages of the window */
	uint32_t round;		/* PAGES: whose content */
};

/* What the image says of a page: type 0 for "not in the image". */
struct rw_page {
	uint16_t type;
	uint32_t round;
};

static void rw_content(uint64_t seed, uint32_t round, uint64_t addr, void *buf, size_t len)
{
	imgtest_fill(seed ^ (round * 0x9e3779b97f4a7c15ull), addr, buf, len);
}

static int rw_write_op(struct img_writer *w, const struct rw_op *op, uint64_t seed)
{
	uint64_t addr = RW_ADDR(op->first);
	uint8_t *buf;
	int r;

	switch (op->type) {
	case IMG_FRAME_META:
		return img_writer_meta(w, rw_meta2, strlen(rw_meta2));
	case IMG_FRAME_ZERO:
		return img_writer_zero(w, addr, op->npages);
	case IMG_FRAME_DISCARDED:
		return img_writer_discarded(w, addr, op->npages);
	case IMG_FRAME_UNMAPPED:
		return img_writer_unmapped(w, addr, op->npages);
	}
	buf = malloc((size_t)op->npages * RW_PS);
	assert_non_null(buf);
	rw_content(seed, op->round, addr, buf, (size_t)op->npages * RW_PS);
	r = img_writer_pages(w, addr, op->npages, buf);
	free(buf);
	return r;
}

/* A pre-copy image of ops in a memfd; frame_pages 0: the writer's default split. */
static int rw_image(const struct rw_op *ops, size_t n, uint64_t seed, uint32_t frame_pages,
		    bool finish)
{
	struct img_writer_opts o = {
	    .page_size = RW_PS, .max_frame_pages = frame_pages, .flags = IMG_HEADER_F_REWRITES};
	struct img_writer *w;
	struct img_sink *s;
	int fd = imgtest_memfd(NULL, 0);

	assert_true(fd >= 0);
	assert_int_equal(img_sink_fd_new(fd, &s), 0);
	assert_int_equal(img_writer_new(&o, s, &w), 0);
	assert_int_equal(img_writer_begin(w, rw_meta0, strlen(rw_meta0)), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(rw_write_op(w, &ops[i], seed), 0);
	if (finish)
		assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	img_sink_free(s);
	return fd;
}

/* The page map after ops[0..n), in write order: the model. Returns the pages written. */
static uint64_t rw_model(const struct rw_op *ops, size_t n, struct rw_page m[RW_WINDOW])
{
	uint64_t written = 0;

	memset(m, 0, RW_WINDOW * sizeof(*m));
	for (size_t i = 0; i < n; i++) {
		if (ops[i].type == IMG_FRAME_META)
			continue;
		for (uint32_t p = ops[i].first; p < ops[i].first + ops[i].npages; p++)
			m[p] = (struct rw_page){ops[i].type, ops[i].round};
		written += ops[i].npages;
	}
	return written;
}

/* What reading [first, first + n) pages should give: 0 and the bytes, or the first error. */
static int rw_expect(const struct rw_page *m, uint64_t seed, uint32_t first, uint32_t n,
		     uint8_t *buf)
{
	for (uint32_t p = first; p < first + n; p++) {
		uint8_t *out = buf + (size_t)(p - first) * RW_PS;

		if (!m[p].type || m[p].type == IMG_FRAME_UNMAPPED)
			return -ENOENT;
		if (m[p].type == IMG_FRAME_DISCARDED)
			return -ESTALE;
		if (m[p].type == IMG_FRAME_ZERO)
			memset(out, 0, RW_PS);
		else
			rw_content(seed, m[p].round, RW_ADDR(p), out, RW_PS);
	}
	return 0;
}

static void rw_check_read(struct img_reader *r, const struct rw_page *m, uint64_t seed,
			  uint32_t first, uint32_t n)
{
	static uint8_t got[RW_WINDOW * RW_PS], want[RW_WINDOW * RW_PS];
	struct img_error err = {0};
	int k = img_reader_read(r, RW_ADDR(first), got, (size_t)n * RW_PS, &err);
	int e = rw_expect(m, seed, first, n, want);

	if (k != e)
		fail_msg("read of pages %u+%u: %d (%s), expected %d", first, n, k, err.msg, e);
	if (k == 0 && memcmp(got, want, (size_t)n * RW_PS))
		fail_msg("read of pages %u+%u: wrong bytes", first, n);
	if (k == -ENOENT && m[first].type == IMG_FRAME_UNMAPPED && n == 1 &&
	    !strstr(err.msg, "not mapped at the snapshot instant"))
		fail_msg("an unmapped page reads as: %s", err.msg);
}

/* The reader against the model: every page, every run of 1..8 pages, and the whole window. */
static void rw_check_reader(struct img_reader *r, const struct rw_page *m, uint64_t seed)
{
	const struct img_index_entry *idx;
	size_t n = img_reader_index(r, &idx), covered = 0;

	for (uint32_t p = 0; p < RW_WINDOW; p++)
		for (uint32_t len = 1; len <= 8 && p + len <= RW_WINDOW; len++)
			rw_check_read(r, m, seed, p, len);
	rw_check_read(r, m, seed, 0, RW_WINDOW);
	/* The index: sorted and disjoint, every page typed as the model says. */
	for (size_t i = 0; i < n; i++) {
		assert_true(i == 0 || idx[i - 1].addr + idx[i - 1].npages * RW_PS <= idx[i].addr);
		for (uint64_t p = 0; p < idx[i].npages; p++)
			assert_int_equal(m[(idx[i].addr - RW_BASE) / RW_PS + p].type, idx[i].type);
		covered += idx[i].npages;
	}
	for (uint32_t p = 0; p < RW_WINDOW; p++)
		covered -= m[p].type != 0;
	assert_int_equal(covered, 0);
}

static struct img_summary rw_verify(int fd, char **ret_meta)
{
	struct img_summary s;

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(img_verify_fd(fd, &s, ret_meta), 0);
	return s;
}

/* The verifier's counts: the model's effective pages, and what later frames covered. */
static void rw_check_summary(const struct img_summary *s, const struct rw_page *m, uint64_t written)
{
	uint64_t n[10] = {0};

	for (uint32_t p = 0; p < RW_WINDOW; p++)
		n[m[p].type]++;
	assert_int_equal(s->data_pages, n[IMG_FRAME_PAGES]);
	assert_int_equal(s->zero_pages, n[IMG_FRAME_ZERO]);
	assert_int_equal(s->discarded_pages, n[IMG_FRAME_DISCARDED]);
	assert_int_equal(s->unmapped_pages, n[IMG_FRAME_UNMAPPED]);
	assert_int_equal(s->superseded_pages, written - (RW_WINDOW - n[0]));
}

/* A complete image of ops: verifies, counts, metadata, index and every read as the model. */
static void rw_check_complete(const struct rw_op *ops, size_t n, uint64_t seed, uint32_t fp)
{
	struct rw_page m[RW_WINDOW];
	uint64_t written = rw_model(ops, n, m);
	int fd = rw_image(ops, n, seed, fp, true);
	struct img_summary s;
	struct img_reader *r;
	struct img_error err;
	char *meta = NULL;

	s = rw_verify(fd, &meta);
	if (s.status != IMG_COMPLETE)
		fail_msg("status %d: %s at %llu", s.status, s.error.msg,
			 (unsigned long long)s.error.offset);
	assert_int_equal(s.header.flags, IMG_HEADER_F_REWRITES);
	assert_int_equal(s.header.version_minor, 2);
	assert_int_equal(s.metas, 2);
	assert_string_equal(meta, rw_meta2);
	rw_check_summary(&s, m, written);
	assert_int_equal(img_reader_open(fd, &r, &err), 0);
	assert_true(img_reader_complete(r));
	assert_string_equal(img_reader_meta(r), rw_meta2);
	assert_int_equal(img_reader_flags(r), IMG_HEADER_F_REWRITES);
	rw_check_reader(r, m, seed);
	img_reader_free(r);
	free(meta);
	close(fd);
}

/* The overlaps a pre-copy snapshot makes, one of each, then the last round after the META. */
static const struct rw_op rw_patterns[] = {
    {IMG_FRAME_PAGES, 0, 8, 0}, /* round 0 copies everything ... */
    {IMG_FRAME_PAGES, 10, 4, 0},     {IMG_FRAME_ZERO, 20, 8, 0},
    {IMG_FRAME_PAGES, 30, 4, 0},     {IMG_FRAME_PAGES, 36, 4, 0},
    {IMG_FRAME_PAGES, 44, 6, 0},     {IMG_FRAME_PAGES, 3, 2, 1}, /* the middle of a frame */
    {IMG_FRAME_ZERO, 11, 2, 1},					 /* ZERO over PAGES */
    {IMG_FRAME_PAGES, 22, 2, 1},				 /* PAGES over ZERO */
    {IMG_FRAME_UNMAPPED, 30, 2, 0},				 /* UNMAPPED over PAGES */
    {IMG_FRAME_DISCARDED, 37, 1, 0},				 /* DISCARDED over PAGES */
    {IMG_FRAME_PAGES, 6, 6, 2},					 /* across two earlier frames */
    {IMG_FRAME_META, 0, 0, 0},	 /* frozen: the instant's metadata */
    {IMG_FRAME_PAGES, 44, 6, 3}, /* exactly over */
    {IMG_FRAME_PAGES, 4, 1, 3},	     {IMG_FRAME_UNMAPPED, 55, 3, 0}, /* over nothing */
    {IMG_FRAME_ZERO, 60, 2, 0},
};
#define RW_NPATTERNS (sizeof(rw_patterns) / sizeof(rw_patterns[0]))

static void test_rewrites_patterns(void **state)
{
	uint64_t seed = imgtest_seed("rewrites_patterns");

	(void)state;
	rw_check_complete(rw_patterns, RW_NPATTERNS, seed, 0);
	rw_check_complete(rw_patterns, RW_NPATTERNS, seed, 3); /* frames split by the writer */
	rw_check_complete(rw_patterns, RW_NPATTERNS, seed, 1);
}

/* Random rounds: ops of every type over the window, the META somewhere among them. */
static size_t rw_random_ops(struct imgtest_rng *rng, struct rw_op *ops, size_t max)
{
	static const uint16_t types[] = {IMG_FRAME_PAGES, IMG_FRAME_PAGES,     IMG_FRAME_PAGES,
					 IMG_FRAME_ZERO,  IMG_FRAME_DISCARDED, IMG_FRAME_UNMAPPED};
	size_t n = 1 + imgtest_below(rng, max - 1), meta = imgtest_below(rng, n);

	for (size_t i = 0; i < n; i++) {
		uint32_t first = (uint32_t)imgtest_below(rng, RW_WINDOW);
		uint32_t len = 1 + (uint32_t)imgtest_below(rng, imgtest_below(rng, 4) ? 6 : 40);

		if (first + len > RW_WINDOW)
			len = RW_WINDOW - first;
		ops[i] = (struct rw_op){types[imgtest_below(rng, 6)], first, len, (uint32_t)i};
		if (i == meta)
			ops[i] = (struct rw_op){IMG_FRAME_META, 0, 0, 0};
	}
	return n;
}

static void test_rewrites_random(void **state)
{
	uint64_t seed = imgtest_seed("rewrites_random");
	struct imgtest_rng rng = {seed};
	struct rw_op ops[48];

	(void)state;
	for (int i = 0; i < 40; i++) {
		size_t n = rw_random_ops(&rng, ops, 48);

		rw_check_complete(ops, n, seed + i, (uint32_t)imgtest_below(&rng, 5));
	}
}

/* The file offsets where each frame ends (META first), up to the index; returns the count. */
static size_t rw_frame_ends(int fd, uint64_t *ends, size_t max)
{
	uint8_t *p;
	size_t len, n = 0;
	uint64_t off = IMG_HEADER_SIZE;
	struct img_frame f;

	assert_int_equal(imgtest_slurp(fd, &p, &len), 0);
	while (n < max && off + IMG_FRAME_HEADER_SIZE <= len &&
	       img_frame_decode(p + off, &f, NULL) == 0 && f.type != IMG_FRAME_INDEX) {
		off += IMG_FRAME_HEADER_SIZE + f.payload_len;
		ends[n++] = off;
	}
	free(p);
	return n;
}

/* The image cut after frame k: frames 1..k are ops[0..k) (each op one frame). */
static void rw_check_cut(int fd, const struct rw_op *ops, size_t k, size_t meta_at, uint64_t seed,
			 uint64_t cut)
{
	struct rw_page m[RW_WINDOW];
	uint64_t written = rw_model(ops, k, m);
	struct img_summary s;
	struct img_reader *r = NULL;
	struct img_error err = {0};
	int rc;

	assert_int_equal(ftruncate(fd, (off_t)cut), 0);
	s = rw_verify(fd, NULL);
	if (s.status != IMG_INCOMPLETE)
		fail_msg("cut at %llu: status %d (%s)", (unsigned long long)cut, s.status,
			 s.error.msg);
	rc = img_reader_open(fd, &r, &err);
	if (k <= meta_at) { /* before the second META: no instant */
		assert_string_equal(s.error.msg, IMG_NO_INSTANT_MSG);
		assert_int_equal(rc, -ENODATA);
		assert_string_equal(err.msg, IMG_NO_INSTANT_MSG);
		return;
	}
	assert_int_equal(s.metas, 2);
	rw_check_summary(&s, m, written);
	if (rc != 0)
		fail_msg("cut at %llu: the reader refuses: %s", (unsigned long long)cut, err.msg);
	assert_false(img_reader_complete(r));
	assert_string_equal(img_reader_meta(r), rw_meta2);
	rw_check_reader(r, m, seed);
	img_reader_free(r);
}

/* Cut at every frame boundary, and one byte into the next frame, from the end backwards. */
static void test_rewrites_incomplete(void **state)
{
	uint64_t seed = imgtest_seed("rewrites_incomplete"), ends[64];
	size_t meta_at = 0, n;
	int fd = rw_image(rw_patterns, RW_NPATTERNS, seed, 0, true);
	uint8_t *whole;
	size_t len;

	(void)state;
	while (rw_patterns[meta_at].type != IMG_FRAME_META)
		meta_at++;
	assert_int_equal(imgtest_slurp(fd, &whole, &len), 0);
	n = rw_frame_ends(fd, ends, 64);
	assert_int_equal(n, RW_NPATTERNS + 1); /* META, then one frame per op */
	/* Cut inside the index or the trailer: all the frames are there. */
	rw_check_cut(fd, rw_patterns, RW_NPATTERNS, meta_at, seed, len - 1);
	rw_check_cut(fd, rw_patterns, RW_NPATTERNS, meta_at, seed, ends[n - 1] + 20);
	for (size_t i = n; i-- > 0;) {
		assert_int_equal(pwrite(fd, whole, len, 0), (ssize_t)len);
		rw_check_cut(fd, rw_patterns, i, meta_at, seed, ends[i] + 1);
		rw_check_cut(fd, rw_patterns, i, meta_at, seed, ends[i]);
	}
	free(whole);
	close(fd);
}

/* The writer's rules for the second META and UNMAPPED, and its counters. */
static void test_rewrites_writer_api(void **state)
{
	struct img_writer_opts o = {.page_size = RW_PS, .flags = IMG_HEADER_F_REWRITES};
	struct img_writer_opts plain = {.page_size = RW_PS}, bad = {.page_size = RW_PS};
	static uint8_t page[RW_PS];
	struct img_writer_stats st;
	struct img_writer *w;
	struct img_sink *s;
	int fd = imgtest_memfd(NULL, 0);

	(void)state;
	assert_int_equal(img_sink_fd_new(fd, &s), 0);
	for (int bit = 2; bit < 32; bit++) { /* unknown flags */
		bad.flags = 1u << bit;
		assert_int_equal(img_writer_new(&bad, s, &w), -EINVAL);
	}
	assert_int_equal(img_writer_new(&plain, s, &w), 0);
	assert_int_equal(img_writer_begin(w, rw_meta0, strlen(rw_meta0)), 0);
	assert_int_equal(img_writer_meta(w, rw_meta2, strlen(rw_meta2)), -EINVAL);
	assert_int_equal(img_writer_unmapped(w, RW_BASE, 1), -EINVAL);
	assert_int_equal(img_writer_pages(w, RW_BASE, 1, page), 0);
	assert_int_equal(img_writer_pages(w, RW_BASE, 1, page), 0);
	assert_int_equal(img_writer_finish(w), -ENOTUNIQ); /* as in 1.1 */
	img_writer_free(w);

	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(img_writer_new(&o, s, &w), 0);
	assert_int_equal(img_writer_meta(w, rw_meta2, strlen(rw_meta2)), -EINVAL); /* before */
	assert_int_equal(img_writer_begin(w, rw_meta0, strlen(rw_meta0)), 0);
	assert_int_equal(img_writer_pages(w, RW_BASE, 1, page), 0);
	assert_int_equal(img_writer_pages(w, RW_BASE, 1, page), 0);
	assert_int_equal(img_writer_unmapped(w, RW_BASE + RW_PS, 2), 0);
	assert_int_equal(img_writer_unmapped(w, RW_BASE + 1, 1), -EINVAL);
	assert_int_equal(img_writer_finish(w), -EINVAL); /* no instant yet: nothing written */
	assert_int_equal(img_writer_meta(w, rw_meta2, 0), -EINVAL);
	assert_int_equal(img_writer_meta(w, rw_meta2, strlen(rw_meta2)), 0);
	assert_int_equal(img_writer_meta(w, rw_meta2, strlen(rw_meta2)), -EINVAL); /* twice */
	assert_int_equal(img_writer_devstate(w, page, 16), -EINVAL);
	assert_int_equal(img_writer_zero(w, RW_BASE + RW_PS, 1), 0);
	assert_int_equal(img_writer_finish(w), 0);
	assert_int_equal(img_writer_meta(w, rw_meta2, strlen(rw_meta2)), -EINVAL); /* after */
	img_writer_get_stats(w, &st);
	assert_int_equal(st.data_pages, 2);
	assert_int_equal(st.zero_pages, 1);
	assert_int_equal(st.unmapped_pages, 2);
	assert_int_equal(st.superseded_pages, 2); /* a data page, an unmapped one */
	img_writer_free(w);
	img_sink_free(s);
	assert_int_equal(rw_verify(fd, NULL).status, IMG_COMPLETE);
	close(fd);
}

/*
 * Four threads write overlapping pages; each page's first 8 bytes name the write. The page map
 * is built from the frames in file order (seq order): later wins means that order.
 */
#define RW_THREADS 4
#define RW_WRITES  60

struct rw_thread {
	struct img_writer *w;
	uint64_t seed;
	int id;
};

static void *rw_thread_main(void *arg)
{
	struct rw_thread *t = arg;
	struct imgtest_rng rng = {t->seed + (uint64_t)t->id};
	static __thread uint8_t buf[8 * RW_PS];

	for (int i = 0; i < RW_WRITES; i++) {
		uint32_t first = (uint32_t)imgtest_below(&rng, RW_WINDOW - 8);
		uint32_t n = 1 + (uint32_t)imgtest_below(&rng, 8);
		uint64_t tag = (uint64_t)t->id << 32 | (uint64_t)i;

		for (uint32_t p = 0; p < n; p++) {
			memset(buf + p * RW_PS, (int)(tag * 31 + p), RW_PS);
			memcpy(buf + p * RW_PS, &tag, sizeof(tag));
		}
		if (img_writer_pages(t->w, RW_ADDR(first), n, buf) < 0)
			return (void *)1;
	}
	return NULL;
}

/* The tag of each page's last PAGES frame in file order. */
static void rw_tags_from_file(int fd, uint64_t tags[RW_WINDOW])
{
	uint8_t *p;
	size_t len;
	uint64_t off = IMG_HEADER_SIZE;
	struct img_frame f;

	memset(tags, 0xff, RW_WINDOW * sizeof(*tags));
	assert_int_equal(imgtest_slurp(fd, &p, &len), 0);
	while (off + IMG_FRAME_HEADER_SIZE <= len && img_frame_decode(p + off, &f, NULL) == 0 &&
	       f.type != IMG_FRAME_INDEX) {
		for (uint64_t i = 0; f.type == IMG_FRAME_PAGES && i < f.count; i++)
			memcpy(&tags[(f.addr - RW_BASE) / RW_PS + i],
			       p + off + IMG_FRAME_HEADER_SIZE + i * RW_PS, sizeof(uint64_t));
		off += IMG_FRAME_HEADER_SIZE + f.payload_len;
	}
	free(p);
}

/* One image; with pieces, both METAs go through the iovec calls, cut where given. */
static void meta_pieces_image(bool pieces, uint8_t **ret, size_t *ret_len)
{
	struct img_writer_opts o = {.page_size = RW_PS, .flags = IMG_HEADER_F_REWRITES};
	struct iovec m0[3] = {{(void *)rw_meta0, 5}, {(void *)(rw_meta0 + 5), 0},
			      {(void *)(rw_meta0 + 5), strlen(rw_meta0) - 5}};
	struct iovec m2[4] = {{(void *)rw_meta2, 1}, {(void *)(rw_meta2 + 1), 10},
			      {(void *)(rw_meta2 + 11), strlen(rw_meta2) - 12},
			      {(void *)(rw_meta2 + strlen(rw_meta2) - 1), 1}};
	static uint8_t page[RW_PS];
	struct img_writer *w;
	struct img_sink *s;
	int fd = imgtest_memfd(NULL, 0);

	assert_int_equal(img_sink_fd_new(fd, &s), 0);
	assert_int_equal(img_writer_new(&o, s, &w), 0);
	assert_int_equal(pieces ? img_writer_beginv(w, m0, 3)
				: img_writer_begin(w, rw_meta0, strlen(rw_meta0)),
			 0);
	assert_int_equal(img_writer_pages(w, RW_BASE, 1, page), 0);
	assert_int_equal(pieces ? img_writer_metav(w, m2, 4)
				: img_writer_meta(w, rw_meta2, strlen(rw_meta2)),
			 0);
	assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	img_sink_free(s);
	assert_int_equal(imgtest_slurp(fd, ret, ret_len), 0);
	close(fd);
}

/* A META given in pieces is the same image, byte for byte, as given whole. */
static void test_rewrites_meta_pieces(void **state)
{
	struct img_writer_opts o = {.page_size = RW_PS, .flags = IMG_HEADER_F_REWRITES};
	struct iovec none = {(void *)rw_meta0, 0}, many[IMG_META_PIECES_MAX + 1];
	uint8_t *whole, *pieces;
	size_t wlen, plen;
	struct img_writer *w;
	struct img_sink *s;
	int fd = imgtest_memfd(NULL, 0);

	(void)state;
	meta_pieces_image(false, &whole, &wlen);
	meta_pieces_image(true, &pieces, &plen);
	assert_int_equal(wlen, plen);
	assert_memory_equal(whole, pieces, wlen);
	free(whole);
	free(pieces);
	for (int i = 0; i <= IMG_META_PIECES_MAX; i++)
		many[i] = (struct iovec){(void *)rw_meta0, 1};
	assert_int_equal(img_sink_fd_new(fd, &s), 0);
	assert_int_equal(img_writer_new(&o, s, &w), 0);
	assert_int_equal(img_writer_beginv(w, &none, 1), -EINVAL); /* empty */
	assert_int_equal(img_writer_beginv(w, many, 0), -EINVAL);
	assert_int_equal(img_writer_beginv(w, many, IMG_META_PIECES_MAX + 1), -EINVAL);
	assert_int_equal(img_writer_beginv(w, many, IMG_META_PIECES_MAX), 0);
	assert_int_equal(img_writer_metav(w, many, IMG_META_PIECES_MAX + 1), -EINVAL);
	assert_int_equal(img_writer_metav(w, &none, 1), -EINVAL);
	img_writer_free(w);
	img_sink_free(s);
	close(fd);
}

static void test_rewrites_threads(void **state)
{
	struct img_writer_opts o = {.page_size = RW_PS, .flags = IMG_HEADER_F_REWRITES};
	uint64_t seed = imgtest_seed("rewrites_threads"), tags[RW_WINDOW], got;
	struct rw_thread t[RW_THREADS];
	pthread_t tid[RW_THREADS];
	struct img_reader *r;
	struct img_error err;
	struct img_writer *w;
	struct img_sink *s;
	int fd = imgtest_memfd(NULL, 0);
	void *ret;

	(void)state;
	assert_int_equal(img_sink_fd_new(fd, &s), 0);
	assert_int_equal(img_writer_new(&o, s, &w), 0);
	assert_int_equal(img_writer_begin(w, rw_meta0, strlen(rw_meta0)), 0);
	for (int i = 0; i < RW_THREADS; i++) {
		t[i] = (struct rw_thread){w, seed, i};
		assert_int_equal(pthread_create(&tid[i], NULL, rw_thread_main, &t[i]), 0);
	}
	for (int i = 0; i < RW_THREADS; i++) {
		assert_int_equal(pthread_join(tid[i], &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(img_writer_meta(w, rw_meta2, strlen(rw_meta2)), 0);
	assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	img_sink_free(s);
	assert_int_equal(rw_verify(fd, NULL).status, IMG_COMPLETE);
	rw_tags_from_file(fd, tags);
	assert_int_equal(img_reader_open(fd, &r, &err), 0);
	for (uint32_t p = 0; p < RW_WINDOW; p++) {
		int k = img_reader_read(r, RW_ADDR(p), &got, sizeof(got), &err);

		assert_int_equal(k, tags[p] == UINT64_MAX ? -ENOENT : 0);
		if (k == 0 && got != tags[p])
			fail_msg("page %u: write %llx, the last in seq order is %llx", p,
				 (unsigned long long)got, (unsigned long long)tags[p]);
	}
	img_reader_free(r);
	close(fd);
}

/* --- hand-built images, each breaking one rule ----------------------------------------------- */

static void rw_bad_check(int fd, const char *verify_msg, int open_rc, const char *open_msg)
{
	struct img_summary s = rw_verify(fd, NULL);
	struct img_reader *r = NULL;
	struct img_error err = {0};
	int k;

	if (s.status != IMG_CORRUPT || !strstr(s.error.msg, verify_msg))
		fail_msg("expected CORRUPT, '%s': status %d, '%s'", verify_msg, s.status,
			 s.error.msg);
	k = img_reader_open(fd, &r, &err);
	if (k != open_rc || (open_msg && !strstr(err.msg, open_msg)))
		fail_msg("reader: %d '%s', expected %d '%s'", k, err.msg, open_rc,
			 open_msg ? open_msg : "");
	img_reader_free(r);
	close(fd);
}

/* META, PAGES [0,4) and a PAGES [1,2) over it, a META at seq 3: a pre-copy image's frames. */
static void rw_bad_frames(struct imgtest_raw *r, uint32_t flags, uint64_t off[4])
{
	imgtest_raw_begin(r, RW_PS, flags);
	off[0] = imgtest_raw_frame(r, IMG_FRAME_META, 0, 0, 0, rw_meta0, strlen(rw_meta0));
	off[1] = imgtest_raw_frame(r, IMG_FRAME_PAGES, 0, RW_ADDR(0), 4, NULL, 0);
	off[2] = imgtest_raw_frame(r, IMG_FRAME_PAGES, 0, RW_ADDR(1), 1, NULL, 0);
	off[3] = imgtest_raw_frame(r, IMG_FRAME_META, 0, 0, 0, rw_meta2, strlen(rw_meta2));
}

/* The resolved index of rw_bad_frames(). */
static void rw_bad_index(struct imgtest_raw *r, const uint64_t off[4])
{
	const struct img_index_entry e[] = {{RW_ADDR(0), 1, off[1], IMG_FRAME_PAGES},
					    {RW_ADDR(1), 1, off[2], IMG_FRAME_PAGES},
					    {RW_ADDR(2), 2, off[1], IMG_FRAME_PAGES}};

	imgtest_raw_index(r, e, 3);
}

static void test_rewrites_bad_meta(void **state)
{
	struct imgtest_raw r;
	uint64_t off[4];

	(void)state;
	/* The well-formed one, to be sure the others fail for their own reason. */
	rw_bad_frames(&r, IMG_HEADER_F_REWRITES, off);
	rw_bad_index(&r, off);
	assert_int_equal(rw_verify(imgtest_raw_finish(&r, off[3]), NULL).status, IMG_COMPLETE);

	/* A second META without the flag (the index as it would be: the frames overlap too). */
	imgtest_raw_begin(&r, RW_PS, 0);
	imgtest_raw_frame(&r, IMG_FRAME_META, 0, 0, 0, rw_meta0, strlen(rw_meta0));
	off[1] = imgtest_raw_frame(&r, IMG_FRAME_ZERO, 0, RW_ADDR(0), 1, NULL, 0);
	imgtest_raw_frame(&r, IMG_FRAME_META, 0, 0, 0, rw_meta2, strlen(rw_meta2));
	imgtest_raw_index(&r, &(struct img_index_entry){RW_ADDR(0), 1, off[1], IMG_FRAME_ZERO}, 1);
	rw_bad_check(imgtest_raw_finish(&r, 0), "only a pre-copy image has one", 0, NULL);

	/* A third META. */
	rw_bad_frames(&r, IMG_HEADER_F_REWRITES, off);
	imgtest_raw_frame(&r, IMG_FRAME_META, 0, 0, 0, rw_meta2, strlen(rw_meta2));
	rw_bad_index(&r, off);
	rw_bad_check(imgtest_raw_finish(&r, off[3]), "a third meta frame", 0, NULL);

	/* A complete pre-copy image without its second META. */
	imgtest_raw_begin(&r, RW_PS, IMG_HEADER_F_REWRITES);
	imgtest_raw_frame(&r, IMG_FRAME_META, 0, 0, 0, rw_meta0, strlen(rw_meta0));
	off[1] = imgtest_raw_frame(&r, IMG_FRAME_ZERO, 0, RW_ADDR(0), 1, NULL, 0);
	imgtest_raw_index(&r, &(struct img_index_entry){RW_ADDR(0), 1, off[1], IMG_FRAME_ZERO}, 1);
	rw_bad_check(imgtest_raw_finish(&r, 0), "without the meta frame of its instant", -EBADMSG,
		     "does not point at the second meta");

	/* DEVSTATE frames never follow the second META, even right after the first. */
	imgtest_raw_begin(&r, RW_PS, IMG_HEADER_F_REWRITES);
	imgtest_raw_frame(&r, IMG_FRAME_META, 0, 0, 0, rw_meta0, strlen(rw_meta0));
	imgtest_raw_frame(&r, IMG_FRAME_META, 0, 0, 0, rw_meta2, strlen(rw_meta2));
	imgtest_raw_frame(&r, IMG_FRAME_DEVSTATE, IMG_FRAME_F_OPTIONAL, 0, 0, "QEVM", 4);
	imgtest_raw_index(&r, NULL, 0);
	rw_bad_check(imgtest_raw_finish(&r, 112 + strlen(rw_meta0)),
		     "devstate frame after a second meta frame", 0, NULL);
}

static void test_rewrites_bad_trailer(void **state)
{
	struct imgtest_raw r;
	uint64_t off[4];

	(void)state;
	/* meta_offset at the first META, at a PAGES frame, nowhere, past the index. */
	const uint64_t wrong[] = {IMG_HEADER_SIZE, 1, 0, 3};
	const char *const open_msg[] = {
	    "does not point at the second meta", "expected a meta frame",
	    "does not point at the second meta", "does not point at the second meta"};

	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		uint64_t mo;

		rw_bad_frames(&r, IMG_HEADER_F_REWRITES, off);
		rw_bad_index(&r, off);
		mo = wrong[i] == 1 ? off[1] : wrong[i] == 3 ? r.index_offset + 8 : wrong[i];
		rw_bad_check(imgtest_raw_finish(&r, mo), "trailer does not point at the second",
			     -EBADMSG, open_msg[i]);
	}
	/* meta_offset in an image without the flag: its bytes are reserved there. */
	imgtest_raw_begin(&r, RW_PS, 0);
	imgtest_raw_frame(&r, IMG_FRAME_META, 0, 0, 0, rw_meta0, strlen(rw_meta0));
	imgtest_raw_index(&r, NULL, 0);
	rw_bad_check(imgtest_raw_finish(&r, IMG_HEADER_SIZE), "trailer reserved bytes set",
		     -EBADMSG, "trailer reserved bytes set");
}

static void test_rewrites_bad_index(void **state)
{
	struct imgtest_raw r;
	uint64_t off[4];
	struct img_reader *rd;
	struct img_error err;
	uint8_t page[RW_PS];
	int fd;

	(void)state;
	/* The frames as written, not resolved: they overlap. */
	rw_bad_frames(&r, IMG_HEADER_F_REWRITES, off);
	imgtest_raw_index(
	    &r,
	    (const struct img_index_entry[]){{RW_ADDR(0), 4, off[1], IMG_FRAME_PAGES},
					     {RW_ADDR(1), 1, off[2], IMG_FRAME_PAGES}},
	    2);
	rw_bad_check(imgtest_raw_finish(&r, off[3]), "index does not match the frames", -EBADMSG,
		     "index lists a page twice");

	/* Resolved, but the earlier frame wins: the reader cannot tell, the verifier can. */
	rw_bad_frames(&r, IMG_HEADER_F_REWRITES, off);
	imgtest_raw_index(&r, &(struct img_index_entry){RW_ADDR(0), 4, off[1], IMG_FRAME_PAGES}, 1);
	rw_bad_check(imgtest_raw_finish(&r, off[3]), "index does not match the frames", 0, NULL);

	/* An entry reaching past its frame: the reader refuses the read. */
	rw_bad_frames(&r, IMG_HEADER_F_REWRITES, off);
	imgtest_raw_index(
	    &r,
	    (const struct img_index_entry[]){{RW_ADDR(0), 1, off[1], IMG_FRAME_PAGES},
					     {RW_ADDR(1), 3, off[2], IMG_FRAME_PAGES}},
	    2);
	fd = imgtest_raw_finish(&r, off[3]);
	assert_int_equal(img_reader_open(fd, &rd, &err), 0);
	assert_int_equal(img_reader_read(rd, RW_ADDR(2), page, RW_PS, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "index does not match the frame"));
	img_reader_free(rd);
	rw_bad_check(fd, "index does not match the frames", 0, NULL);

	/* UNMAPPED in an image that is neither pre-copy nor incremental. */
	imgtest_raw_begin(&r, RW_PS, 0);
	imgtest_raw_frame(&r, IMG_FRAME_META, 0, 0, 0, rw_meta0, strlen(rw_meta0));
	off[1] = imgtest_raw_frame(&r, IMG_FRAME_UNMAPPED, 0, RW_ADDR(0), 1, NULL, 0);
	imgtest_raw_index(&r, &(struct img_index_entry){RW_ADDR(0), 1, off[1], IMG_FRAME_UNMAPPED},
			  1);
	rw_bad_check(imgtest_raw_finish(&r, 0), "neither pre-copy nor incremental", -EBADMSG,
		     "index entry 0 is invalid");

	/* UNMAPPED with the OPTIONAL flag (a reader must never skip it). */
	imgtest_raw_begin(&r, RW_PS, IMG_HEADER_F_REWRITES);
	imgtest_raw_frame(&r, IMG_FRAME_META, 0, 0, 0, rw_meta0, strlen(rw_meta0));
	imgtest_raw_frame(&r, IMG_FRAME_UNMAPPED, IMG_FRAME_F_OPTIONAL, RW_ADDR(0), 1, NULL, 0);
	rw_bad_check(imgtest_raw_cut(&r), "unmapped frame with flags", -ENODATA, NULL);
}

/* A header flag this reader does not know: refused, by both, saying why. */
static void test_rewrites_unknown_flag(void **state)
{
	struct imgtest_raw r;

	(void)state;
	for (int bit = 2; bit < 32; bit += 5) {
		imgtest_raw_begin(&r, RW_PS, IMG_HEADER_F_REWRITES | 1u << bit);
		imgtest_raw_frame(&r, IMG_FRAME_META, 0, 0, 0, rw_meta0, strlen(rw_meta0));
		imgtest_raw_index(&r, NULL, 0);
		rw_bad_check(imgtest_raw_finish(&r, 0), "this reader does not know",
			     -EPROTONOSUPPORT, "written by a newer uffsnap?");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rewrites_patterns),
	    cmocka_unit_test(test_rewrites_random),
	    cmocka_unit_test(test_rewrites_incomplete),
	    cmocka_unit_test(test_rewrites_writer_api),
	    cmocka_unit_test(test_rewrites_meta_pieces),
	    cmocka_unit_test(test_rewrites_threads),
	    cmocka_unit_test(test_rewrites_bad_meta),
	    cmocka_unit_test(test_rewrites_bad_trailer),
	    cmocka_unit_test(test_rewrites_bad_index),
	    cmocka_unit_test(test_rewrites_unknown_flag),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
