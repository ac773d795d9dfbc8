/* SPDX-License-Identifier: MIT */
/*
 * img_resolve(), the later-wins resolution of a pre-copy image's frames (format 1.2): random
 * frames over a small window checked against a page map filled in write order (the obvious
 * quadratic model), the shape of the output (sorted, disjoint, maximal runs), and 10^5 frames
 * over a large space sampled against a backwards scan, to keep it honest about O(n log n).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "img-internal.h"
#include "img-test-util.h"

#define RS_PS	  512u
#define RS_WINDOW 96 /* pages */
#define RS_NONE	  SIZE_MAX

static const uint16_t rs_types[] = {IMG_FRAME_PAGES, IMG_FRAME_ZERO, IMG_FRAME_DISCARDED,
				    IMG_FRAME_UNMAPPED};

/* n random frames in [base, base + window pages), each with its own offset. */
static struct img_index_entry *rs_frames(struct imgtest_rng *rng, size_t n, uint64_t base,
					 uint64_t window, uint64_t max_len)
{
	struct img_index_entry *in = calloc(n ? n : 1, sizeof(*in));

	assert_non_null(in);
	for (size_t i = 0; i < n; i++) {
		uint64_t start = imgtest_below(rng, window);
		uint64_t len = 1 + imgtest_below(rng, max_len);

		if (start + len > window)
			len = window - start;
		in[i] = (struct img_index_entry){.addr = base + start * RS_PS,
						 .npages = len,
						 .offset = 4096 + 64 * i,
						 .type = rs_types[imgtest_below(rng, 4)]};
	}
	return in;
}

/* The shape every output has: sorted, disjoint, no empty run, adjacent runs of one frame merged. */
static void rs_check_shape(const struct img_index_entry *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		assert_true(out[i].npages > 0);
		if (!i)
			continue;
		assert_true(out[i - 1].addr + out[i - 1].npages * RS_PS <= out[i].addr);
		if (out[i - 1].addr + out[i - 1].npages * RS_PS == out[i].addr &&
		    out[i - 1].offset == out[i].offset)
			fail_msg("runs %zu and %zu of one frame are not merged", i - 1, i);
	}
}

/* Every page of the window: the output's entry is the page map's winner, or there is none. */
static void rs_check_window(const struct img_index_entry *in, size_t n,
			    const struct img_index_entry *out, size_t nout, uint64_t base)
{
	size_t win[RS_WINDOW], j = 0;

	for (size_t p = 0; p < RS_WINDOW; p++)
		win[p] = RS_NONE;
	for (size_t i = 0; i < n; i++)
		for (uint64_t p = 0; p < in[i].npages; p++)
			win[(in[i].addr - base) / RS_PS + p] = i;
	for (size_t p = 0; p < RS_WINDOW; p++) {
		uint64_t a = base + p * RS_PS;

		while (j < nout && out[j].addr + out[j].npages * RS_PS <= a)
			j++;
		if (j == nout || out[j].addr > a) {
			if (win[p] != RS_NONE)
				fail_msg("page %zu: frame %zu wins but is not in the output", p,
					 win[p]);
			continue;
		}
		if (win[p] == RS_NONE)
			fail_msg("page %zu: in the output but in no frame", p);
		assert_int_equal(out[j].offset, in[win[p]].offset);
		assert_int_equal(out[j].type, in[win[p]].type);
	}
}

static void test_resolve_random(void **state)
{
	uint64_t seed = imgtest_seed("resolve_random");
	struct imgtest_rng rng = {seed};
	const uint64_t base = 0x7f0000000000ull;

	(void)state;
	for (int round = 0; round < 3000; round++) {
		size_t n = imgtest_below(&rng, 40), nout;
		uint64_t max_len = 1 + imgtest_below(&rng, round % 3 ? 8 : RS_WINDOW);
		struct img_index_entry *in = rs_frames(&rng, n, base, RS_WINDOW, max_len), *out;

		assert_int_equal(img_resolve(in, n, RS_PS, &out, &nout), 0);
		rs_check_shape(out, nout);
		rs_check_window(in, n, out, nout, base);
		/* Nothing superseded: every page is in the output; the pages add up. */
		assert_true(img_index_pages(out, nout) <= img_index_pages(in, n));
		free(in);
		free(out);
	}
}

