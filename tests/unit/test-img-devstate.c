/* SPDX-License-Identifier: MIT */
/*
 * DEVSTATE frames (format 1.1): a guest's device state right after META. Round trip through the
 * writer, the verifier and the reader; the position rule on both sides; an image cut inside or
 * right after the device state is incomplete and its device state unreadable; a 1.0 image
 * (committed, written before 1.1 existed) still verifies and reads.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "img-test-util.h"

#define DS_PAGE	 4096u
#define DS_ADDR	 0x7f0000000000ull
#define DS_PAGES 8
/* 2.5 MiB: three frames at the writer's 1 MiB split. */
#define DS_LEN (5u << 19)

static const char ds_meta[] = "{\"format\":\"uffsnap\",\"version\":1,\"guest\":{\"hypervisor\":"
			      "\"qemu\"}}";

struct ds_image {
	int fd;
	uint8_t *state;
	size_t state_len;
	uint64_t seed;
};

static void ds_fill(struct ds_image *d, size_t len)
{
	d->seed = 0x5eedull + len;
	d->state_len = len;
	d->state = malloc(len ? len : 1);
	assert_non_null(d->state);
	imgtest_fill(d->seed, 0, d->state, len);
}

/* An image: META, the device state (if state_len), pages, a zero extent; finished or not. */
static void ds_write(struct ds_image *d, bool finish)
{
	struct img_writer_opts opts = {.page_size = DS_PAGE};
	uint8_t *pages = malloc(DS_PAGES * DS_PAGE);
	struct img_writer *w;
	struct img_sink *s;

	assert_non_null(pages);
	imgtest_fill(d->seed, DS_ADDR, pages, DS_PAGES * DS_PAGE);
	d->fd = imgtest_memfd(NULL, 0);
	assert_true(d->fd >= 0);
	assert_int_equal(img_sink_fd_new(d->fd, &s), 0);
	assert_int_equal(img_writer_new(&opts, s, &w), 0);
	assert_int_equal(img_writer_begin(w, ds_meta, strlen(ds_meta)), 0);
	if (d->state_len)
		assert_int_equal(img_writer_devstate(w, d->state, d->state_len), 0);
	assert_int_equal(img_writer_pages(w, DS_ADDR, DS_PAGES, pages), 0);
	assert_int_equal(img_writer_zero(w, DS_ADDR + DS_PAGES * DS_PAGE, 4), 0);
	if (finish)
		assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	img_sink_free(s);
	free(pages);
}

static void ds_free(struct ds_image *d)
{
	close(d->fd);
	free(d->state);
}

static struct img_summary ds_verify(int fd)
{
	struct img_summary s;

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(img_verify_fd(fd, &s, NULL), 0);
	return s;
}

/* Opens fd for random access and returns img_reader_devstate()'s result, checking the bytes. */
static int ds_read_state(int fd, const struct ds_image *d)
{
	struct img_reader *r;
	struct img_error err;
	void *buf = NULL;
	size_t len = 0;
	int k;

	assert_int_equal(img_reader_open(fd, &r, &err), 0);
	k = img_reader_devstate(r, &buf, &len);
	if (k == 0) {
		assert_int_equal(len, d->state_len);
		assert_memory_equal(buf, d->state, len);
	}
	free(buf);
	img_reader_free(r);
	return k;
}

static void test_devstate_roundtrip(void **state)
{
	struct ds_image d;
	struct img_summary s;
	struct img_reader *r;
	struct img_error err;
	const struct img_index_entry *idx;
	uint8_t page[DS_PAGE], want[DS_PAGE];

	(void)state;
	ds_fill(&d, DS_LEN);
	ds_write(&d, true);
	s = ds_verify(d.fd);
	assert_int_equal(s.status, IMG_COMPLETE);
	assert_int_equal(s.header.version_minor, IMG_VERSION_MINOR);
	assert_int_equal(s.devstate_frames, 3);
	assert_int_equal(s.devstate_bytes, DS_LEN);
	assert_int_equal(s.data_pages, DS_PAGES);
	assert_int_equal(ds_read_state(d.fd, &d), 0);
	/* Not in the index, and the pages read as before. */
	assert_int_equal(img_reader_open(d.fd, &r, &err), 0);
	assert_int_equal(img_reader_index(r, &idx), 2);
	assert_int_equal(img_reader_read(r, DS_ADDR + DS_PAGE, page, DS_PAGE, &err), 0);
	imgtest_fill(d.seed, DS_ADDR + DS_PAGE, want, DS_PAGE);
	assert_memory_equal(page, want, DS_PAGE);
	img_reader_free(r);
	ds_free(&d);
}

