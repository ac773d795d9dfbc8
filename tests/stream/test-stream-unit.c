/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the stream's pure parts: control messages, keys and proofs, incremental check,
 * the split of --mem-limit between a streamed snapshot's fault queue and its stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "stream/auth.h"
#include "stream/check.h"
#include "stream/sink.h"
#include "stream/wire.h"

static size_t hello(uint8_t *out)
{
	struct stream_hello h = {.major = 1, .minor = 0, .name = "host-1.example"};

	memset(h.session, 0xab, sizeof(h.session));
	memset(h.nonce, 0xcd, sizeof(h.nonce));
	return stream_hello_encode(&h, out);
}

static void test_roundtrip(void **state)
{
	uint8_t out[STREAM_MSG_MAX_SIZE];
	struct stream_ack a = {.offset = 0x1122334455667788ull, .flags = STREAM_ACK_F_COMPLETE};
	struct stream_msg m;
	size_t n = hello(out), used = 0;

	assert_int_equal(n, STREAM_MSG_HEADER_SIZE + STREAM_HELLO_SIZE);
	assert_int_equal(stream_msg_decode(out, n, &m, &used), 0);
	assert_int_equal(used, n);
	assert_int_equal(m.type, STREAM_MSG_HELLO);
	assert_string_equal(m.hello.name, "host-1.example");
	assert_memory_equal(m.hello_raw, out + STREAM_MSG_HEADER_SIZE, STREAM_HELLO_SIZE);
	/* every prefix asks for more */
	for (size_t i = 1; i < n; i++)
		assert_int_equal(stream_msg_decode(out, i, &m, &used), -EAGAIN);
	n = stream_ack_encode(&a, out);
	assert_int_equal(out[16], 0x88); /* little-endian on the wire */
	assert_int_equal(stream_msg_decode(out, n, &m, &used), 0);
	assert_true(m.ack.offset == a.offset && m.ack.flags == a.flags);
	n = stream_error_encode(STREAM_ERR_AUTH, "no\nway", out);
	assert_int_equal(stream_msg_decode(out, n, &m, &used), 0);
	assert_int_equal(m.error.code, STREAM_ERR_AUTH);
	assert_string_equal(m.error.msg, "no?way"); /* a peer's control bytes are not printed */
}

static void test_rejects(void **state)
{
	uint8_t out[STREAM_MSG_MAX_SIZE], bad[STREAM_MSG_MAX_SIZE];
	struct stream_hello h = {.major = 2, .name = "x"};
	struct stream_msg m;
	size_t n = hello(out), used;

	memcpy(bad, out, n);
	bad[40] ^= 1; /* body byte: CRC */
	assert_int_equal(stream_msg_decode(bad, n, &m, &used), -EBADMSG);
	memcpy(bad, out, n);
	bad[0] = 'X'; /* magic, detected from the first byte */
	assert_int_equal(stream_msg_decode(bad, 1, &m, &used), -EBADMSG);
	memcpy(bad, out, n);
	bad[6] = 3; /* body length not the type's */
	assert_int_equal(stream_msg_decode(bad, n, &m, &used), -EBADMSG);
	memset(h.session, 1, sizeof(h.session));
	n = stream_hello_encode(&h, out);
	assert_int_equal(stream_msg_decode(out, n, &m, &used), -EPROTONOSUPPORT);
	h.major = 1;
	snprintf(h.name, sizeof(h.name), "bad name");
	n = stream_hello_encode(&h, out);
	assert_int_equal(stream_msg_decode(out, n, &m, &used), -EBADMSG);
	snprintf(h.name, sizeof(h.name), "ok");
	memset(h.session, 0, sizeof(h.session)); /* an all-zero session */
	n = stream_hello_encode(&h, out);
	assert_int_equal(stream_msg_decode(out, n, &m, &used), -EBADMSG);
}

static void test_keys(void **state)
{
	static const char hex[] = "00112233445566778899aabbccddeeff"
				  "00112233445566778899AABBCCDDEEFF\n";
	char path[] = "/tmp/stream-key-XXXXXX", msg[512];
	struct stream_key k;
	int fd = mkstemp(path);

	assert_int_equal(stream_key_parse(hex, strlen(hex), &k), 0);
	assert_int_equal(k.len, 32);
	assert_int_equal(k.bytes[31], 0xff);
	assert_int_equal(stream_key_parse(hex, 62, &k), -EINVAL); /* 31 bytes */
	assert_int_equal(stream_key_parse(hex, 63, &k), -EINVAL); /* odd */
	assert_int_equal(stream_key_parse("zz", 2, &k), -EINVAL);
	assert_true(write(fd, hex, strlen(hex)) == (ssize_t)strlen(hex));
	close(fd);
	chmod(path, 0644);
	assert_int_equal(stream_key_load(path, &k, msg, sizeof(msg)), -EPERM);
	assert_non_null(strstr(msg, "chmod 600"));
	chmod(path, 0600);
	assert_int_equal(stream_key_load(path, &k, msg, sizeof(msg)), 0);
	unlink(path);
	assert_true(stream_key_load(path, &k, msg, sizeof(msg)) == -ENOENT);
}