/* Hand-made cases: a frame over the middle of another, one inside, one exactly over. */
static void test_resolve_patterns(void **state)
{
	const struct img_index_entry in[] = {
	    {0x0000, 8, 100, IMG_FRAME_PAGES},	   {0x0600, 2, 200, IMG_FRAME_ZERO},
	    {0x2000, 4, 300, IMG_FRAME_ZERO},	   {0x2000, 4, 400, IMG_FRAME_PAGES},
	    {0x3000, 1, 500, IMG_FRAME_PAGES},	   {0x3200, 1, 600, IMG_FRAME_UNMAPPED},
	    {0x3000, 1, 700, IMG_FRAME_DISCARDED},
	};
	const struct img_index_entry want[] = {
	    {0x0000, 3, 100, IMG_FRAME_PAGES},	   {0x0600, 2, 200, IMG_FRAME_ZERO},
	    {0x0a00, 3, 100, IMG_FRAME_PAGES},	   {0x2000, 4, 400, IMG_FRAME_PAGES},
	    {0x3000, 1, 700, IMG_FRAME_DISCARDED}, {0x3200, 1, 600, IMG_FRAME_UNMAPPED},
	};
	struct img_index_entry *out;
	size_t n;

	(void)state;
	assert_int_equal(img_resolve(in, 7, RS_PS, &out, &n), 0);
	if (!img_index_equal(out, n, want, sizeof(want) / sizeof(want[0]))) {
		for (size_t i = 0; i < n; i++)
			print_error("out[%zu] 0x%llx +%llu @%llu type %u\n", i,
				    (unsigned long long)out[i].addr,
				    (unsigned long long)out[i].npages,
				    (unsigned long long)out[i].offset, out[i].type);
		fail();
	}
	free(out);
	assert_int_equal(img_resolve(in, 0, RS_PS, &out, &n), 0);
	assert_int_equal(n, 0);
	assert_null(out);
}

/* The last entry covering addr, by scanning backwards: the model, one page at a time. */
static size_t rs_winner(const struct img_index_entry *in, size_t n, uint64_t addr)
{
	for (size_t i = n; i-- > 0;)
		if (addr >= in[i].addr && addr - in[i].addr < in[i].npages * RS_PS)
			return i;
	return RS_NONE;
}

/* 10^5 frames (an 8 GiB image's worth), long ones among them, near the top of memory. */
static void test_resolve_large(void **state)
{
	uint64_t seed = imgtest_seed("resolve_large");
	struct imgtest_rng rng = {seed};
	const size_t n = 100000;
	const uint64_t window = 1ull << 24, base = UINT64_MAX / RS_PS * RS_PS - window * RS_PS;
	struct img_index_entry *in = rs_frames(&rng, n, base, window, 4096), *out;
	struct timespec t0, t1;
	size_t nout;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(img_resolve(in, n, RS_PS, &out, &nout), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("%zu frames resolved into %zu extents in %.3f s\n", n, nout,
		      (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	rs_check_shape(out, nout);
	for (int s = 0; s < 300; s++) {
		uint64_t a = base + imgtest_below(&rng, window) * RS_PS;
		size_t w = rs_winner(in, n, a), lo = 0, hi = nout;

		while (lo < hi) { /* the output entry holding a */
			size_t mid = lo + (hi - lo) / 2;

			if (out[mid].addr + out[mid].npages * RS_PS <= a)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (w == RS_NONE) {
			assert_true(lo == nout || out[lo].addr > a);
			continue;
		}
		assert_true(lo < nout && out[lo].addr <= a);
		assert_int_equal(out[lo].offset, in[w].offset);
	}
	free(in);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resolve_random),
	    cmocka_unit_test(test_resolve_patterns),
	    cmocka_unit_test(test_resolve_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