static void test_devstate_small_and_none(void **state)
{
	struct ds_image d;

	(void)state;
	ds_fill(&d, 1);
	ds_write(&d, true);
	assert_int_equal(ds_verify(d.fd).devstate_frames, 1);
	assert_int_equal(ds_read_state(d.fd, &d), 0);
	ds_free(&d);

	ds_fill(&d, 0);
	ds_write(&d, true);
	assert_int_equal(ds_verify(d.fd).devstate_frames, 0);
	assert_int_equal(ds_read_state(d.fd, &d), -ENOENT);
	ds_free(&d);
}

/* The writer takes the device state once, right after META, never empty. */
static void test_devstate_writer_position(void **state)
{
	struct img_writer_opts opts = {.page_size = DS_PAGE};
	static const uint8_t data[16];
	struct img_writer *w;
	struct img_sink *s;
	int fd = imgtest_memfd(NULL, 0);

	(void)state;
	assert_int_equal(img_sink_fd_new(fd, &s), 0);
	assert_int_equal(img_writer_new(&opts, s, &w), 0);
	assert_int_equal(img_writer_devstate(w, data, sizeof(data)), -EINVAL); /* before begin */
	assert_int_equal(img_writer_begin(w, ds_meta, strlen(ds_meta)), 0);
	assert_int_equal(img_writer_devstate(w, data, 0), -EINVAL);
	assert_int_equal(img_writer_devstate(w, data, sizeof(data)), 0);
	assert_int_equal(img_writer_devstate(w, data, sizeof(data)), -EINVAL); /* twice */
	assert_int_equal(img_writer_zero(w, DS_ADDR, 1), 0);
	assert_int_equal(img_writer_finish(w), 0);
	assert_int_equal(img_writer_devstate(w, data, sizeof(data)), -EINVAL); /* after finish */
	img_writer_free(w);
	img_sink_free(s);
	close(fd);

	fd = imgtest_memfd(NULL, 0);
	assert_int_equal(img_sink_fd_new(fd, &s), 0);
	assert_int_equal(img_writer_new(&opts, s, &w), 0);
	assert_int_equal(img_writer_begin(w, ds_meta, strlen(ds_meta)), 0);
	assert_int_equal(img_writer_zero(w, DS_ADDR, 1), 0);
	assert_int_equal(img_writer_devstate(w, data, sizeof(data)), -EINVAL); /* after a frame */
	img_writer_free(w);
	img_sink_free(s);
	close(fd);
}

/* Appends a well-formed DEVSTATE frame (seq in order, checksums right) after the frames so far. */
static void ds_append_frame(int fd, uint64_t seq, uint16_t flags)
{
	static const uint8_t payload[8] = "devstate";
	struct img_frame f = {.type = IMG_FRAME_DEVSTATE,
			      .flags = flags,
			      .seq = seq,
			      .payload_len = sizeof(payload),
			      .payload_crc = img_crc32c(0, payload, sizeof(payload))};
	uint8_t hdr[IMG_FRAME_HEADER_SIZE];
	off_t end = lseek(fd, 0, SEEK_END);

	img_frame_encode(&f, hdr);
	assert_int_equal(pwrite(fd, hdr, sizeof(hdr), end), sizeof(hdr));
	assert_int_equal(pwrite(fd, payload, sizeof(payload), end + sizeof(hdr)), sizeof(payload));
}