static void test_proofs(void **state)
{
	struct stream_key k = {.len = 32}, other = {.len = 32};
	uint8_t out[STREAM_MSG_MAX_SIZE], nonce[STREAM_NONCE_SIZE] = {7}, p[STREAM_MAC_SIZE];
	uint8_t *body = out + STREAM_MSG_HEADER_SIZE;

	memset(k.bytes, 1, 32);
	memset(other.bytes, 2, 32);
	hello(out);
	assert_int_equal(stream_proof(&k, 'S', body, nonce, p), 0);
	assert_true(stream_proof_ok(&k, 'S', body, nonce, p));
	assert_false(stream_proof_ok(&k, 'R', body, nonce, p)); /* no reflection */
	assert_false(stream_proof_ok(&other, 'S', body, nonce, p));
	nonce[0] ^= 1;
	assert_false(stream_proof_ok(&k, 'S', body, nonce, p)); /* fresh per nonce */
	nonce[0] ^= 1;
	body[60] ^= 1;
	assert_false(stream_proof_ok(&k, 'S', body, nonce, p)); /* covers the HELLO */
}

/* A small complete image, written by the real writer into memory. */
static uint8_t *make_image(size_t *ret_len)
{
	int fd = memfd_create("img", MFD_CLOEXEC);
	struct img_writer_opts o = {.page_size = 4096};
	struct img_sink *s;
	struct img_writer *w;
	static uint8_t pages[4 * 4096];
	uint8_t *buf;
	struct stat st;

	memset(pages, 0x5c, sizeof(pages));
	assert_int_equal(img_sink_fd_new(fd, &s), 0);
	assert_int_equal(img_writer_new(&o, s, &w), 0);
	assert_int_equal(img_writer_begin(w, "{}", 2), 0);
	assert_int_equal(img_writer_pages(w, 0x10000, 4, pages), 0);
	assert_int_equal(img_writer_zero(w, 0x20000, 8), 0);
	assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	img_sink_free(s);
	fstat(fd, &st);
	buf = malloc(st.st_size);
	assert_int_equal(pread(fd, buf, st.st_size, 0), st.st_size);
	close(fd);
	*ret_len = st.st_size;
	return buf;
}

/* err (may be NULL) receives the checker's message. */
static int feed_err(const uint8_t *p, size_t len, size_t chunk, struct img_error *err)
{
	struct stream_check *c;
	struct img_error e = {0};
	int r = 0;

	assert_int_equal(stream_check_new(&c), 0);
	for (size_t off = 0; off < len && r == 0; off += chunk)
		r = stream_check_feed(c, p + off, len - off < chunk ? len - off : chunk, &e);
	stream_check_free(c);
	if (err)
		*err = e;
	return r;
}

static int feed(const uint8_t *p, size_t len, size_t chunk)
{
	return feed_err(p, len, chunk, NULL);
}

/*
 * A pre-copy image (format 1.2): rounds that rewrite pages, an UNMAPPED extent, the second META
 * after them and a last round; finished (its trailer points at that META) or not.
 */
static uint8_t *make_rewrites_image(size_t *ret_len, bool finish)
{
	int fd = memfd_create("img", MFD_CLOEXEC);
	struct img_writer_opts o = {.page_size = 4096, .flags = IMG_HEADER_F_REWRITES};
	struct img_sink *s;
	struct img_writer *w;
	static uint8_t pages[4 * 4096];
	uint8_t *buf;
	struct stat st;

	memset(pages, 0x6d, sizeof(pages));
	assert_int_equal(img_sink_fd_new(fd, &s), 0);
	assert_int_equal(img_writer_new(&o, s, &w), 0);
	assert_int_equal(img_writer_begin(w, "{}", 2), 0);
	assert_int_equal(img_writer_pages(w, 0x10000, 4, pages), 0);
	assert_int_equal(img_writer_zero(w, 0x20000, 8), 0);
	assert_int_equal(img_writer_pages(w, 0x11000, 2, pages), 0);
	assert_int_equal(img_writer_unmapped(w, 0x20000, 2), 0);
	assert_int_equal(img_writer_meta(w, "{\"time\":{}}", 11), 0);
	assert_int_equal(img_writer_pages(w, 0x12000, 1, pages), 0);
	if (finish)
		assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	img_sink_free(s);
	fstat(fd, &st);
	buf = malloc(st.st_size);
	assert_int_equal(pread(fd, buf, st.st_size, 0), st.st_size);
	close(fd);
	*ret_len = st.st_size;
	return buf;
}

/* Clears the REWRITES header flag, the header's checksum kept right. */
static void clear_rewrites(uint8_t *img)
{
	uint32_t crc;

	img[20] &= (uint8_t)~IMG_HEADER_F_REWRITES;
	crc = img_crc32c(0, img, 60);
	for (int i = 0; i < 4; i++)
		img[60 + i] = (uint8_t)(crc >> (8 * i));
}

