/* SPDX-License-Identifier: MIT */
/*
 * The fixed structures of the format (FORMAT.md): encode/decode round trips, the rule that
 * reserved bytes must read as zero, rejection of bad magic, checksums and versions, and CRC32C
 * against published check values and a bitwise reference on unaligned buffers of every length.
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

/* CRC32C bit by bit, straight from the definition: the reference the fast paths must match. */
static uint32_t ref_crc32c(uint32_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Sets the CRC32C of in[0, crc_at) at crc_at, as a writer would have. */
static void reseal(uint8_t *in, size_t crc_at)
{
	put32(in + crc_at, img_crc32c(0, in, crc_at));
}

static void test_crc32c_vectors(void **state)
{
	uint8_t buf[32];

	/* FORMAT.md's check value, and RFC 3720 (iSCSI) appendix B.4. */
	assert_int_equal(img_crc32c(0, "123456789", 9), 0xE3069283);
	assert_int_equal(img_crc32c(0, "", 0), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(img_crc32c(0, buf, 32), 0x8A9136AA);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(img_crc32c(0, buf, 32), 0x62A8AB43);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(img_crc32c(0, buf, 32), 0x46DD794E);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(img_crc32c(0, buf, 32), 0x113FDB5C);
	/* Feeding the result back continues the computation. */
	assert_int_equal(img_crc32c(img_crc32c(0, "1234", 4), "56789", 5), 0xE3069283);
	print_message("crc32c: %s path\n", __builtin_cpu_supports("sse4.2")
					       ? "SSE4.2"
					       : "table (no SSE4.2 on this CPU)");
}

/* Every alignment of the start and every length up to 300, and some long ones, split anywhere. */
static void test_crc32c_unaligned(void **state)
{
	struct imgtest_rng rng = {imgtest_seed("crc32c_unaligned")};
	size_t size = 70000;
	uint8_t *buf = malloc(size + 16);

	assert_non_null(buf);
	for (size_t i = 0; i < size + 16; i++)
		buf[i] = (uint8_t)imgtest_rand(&rng);
	for (size_t off = 0; off < 16; off++)
		for (size_t len = 0; len <= 300; len++)
			assert_int_equal(img_crc32c(0, buf + off, len),
					 ref_crc32c(0, buf + off, len));
	/* Around the ends of the fast path's blocks of three lanes (128, 1024 and 8192 bytes). */
	for (size_t lane = 128; lane <= 8192; lane *= 8)
		for (size_t blocks = 1; blocks <= 2; blocks++)
			for (size_t len = blocks * 3 * lane - 9; len <= blocks * 3 * lane + 9;
			     len++)
				for (size_t off = 0; off < 16; off += 5)
					assert_int_equal(img_crc32c(0, buf + off, len),
							 ref_crc32c(0, buf + off, len));
	for (int i = 0; i < 200; i++) {
		size_t off = imgtest_below(&rng, 16), len = imgtest_below(&rng, size);
		size_t cut = imgtest_below(&rng, len + 1);
		uint32_t whole = ref_crc32c(0, buf + off, len);

		assert_int_equal(img_crc32c(0, buf + off, len), whole);
		assert_int_equal(
		    img_crc32c(img_crc32c(0, buf + off, cut), buf + off + cut, len - cut), whole);
	}
	free(buf);
}

static void test_header(void **state)
{
	struct img_header h = {IMG_VERSION_MAJOR, 7, 4096, 0}, d;
	struct img_error err = {0};
	uint8_t b[IMG_HEADER_SIZE], t[IMG_HEADER_SIZE];

	img_header_encode(&h, b);
	assert_memory_equal(b, "\x89UFFSNP\n", 8);
	assert_int_equal(img_header_decode(b, &d, &err), 0);
	assert_int_equal(d.version_major, IMG_VERSION_MAJOR);
	assert_int_equal(d.version_minor, 7);
	assert_int_equal(d.page_size, 4096);
	assert_int_equal(d.flags, 0);
	/* Every reserved byte (24..59), even with a correct checksum. */
	for (int i = 24; i < 60; i++) {
		memcpy(t, b, sizeof(t));
		t[i] = 1;
		reseal(t, 60);
		assert_int_equal(img_header_decode(t, &d, &err), -EBADMSG);
	}
	memcpy(t, b, sizeof(t));
	t[0] ^= 1;
	assert_int_equal(img_header_decode(t, &d, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "magic"));
	memcpy(t, b, sizeof(t));
	t[30] ^= 1; /* no reseal: checksum */
	assert_int_equal(img_header_decode(t, &d, &err), -EBADMSG);
	memcpy(t, b, sizeof(t));
	t[8] = 2; /* major version 2 */
	reseal(t, 60);
	assert_int_equal(img_header_decode(t, &d, &err), -EPROTONOSUPPORT);
	memcpy(t, b, sizeof(t));
	t[20] = IMG_HEADER_F_REWRITES; /* 1.2: a pre-copy image */
	reseal(t, 60);
	assert_int_equal(img_header_decode(t, &d, &err), 0);
	assert_int_equal(d.flags, IMG_HEADER_F_REWRITES);
	memcpy(t, b, sizeof(t));
	t[20] = IMG_HEADER_F_REWRITES | IMG_HEADER_F_INCREMENTAL; /* 1.2: a pre-copied increment */
	reseal(t, 60);
	assert_int_equal(img_header_decode(t, &d, &err), 0);
	assert_int_equal(d.flags, IMG_HEADER_F_REWRITES | IMG_HEADER_F_INCREMENTAL);
	/* Any flag this reader does not know: refused, saying so (a newer writer's image). */
	for (int bit = 2; bit < 32; bit++) {
		memcpy(t, b, sizeof(t));
		put32(t + 20, IMG_HEADER_F_REWRITES | 1u << bit);
		reseal(t, 60);
		assert_int_equal(img_header_decode(t, &d, &err), -EPROTONOSUPPORT);
		assert_non_null(strstr(err.msg, "this reader does not know"));
		assert_non_null(strstr(err.msg, "newer uffsnap"));
	}
}

static void test_header_page_size(void **state)
{
	static const uint32_t bad[] = {0, 1, 256, 511, 4095, 4097, 3 << 12, 4u << 20, UINT32_MAX};
	static const uint32_t good[] = {512, 4096, 16384, 65536, 2u << 20};
	struct img_header h = {IMG_VERSION_MAJOR, 0, 0, 0}, d;
	uint8_t b[IMG_HEADER_SIZE];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h.page_size = bad[i];
		img_header_encode(&h, b);
		assert_int_equal(img_header_decode(b, &d, NULL), -EBADMSG);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		h.page_size = good[i];
		img_header_encode(&h, b);
		assert_int_equal(img_header_decode(b, &d, NULL), 0);
		assert_int_equal(d.page_size, good[i]);
	}
}

static void test_frame(void **state)
{
	struct img_frame f = {.type = IMG_FRAME_PAGES,
			      .flags = IMG_FRAME_F_OPTIONAL,
			      .seq = 0x0102030405060708ull,
			      .addr = 0x7fff12345000ull,
			      .count = 3,
			      .payload_len = 12288,
			      .payload_crc = 0xdeadbeef};
	struct img_frame d;
	struct img_error err = {0};
	uint8_t b[IMG_FRAME_HEADER_SIZE], t[IMG_FRAME_HEADER_SIZE];

	img_frame_encode(&f, b);
	assert_memory_equal(b, "UFRM", 4);
	assert_int_equal(b[8], 0x08); /* little-endian */
	assert_int_equal(img_frame_decode(b, &d, &err), 0);
	assert_int_equal(d.type, f.type);
	assert_int_equal(d.flags, f.flags);
	assert_int_equal(d.seq, f.seq);
	assert_int_equal(d.addr, f.addr);
	assert_int_equal(d.count, f.count);
	assert_int_equal(d.payload_len, f.payload_len);
	assert_int_equal(d.payload_crc, f.payload_crc);
	for (int i = 40; i < 44; i++) { /* reserved */
		memcpy(t, b, sizeof(t));
		t[i] = 0x80;
		reseal(t, 44);
		assert_int_equal(img_frame_decode(t, &d, &err), -EBADMSG);
	}
	for (int bit = 1; bit < 16; bit++) { /* unknown flags */
		memcpy(t, b, sizeof(t));
		t[6 + bit / 8] |= (uint8_t)(1u << (bit % 8));
		reseal(t, 44);
		assert_int_equal(img_frame_decode(t, &d, &err), -EBADMSG);
	}
	for (int i = 0; i < 44; i++) { /* any change without resealing: checksum */
		memcpy(t, b, sizeof(t));
		t[i] ^= 0x10;
		assert_int_equal(img_frame_decode(t, &d, &err), -EBADMSG);
	}
}

static void test_index_entry(void **state)
{
	struct img_index_entry e = {0xfffffffffffff000ull, 0x123456789ull, 0x1122334455ull,
				    IMG_FRAME_DISCARDED},
			       d;
	uint8_t b[IMG_INDEX_ENTRY_SIZE], t[IMG_INDEX_ENTRY_SIZE];

	img_index_entry_encode(&e, b);
	img_index_entry_decode(b, &d);
	assert_int_equal(d.addr, e.addr);
	assert_int_equal(d.npages, e.npages);
	assert_int_equal(d.offset, e.offset);
	assert_int_equal(d.type, e.type);
	for (int i = 26; i < 32; i++) {
		assert_int_equal(b[i], 0);
		memcpy(t, b, sizeof(t));
		t[i] = 1;
		img_index_entry_decode(t, &d);
		/* The decoder has no error return: it makes the entry invalid for the readers. */
		assert_true(d.type != IMG_FRAME_PAGES && d.type != IMG_FRAME_ZERO &&
			    d.type != IMG_FRAME_DISCARDED);
	}
}

static void test_progress(void **state)
{
	struct img_progress p = {0x1111, 0x222222, 0x3333333333ull}, d;
	uint8_t b[IMG_PROGRESS_SIZE];

	img_progress_encode(&p, b);
	img_progress_decode(b, &d);
	assert_int_equal(d.pages_done, p.pages_done);
	assert_int_equal(d.pages_total, p.pages_total);
	assert_int_equal(d.elapsed_ns, p.elapsed_ns);
	for (int i = 24; i < 32; i++)
		assert_int_equal(b[i], 0);
}

/*
 * img_progress_decode() cannot fail, so the rule "reserved bytes are rejected" must hold in
 * the readers: an image whose PROGRESS frame has a non-zero reserved byte (checksums all made
 * right) must not verify.
 */
static void test_progress_reserved_in_image(void **state)
{
	struct imgtest_extent ext[1] = {{0x10000, 1, IMG_FRAME_ZERO}};
	size_t len, off = IMG_HEADER_SIZE;
	struct img_summary s;
	struct img_frame f;
	uint8_t *img;
	int fd = imgtest_memfd(NULL, 0);

	assert_true(fd >= 0);
	/* Unfinished: no digest to recompute; an untouched one is INCOMPLETE. */
	assert_int_equal(imgtest_write_image(fd, 4096, 1, ext, 1, 0), 0);
	assert_int_equal(imgtest_slurp(fd, &img, &len), 0);
	close(fd);
	for (;;) { /* find the PROGRESS frame */
		assert_true(off + IMG_FRAME_HEADER_SIZE <= len);
		assert_int_equal(img_frame_decode(img + off, &f, NULL), 0);
		if (f.type == IMG_FRAME_PROGRESS)
			break;
		off += IMG_FRAME_HEADER_SIZE + f.payload_len;
	}
	img[off + IMG_FRAME_HEADER_SIZE + 30] = 1;
	f.payload_crc = img_crc32c(0, img + off + IMG_FRAME_HEADER_SIZE, IMG_PROGRESS_SIZE);
	img_frame_encode(&f, img + off);
	fd = imgtest_memfd(img, len);
	assert_int_equal(img_verify_fd(fd, &s, NULL), 0);
	close(fd);
	free(img);
	if (s.status != IMG_CORRUPT)
		fail_msg("a non-zero reserved byte in a progress frame: status %d, not CORRUPT",
			 s.status);
}

static void test_trailer(void **state)
{
	struct img_trailer tr = {0x1000, 42, 0x123456, {0}}, d;
	struct img_error err = {0};
	uint8_t b[IMG_TRAILER_SIZE], t[IMG_TRAILER_SIZE];

	for (int i = 0; i < IMG_DIGEST_SIZE; i++)
		tr.digest[i] = (uint8_t)(i * 7 + 1);
	img_trailer_encode(&tr, b);
	assert_memory_equal(b, "\x89UFSEND\n", 8);
	assert_int_equal(img_trailer_decode(b, &d, &err), 0);
	assert_int_equal(d.index_offset, tr.index_offset);
	assert_int_equal(d.frame_count, tr.frame_count);
	assert_int_equal(d.image_size, tr.image_size);
	assert_memory_equal(d.digest, tr.digest, IMG_DIGEST_SIZE);
	assert_int_equal(d.meta_offset, 0);
	tr.meta_offset = 0x0102030405060708ull; /* 1.2: bytes 64..71 */
	img_trailer_encode(&tr, t);
	assert_int_equal(t[64], 0x08);
	assert_int_equal(img_trailer_decode(t, &d, &err), 0);
	assert_true(d.meta_offset == tr.meta_offset);
	for (int i = 72; i < 76; i++) { /* reserved */
		memcpy(t, b, sizeof(t));
		t[i] = 1;
		reseal(t, 76);
		assert_int_equal(img_trailer_decode(t, &d, &err), -EBADMSG);
	}
	for (int i = 8; i < 76; i++) { /* checksum */
		memcpy(t, b, sizeof(t));
		t[i] ^= 4;
		assert_int_equal(img_trailer_decode(t, &d, &err), -EBADMSG);
	}
	memcpy(t, b, sizeof(t));
	t[1] = 'X'; /* not a trailer at all */
	assert_true(img_trailer_decode(t, &d, &err) < 0);
}

static void test_type_names(void **state)
{
	assert_string_equal(img_frame_type_name(IMG_FRAME_META), "meta");
	assert_string_equal(img_frame_type_name(IMG_FRAME_PAGES), "pages");
	assert_string_equal(img_frame_type_name(IMG_FRAME_INDEX), "index");
	assert_non_null(img_frame_type_name(0));
	assert_non_null(img_frame_type_name(999));
	assert_non_null(img_frame_type_name(UINT16_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c_vectors),
	    cmocka_unit_test(test_crc32c_unaligned),
	    cmocka_unit_test(test_header),
	    cmocka_unit_test(test_header_page_size),
	    cmocka_unit_test(test_frame),
	    cmocka_unit_test(test_index_entry),
	    cmocka_unit_test(test_progress),
	    cmocka_unit_test(test_progress_reserved_in_image),
	    cmocka_unit_test(test_trailer),
	    cmocka_unit_test(test_type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
