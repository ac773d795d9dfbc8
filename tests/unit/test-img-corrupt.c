/* SPDX-License-Identifier: MIT */
/*
 * Damage a small valid image in every way one byte can be damaged -- each byte xor 0xff, each
 * bit flipped, the file cut at every length -- and check that verification never says COMPLETE,
 * that a cut image is INCOMPLETE and readable up to the cut, and that the random-access reader
 * never crashes and never returns bytes other than the ones written.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "img-test-util.h"

#define CR_SEED 0xc0ffee

/* Written out of address order; sorted copy below for the expectations. */
static const struct imgtest_extent cr_written[] = {
    {0x4000, 2, IMG_FRAME_PAGES}, {0x1000, 1, IMG_FRAME_ZERO}, {0x9000, 1, IMG_FRAME_DISCARDED},
    {0x2000, 1, IMG_FRAME_PAGES}, {0x6000, 3, IMG_FRAME_ZERO}, {0x10000, 1, IMG_FRAME_PAGES},
};
#define CR_N (sizeof(cr_written) / sizeof(cr_written[0]))

struct cr_image {
	uint32_t page_size;
	struct imgtest_extent ext[CR_N]; /* sorted by address */
	uint8_t *bytes;
	size_t len;
	uint64_t frame_end[CR_N]; /* by sorted extent: where its frame ends in the file */
	uint64_t meta_end;	  /* where the META frame ends */
};