static void test_check_rewrites(void **state)
{
	struct img_error err;
	struct img_trailer t;
	size_t len;
	uint8_t *img = make_rewrites_image(&len, true), *tr = img + len - IMG_TRAILER_SIZE;

	assert_int_equal(feed(img, len, len), 1);
	assert_int_equal(feed(img, len, 1), 1);
	assert_int_equal(feed(img, len, 7), 1);
	for (size_t cut = 0; cut < len; cut += 53)
		assert_int_equal(feed(img, cut, 13), 0); /* incomplete, not corrupt */
	/* The trailer must point at the second META (its CRC redone, the digest still right). */
	assert_int_equal(img_trailer_decode(tr, &t, NULL), 0);
	assert_true(t.meta_offset > IMG_HEADER_SIZE);
	t.meta_offset = IMG_HEADER_SIZE;
	img_trailer_encode(&t, tr);
	assert_true(feed_err(img, len, 4096, &err) < 0);
	assert_non_null(strstr(err.msg, "second META"));
	/* Without the flag, the second META and the UNMAPPED frame are corrupt. */
	clear_rewrites(img);
	assert_true(feed_err(img, len, 4096, &err) < 0);
	assert_non_null(strstr(err.msg, "UNMAPPED"));
	free(img);
	img = make_rewrites_image(&len, false);
	assert_int_equal(feed(img, len, 100), 0);
	free(img);
}

/* A chain's child (format 1.2): UNMAPPED extents, one META, a trailer without meta_offset. */
static void test_check_incremental(void **state)
{
	static const char meta[] = "{\"parent\":{\"digest\":\"00\"}}";
	struct img_writer_opts o = {.page_size = 4096, .flags = IMG_HEADER_F_INCREMENTAL};
	int fd = memfd_create("img", MFD_CLOEXEC);
	static uint8_t page[4096];
	struct img_writer *w;
	struct img_sink *s;
	struct stat st;
	uint8_t *buf;

	assert_int_equal(img_sink_fd_new(fd, &s), 0);
	assert_int_equal(img_writer_new(&o, s, &w), 0);
	assert_int_equal(img_writer_begin(w, meta, strlen(meta)), 0);
	assert_int_equal(img_writer_pages(w, 0x10000, 1, page), 0);
	assert_int_equal(img_writer_unmapped(w, 0x20000, 4), 0);
	assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	img_sink_free(s);
	fstat(fd, &st);
	buf = malloc(st.st_size);
	assert_int_equal(pread(fd, buf, st.st_size, 0), st.st_size);
	assert_int_equal(feed(buf, st.st_size, 1), 1);
	assert_int_equal(feed(buf, st.st_size, 999), 1);
	free(buf);
	close(fd);
}

static void test_check(void **state)
{
	size_t len;
	uint8_t *img = make_image(&len);

	assert_int_equal(feed(img, len, len), 1);
	assert_int_equal(feed(img, len, 1), 1);
	assert_int_equal(feed(img, len, 7), 1);
	for (size_t cut = 0; cut < len; cut += 97)
		assert_int_equal(feed(img, cut, 13), 0); /* incomplete, not corrupt */
	img[64 + 48 + 2 + 48 + 100] ^= 1;		 /* inside the page frame's payload */
	assert_true(feed(img, len, 4096) < 0);
	img[64 + 48 + 2 + 48 + 100] ^= 1;
	img[len - 1] ^= 1; /* trailer CRC */
	assert_true(feed(img, len, 4096) < 0);
	img[len - 1] ^= 1;
	img = realloc(img, len + 1);
	img[len] = 0;
	assert_true(feed(img, len + 1, len + 1) < 0); /* a byte after the trailer */
	free(img);
}

static void test_mem_split(void **state)
{
	uint64_t stream, queue;

	(void)state;
	stream_snap_mem_split(0, &stream, &queue); /* the default: half each */
	assert_int_equal(stream, STREAM_MEM_LIMIT_DEFAULT);
	assert_int_equal(stream + queue, STREAM_SNAP_MEM_DEFAULT);
	assert_true(stream + queue <= 64ull << 20 && queue == stream);
	stream_snap_mem_split(8ull << 20, &stream, &queue);
	assert_int_equal(stream, 4ull << 20);
	assert_int_equal(queue, 4ull << 20);
	stream_snap_mem_split((3ull << 20) + 4096, &stream, &queue); /* nothing lost to rounding */
	assert_int_equal(stream + queue, (3ull << 20) + 4096);
	stream_snap_mem_split(1ull << 20, &stream, &queue); /* the stream's minimum wins */
	assert_int_equal(stream, STREAM_MEM_LIMIT_MIN);
	assert_int_equal(queue, 512ull << 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_rejects),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_proofs),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_check_rewrites),
	    cmocka_unit_test(test_check_incremental),
	    cmocka_unit_test(test_mem_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