/* Anywhere but right after META (or another DEVSTATE frame) a DEVSTATE frame is corrupt. */
static void test_devstate_reader_position(void **state)
{
	struct ds_image d;
	struct img_summary s;

	(void)state;
	ds_fill(&d, 0);
	ds_write(&d, false); /* META, PAGES, ZERO: seq 0..2 */
	ds_append_frame(d.fd, 3, IMG_FRAME_F_OPTIONAL);
	s = ds_verify(d.fd);
	assert_int_equal(s.status, IMG_CORRUPT);
	assert_non_null(strstr(s.error.msg, "devstate frame after a zero frame"));
	assert_int_equal(ds_read_state(d.fd, &d), -ENOENT);
	ds_free(&d);

	/* Without the OPTIONAL flag it is not a DEVSTATE frame as 1.1 defines it. */
	ds_fill(&d, 0);
	ds_write(&d, false);
	assert_int_equal(ftruncate(d.fd, IMG_HEADER_SIZE + IMG_FRAME_HEADER_SIZE + strlen(ds_meta)),
			 0);
	ds_append_frame(d.fd, 1, 0);
	s = ds_verify(d.fd);
	assert_int_equal(s.status, IMG_CORRUPT);
	assert_non_null(strstr(s.error.msg, "invalid devstate frame"));
	ds_free(&d);
}

/* Cut anywhere inside the device state, or right after it: incomplete, state unreadable. */
static void test_devstate_truncated(void **state)
{
	const uint64_t meta_end = IMG_HEADER_SIZE + IMG_FRAME_HEADER_SIZE + strlen(ds_meta);
	const uint64_t ds_end = meta_end + 3 * IMG_FRAME_HEADER_SIZE + DS_LEN;
	const uint64_t cuts[] = {meta_end + 1,
				 meta_end + 47,
				 meta_end + 48,
				 meta_end + 1000,
				 meta_end + IMG_FRAME_HEADER_SIZE + (1u << 20),
				 ds_end - 1,
				 ds_end};
	struct ds_image d;

	(void)state;
	ds_fill(&d, DS_LEN);
	ds_write(&d, true);
	for (size_t i = sizeof(cuts) / sizeof(cuts[0]); i-- > 0;) { /* shorter each time */
		struct img_summary s;

		assert_int_equal(ftruncate(d.fd, cuts[i]), 0);
		s = ds_verify(d.fd);
		if (s.status != IMG_INCOMPLETE)
			print_error("cut at %llu: %s\n", (unsigned long long)cuts[i], s.error.msg);
		assert_int_equal(s.status, IMG_INCOMPLETE);
		assert_int_equal(ds_read_state(d.fd, &d), -ENODATA);
	}
	ds_free(&d);

	/* Once a frame follows it, the device state is whole even in an incomplete image. */
	ds_fill(&d, DS_LEN);
	ds_write(&d, false);
	assert_int_equal(ds_verify(d.fd).status, IMG_INCOMPLETE);
	assert_int_equal(ds_read_state(d.fd, &d), 0);
	ds_free(&d);
}

static void test_devstate_corrupt_payload(void **state)
{
	const uint64_t meta_end = IMG_HEADER_SIZE + IMG_FRAME_HEADER_SIZE + strlen(ds_meta);
	struct ds_image d;
	uint8_t b;

	(void)state;
	ds_fill(&d, DS_LEN);
	ds_write(&d, true);
	assert_int_equal(pread(d.fd, &b, 1, meta_end + IMG_FRAME_HEADER_SIZE + 5), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(d.fd, &b, 1, meta_end + IMG_FRAME_HEADER_SIZE + 5), 1);
	assert_int_equal(ds_verify(d.fd).status, IMG_CORRUPT);
	assert_int_equal(ds_read_state(d.fd, &d), -EBADMSG);
	ds_free(&d);
}