static int cr_cmp(const void *a, const void *b)
{
	const struct imgtest_extent *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Where each extent's frame ends, found by walking the frame headers. */
static void cr_locate(struct cr_image *c)
{
	uint64_t off = IMG_HEADER_SIZE;
	struct img_frame f;

	while (off + IMG_FRAME_HEADER_SIZE <= c->len &&
	       img_frame_decode(c->bytes + off, &f, NULL) == 0 && f.type != IMG_FRAME_INDEX) {
		uint64_t end = off + IMG_FRAME_HEADER_SIZE + f.payload_len;

		if (f.type == IMG_FRAME_META)
			c->meta_end = end;
		for (size_t i = 0; i < CR_N; i++)
			if (c->ext[i].addr == f.addr && c->ext[i].type == f.type)
				c->frame_end[i] = end;
		off = end;
	}
}

static void cr_build(struct cr_image *c, uint32_t page_size)
{
	int fd = imgtest_memfd(NULL, 0);

	memset(c, 0, sizeof(*c));
	c->page_size = page_size;
	for (size_t i = 0; i < CR_N; i++) {
		c->ext[i] = cr_written[i];
		c->ext[i].addr = cr_written[i].addr / 0x1000 * page_size;
	}
	assert_true(fd >= 0);
	assert_int_equal(imgtest_write_image(fd, page_size, CR_SEED, c->ext, CR_N, 1), 0);
	assert_int_equal(imgtest_slurp(fd, &c->bytes, &c->len), 0);
	close(fd);
	qsort(c->ext, CR_N, sizeof(c->ext[0]), cr_cmp);
	cr_locate(c);
	for (size_t i = 0; i < CR_N; i++)
		assert_true(c->frame_end[i] > 0);
}

/*
 * The reader on a damaged image: it may refuse to open or refuse a read, but whatever it
 * returns as data must be what was written. cut: the file's length if it was truncated (frames
 * wholly before it must then read back), else 0.
 */
static void cr_check_reader(const struct cr_image *c, int fd, size_t cut)
{
	struct img_reader *r = NULL;
	struct img_error err;
	uint8_t got[4 * 4096], want[4 * 4096];
	int k = img_reader_open(fd, &r, &err);

	if (cut)
		assert_int_equal(k < 0, cut < c->meta_end);
	if (k < 0)
		return;
	for (size_t i = 0; i < CR_N; i++) {
		const struct imgtest_extent *e = &c->ext[i];
		size_t len = e->npages * c->page_size;
		int expect =
		    imgtest_expect(c->ext, CR_N, c->page_size, CR_SEED, e->addr, want, len);

		k = img_reader_read(r, e->addr, got, len, &err);
		if (k == 0 && expect == 0 && memcmp(got, want, len))
			fail_msg("read of 0x%llx returned wrong bytes",
				 (unsigned long long)e->addr);
		if (k == 0 && expect != 0)
			fail_msg("read of 0x%llx succeeded, expected %d",
				 (unsigned long long)e->addr, expect);
		if (k == -ESTALE && e->type != IMG_FRAME_DISCARDED)
			fail_msg("read of 0x%llx: -ESTALE for a page not discarded",
				 (unsigned long long)e->addr);
		if (cut && c->frame_end[i] <= cut && k != expect)
			fail_msg("cut at %zu: read of 0x%llx, whose frame ends at %llu: %d (%s)",
				 cut, (unsigned long long)e->addr,
				 (unsigned long long)c->frame_end[i], k, err.msg);
	}
	img_reader_free(r);
}

static void cr_check_damaged(const struct cr_image *c, int fd, size_t off, uint8_t mask)
{
	struct img_summary s;
	char *meta = NULL;

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(img_verify_fd(fd, &s, &meta), 0);
	if (s.status == IMG_COMPLETE)
		fail_msg("page size %u: byte %zu ^ 0x%02x verifies as COMPLETE", c->page_size, off,
			 mask);
	free(meta);
	cr_check_reader(c, fd, 0);
}

/* Each byte xor mask (0xff), or each of its bits in turn (mask 0). */
static void cr_flip_all(const struct cr_image *c, int bits)
{
	int fd = imgtest_memfd(c->bytes, c->len);

	assert_true(fd >= 0);
	for (size_t off = 0; off < c->len; off++) {
		for (int b = 0; b < (bits ? 8 : 1); b++) {
			uint8_t mask = bits ? (uint8_t)(1u << b) : 0xff;
			uint8_t v = c->bytes[off] ^ mask;

			assert_int_equal(pwrite(fd, &v, 1, off), 1);
			cr_check_damaged(c, fd, off, mask);
		}
		assert_int_equal(pwrite(fd, &c->bytes[off], 1, off), 1);
	}
	close(fd);
}

static void test_flip_bytes_512(void **state)
{
	struct cr_image c;

	cr_build(&c, 512);
	print_message("image of %zu bytes, every byte and every bit\n", c.len);
	cr_flip_all(&c, 0);
	cr_flip_all(&c, 1);
	free(c.bytes);
}

static void test_flip_bytes_4096(void **state)
{
	struct cr_image c;

	cr_build(&c, 4096);
	print_message("image of %zu bytes, every byte\n", c.len);
	cr_flip_all(&c, 0);
	free(c.bytes);
}

static void cr_truncate_all(const struct cr_image *c)
{
	int fd = imgtest_memfd(c->bytes, c->len);
	struct img_summary s;

	assert_true(fd >= 0);
	for (size_t cut = 0; cut <= c->len; cut++) {
		assert_int_equal(pwrite(fd, c->bytes, c->len, 0), (ssize_t)c->len);
		assert_int_equal(ftruncate(fd, cut), 0);
		assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
		assert_int_equal(img_verify_fd(fd, &s, NULL), 0);
		if (cut == c->len) {
			assert_int_equal(s.status, IMG_COMPLETE);
			continue;
		}
		if (s.status != IMG_INCOMPLETE)
			fail_msg("cut at %zu of %zu: status %d, expected INCOMPLETE (%s)", cut,
				 c->len, s.status, s.error.msg);
		assert_true(s.valid_bytes <= cut);
		cr_check_reader(c, fd, cut ? cut : 1);
	}
	close(fd);
}

static void test_truncate_512(void **state)
{
	struct cr_image c;

	cr_build(&c, 512);
	cr_truncate_all(&c);
	free(c.bytes);
}

static void test_truncate_4096(void **state)
{
	struct cr_image c;

	cr_build(&c, 4096);
	cr_truncate_all(&c);
	free(c.bytes);
}

/* Anything after the trailer, and the image twice, are CORRUPT rather than COMPLETE. */
static void test_appended(void **state)
{
	struct cr_image c;
	struct img_summary s;
	uint8_t *twice;
	int fd;

	cr_build(&c, 512);
	twice = malloc(2 * c.len);
	assert_non_null(twice);
	memcpy(twice, c.bytes, c.len);
	memcpy(twice + c.len, c.bytes, c.len);
	for (size_t extra = 1; extra <= c.len; extra += extra < 100 ? 1 : 97) {
		fd = imgtest_memfd(twice, c.len + extra);
		assert_int_equal(img_verify_fd(fd, &s, NULL), 0);
		assert_int_equal(s.status, IMG_CORRUPT);
		cr_check_reader(&c, fd, 0);
		close(fd);
	}
	free(twice);
	free(c.bytes);
}

static int cr_status(const void *data, size_t len)
{
	struct img_summary s;
	int fd = imgtest_memfd(data, len);

	assert_true(fd >= 0);
	assert_int_equal(img_verify_fd(fd, &s, NULL), 0);
	close(fd);
	return s.status;
}

/*
 * INCOMPLETE means "everything before the end checks out" (FORMAT.md): bytes that cannot be
 * the start of a header or of a frame header make an input CORRUPT, however short it is.
 */
static void test_garbage_is_not_incomplete(void **state)
{
	static const char text[] = "hello, world\n";
	struct cr_image c;
	uint8_t *p;
	size_t cut;

	assert_int_equal(cr_status(text, strlen(text)), IMG_CORRUPT);
	assert_int_equal(cr_status("\x89UFFSNP\n\x01", 9), IMG_INCOMPLETE); /* a real prefix */
	cr_build(&c, 512);
	cut = c.frame_end[CR_N - 1]; /* the end of a frame, before the index */
	p = malloc(cut + 9);
	assert_non_null(p);
	memcpy(p, c.bytes, cut);
	memcpy(p + cut, "UFRM\x02", 5);
	assert_int_equal(cr_status(p, cut + 5), IMG_INCOMPLETE); /* a frame header's start */
	memcpy(p + cut, "garbage!!", 9);
	assert_int_equal(cr_status(p, cut + 9), IMG_CORRUPT);
	free(p);
	free(c.bytes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_flip_bytes_512), cmocka_unit_test(test_flip_bytes_4096),
	    cmocka_unit_test(test_truncate_512),   cmocka_unit_test(test_truncate_4096),
	    cmocka_unit_test(test_appended),	   cmocka_unit_test(test_garbage_is_not_incomplete),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