/* An image written by the 1.0 writer (committed bytes) still verifies and reads. */
static void test_devstate_v1_0_image(void **state)
{
	struct img_summary s;
	struct img_reader *r;
	struct img_error err;
	void *buf;
	size_t len;
	int fd = open(UFFSNAP_TEST_DATA "/img-1.0.img", O_RDONLY | O_CLOEXEC);

	(void)state;
	assert_true(fd >= 0);
	s = ds_verify(fd);
	assert_int_equal(s.status, IMG_COMPLETE);
	assert_int_equal(s.header.version_minor, 0);
	assert_true(s.data_pages > 0);
	assert_int_equal(img_reader_open(fd, &r, &err), 0);
	assert_int_equal(img_reader_devstate(r, &buf, &len), -ENOENT);
	img_reader_free(r);
	close(fd);
}

/*
 * An image written by the 1.1 writer (committed bytes, written at f2787d0 before 1.2 existed):
 * META with a guest member, 100 bytes of device state, PAGES 0x10000 (3 pages), ZERO 0x13000
 * (2), an EVENT, DISCARDED 0x20000 (1), a PROGRESS, PAGES 0x30000 (1); page and device state
 * bytes are imgtest_fill(0x11, address), the device state's from address 0.
 */
static void test_devstate_v1_1_image(void **state)
{
	static const uint64_t data[] = {0x10000, 0x11000, 0x12000, 0x30000};
	uint8_t page[DS_PAGE], want[DS_PAGE], ds[100];
	const struct img_index_entry *idx;
	struct img_summary s;
	struct img_reader *r;
	struct img_error err;
	char *meta = NULL;
	void *buf;
	size_t len;
	int fd = open(UFFSNAP_TEST_DATA "/img-1.1.img", O_RDONLY | O_CLOEXEC);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(img_verify_fd(fd, &s, &meta), 0);
	assert_int_equal(s.status, IMG_COMPLETE);
	assert_int_equal(s.header.version_minor, 1);
	assert_int_equal(s.header.flags, 0);
	assert_int_equal(s.data_pages, 4);
	assert_int_equal(s.zero_pages, 2);
	assert_int_equal(s.discarded_pages, 1);
	assert_int_equal(s.unmapped_pages + s.superseded_pages, 0);
	assert_int_equal(s.metas, 1);
	assert_int_equal(s.devstate_bytes, 100);
	assert_non_null(strstr(meta, "\"pid\":11"));
	assert_int_equal(img_reader_open(fd, &r, &err), 0);
	assert_true(img_reader_complete(r));
	assert_string_equal(img_reader_meta(r), meta);
	assert_int_equal(img_reader_index(r, &idx), 4);
	for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++) {
		assert_int_equal(img_reader_read(r, data[i], page, DS_PAGE, &err), 0);
		imgtest_fill(0x11, data[i], want, DS_PAGE);
		assert_memory_equal(page, want, DS_PAGE);
	}
	memset(want, 0, DS_PAGE);
	assert_int_equal(img_reader_read(r, 0x14000, page, DS_PAGE, &err), 0);
	assert_memory_equal(page, want, DS_PAGE);
	assert_int_equal(img_reader_read(r, 0x20000, page, 1, &err), -ESTALE);
	assert_int_equal(img_reader_read(r, 0x15000, page, 1, &err), -ENOENT);
	assert_int_equal(img_reader_devstate(r, &buf, &len), 0);
	imgtest_fill(0x11, 0, ds, sizeof(ds));
	assert_int_equal(len, sizeof(ds));
	assert_memory_equal(buf, ds, sizeof(ds));
	free(buf);
	free(meta);
	img_reader_free(r);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_devstate_roundtrip),
	    cmocka_unit_test(test_devstate_small_and_none),
	    cmocka_unit_test(test_devstate_writer_position),
	    cmocka_unit_test(test_devstate_reader_position),
	    cmocka_unit_test(test_devstate_truncated),
	    cmocka_unit_test(test_devstate_corrupt_payload),
	    cmocka_unit_test(test_devstate_v1_0_image),
	    cmocka_unit_test(test_devstate_v1_1_image),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
