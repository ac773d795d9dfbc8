/* SPDX-License-Identifier: MIT */
/*
 * Round trip through the format: random extents (data, zero, discarded) at random addresses,
 * written in random order from four threads, must verify as COMPLETE with the right counts and
 * read back exactly -- whole extents, random sub-ranges, holes and discarded pages -- both from a
 * file and verified as a stream through a pipe while it is being written.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "img-test-util.h"

#define RT_PAGE	       4096u
#define RT_THREADS     4
#define RT_EXTENTS     160
#define RT_FRAME_PAGES 16 /* small, so that long runs are split into several frames */
#define RT_SUBRANGES   3000

static const char rt_meta[] = "{\"format\":\"uffsnap\",\"version\":1,\"target\":{\"pid\":1}}";
static const char rt_event[] = "{\"event\":\"fork\",\"child\":2}";

struct rt_model {
	uint64_t seed;
	struct imgtest_extent ext[RT_EXTENTS]; /* sorted by address */
	size_t order[RT_EXTENTS];	       /* the order they are written in */
	uint64_t pages[5];		       /* by frame type */
};

/* Random extents, sorted and disjoint; gaps of 0 pages make adjacent extents of other types. */
static void rt_model_init(struct rt_model *m, uint64_t seed)
{
	struct imgtest_rng rng = {seed};
	uint64_t addr = 0x7f0000000000ull + imgtest_below(&rng, 1u << 20) * RT_PAGE;

	memset(m, 0, sizeof(*m));
	m->seed = seed;
	for (size_t i = 0; i < RT_EXTENTS; i++) {
		struct imgtest_extent *e = &m->ext[i];
		uint64_t kind = imgtest_below(&rng, 10);

		addr += (imgtest_below(&rng, 3) ? imgtest_below(&rng, 6) : 0) * RT_PAGE;
		e->addr = addr;
		e->npages = 1 + (imgtest_below(&rng, 8) ? imgtest_below(&rng, 12)
							: imgtest_below(&rng, 100));
		e->type = kind < 7   ? IMG_FRAME_PAGES
			  : kind < 9 ? IMG_FRAME_ZERO
				     : IMG_FRAME_DISCARDED;
		m->pages[e->type] += e->npages;
		addr += e->npages * RT_PAGE;
		m->order[i] = i;
	}
	for (size_t i = RT_EXTENTS - 1; i > 0; i--) {
		size_t j = imgtest_below(&rng, i + 1), t = m->order[i];

		m->order[i] = m->order[j];
		m->order[j] = t;
	}
}

struct rt_thread {
	pthread_t thread;
	int index;
	const struct rt_model *m;
	struct img_writer *w;
	int result;
};

/* PAGES through img_writer_pagesv with the data cut at an odd place into two iovecs. */
static int rt_write_pagesv(struct img_writer *w, uint64_t seed, const struct imgtest_extent *e)
{
	size_t len = e->npages * RT_PAGE, cut = len / 3 + 1;
	uint8_t *buf = malloc(len);
	struct iovec iov[2] = {{buf, cut}, {buf + cut, len - cut}};
	int r;

	if (!buf)
		return -ENOMEM;
	imgtest_fill(seed, e->addr, buf, len);
	r = img_writer_pagesv(w, e->addr, e->npages, iov, 2);
	free(buf);
	return r;
}

static void *rt_thread_main(void *arg)
{
	struct rt_thread *t = arg;
	struct img_progress p = {.pages_done = 5, .pages_total = 10, .elapsed_ns = 7};
	int r = 0;

	for (size_t i = t->index; r >= 0 && i < RT_EXTENTS; i += RT_THREADS) {
		const struct imgtest_extent *e = &t->m->ext[t->m->order[i]];

		if (e->type == IMG_FRAME_PAGES && i % 2)
			r = rt_write_pagesv(t->w, t->m->seed, e);
		else
			r = imgtest_write_extent(t->w, t->m->seed, RT_PAGE, e);
		if (r >= 0 && t->index == 0 && i == RT_EXTENTS / 2)
			r = img_writer_progress(t->w, &p);
		if (r >= 0 && t->index == 1 && i == RT_EXTENTS / 3)
			r = img_writer_event(t->w, rt_event, strlen(rt_event));
	}
	t->result = r;
	return NULL;
}

/* Writes the model's image to fd from RT_THREADS threads; returns the writer's stats. */
static void rt_write(const struct rt_model *m, int fd, struct img_writer_stats *ret_stats)
{
	struct img_writer_opts opts = {.page_size = RT_PAGE, .max_frame_pages = RT_FRAME_PAGES};
	struct rt_thread t[RT_THREADS];
	struct img_writer *w = NULL;
	struct img_sink *sink = NULL;

	assert_int_equal(img_sink_fd_new(fd, &sink), 0);
	assert_int_equal(img_writer_new(&opts, sink, &w), 0);
	assert_int_equal(img_writer_begin(w, rt_meta, strlen(rt_meta)), 0);
	for (int i = 0; i < RT_THREADS; i++) {
		t[i] = (struct rt_thread){.index = i, .m = m, .w = w};
		assert_int_equal(pthread_create(&t[i].thread, NULL, rt_thread_main, &t[i]), 0);
	}
	for (int i = 0; i < RT_THREADS; i++) {
		pthread_join(t[i].thread, NULL);
		assert_int_equal(t[i].result, 0);
	}
	assert_int_equal(img_writer_finish(w), 0);
	img_writer_get_stats(w, ret_stats);
	img_writer_free(w);
	img_sink_free(sink);
}

static void rt_check_summary(const struct rt_model *m, const struct img_summary *s,
			     const struct img_writer_stats *st)
{
	assert_int_equal(s->status, IMG_COMPLETE);
	assert_int_equal(s->header.page_size, RT_PAGE);
	assert_int_equal(s->header.version_major, IMG_VERSION_MAJOR);
	assert_int_equal(s->data_pages, m->pages[IMG_FRAME_PAGES]);
	assert_int_equal(s->zero_pages, m->pages[IMG_FRAME_ZERO]);
	assert_int_equal(s->discarded_pages, m->pages[IMG_FRAME_DISCARDED]);
	assert_int_equal(s->progress_marks, 1);
	assert_int_equal(s->events, 1);
	assert_int_equal(s->frames, st->frames);
	assert_int_equal(st->data_pages, m->pages[IMG_FRAME_PAGES]);
}

/* Reads [addr, addr + len) and compares result and bytes with the model. */
static void rt_check_range(const struct rt_model *m, struct img_reader *r, uint64_t addr,
			   size_t len)
{
	uint8_t *got = malloc(len), *want = malloc(len);
	struct img_error err = {0};
	int expect, k;

	assert_non_null(got);
	assert_non_null(want);
	expect = imgtest_expect(m->ext, RT_EXTENTS, RT_PAGE, m->seed, addr, want, len);
	k = img_reader_read(r, addr, got, len, &err);
	if (k != expect)
		fail_msg("read 0x%llx+%zu: %d, expected %d (%s)", (unsigned long long)addr, len, k,
			 expect, err.msg);
	if (expect == 0 && memcmp(got, want, len))
		fail_msg("read 0x%llx+%zu: wrong bytes", (unsigned long long)addr, len);
	free(got);
	free(want);
}

static void rt_check_index(const struct rt_model *m, struct img_reader *r)
{
	const struct img_index_entry *idx;
	size_t n = img_reader_index(r, &idx);
	uint64_t pages[5] = {0};

	assert_true(n >= RT_EXTENTS);
	for (size_t i = 0; i < n; i++) {
		assert_true(idx[i].type >= IMG_FRAME_PAGES && idx[i].type <= IMG_FRAME_DISCARDED);
		assert_true(idx[i].npages <= RT_FRAME_PAGES || idx[i].type != IMG_FRAME_PAGES);
		if (i)
			assert_true(idx[i - 1].addr + idx[i - 1].npages * RT_PAGE <= idx[i].addr);
		pages[idx[i].type] += idx[i].npages;
	}
	assert_memory_equal(pages, m->pages, sizeof(pages));
}

static void rt_check_reader(const struct rt_model *m, int fd)
{
	struct imgtest_rng rng = {m->seed ^ 0x5eed};
	const struct imgtest_extent *first = &m->ext[0], *last = &m->ext[RT_EXTENTS - 1];
	uint64_t lo = first->addr, hi = last->addr + last->npages * RT_PAGE;
	struct img_reader *r = NULL;
	struct img_error err = {0};

	assert_int_equal(img_reader_open(fd, &r, &err), 0);
	assert_true(img_reader_complete(r));
	assert_int_equal(img_reader_page_size(r), RT_PAGE);
	assert_string_equal(img_reader_meta(r), rt_meta);
	rt_check_index(m, r);
	for (size_t i = 0; i < RT_EXTENTS; i++) {
		const struct imgtest_extent *e = &m->ext[i];

		rt_check_range(m, r, e->addr, e->npages * RT_PAGE);
		rt_check_range(m, r, e->addr - 1, 1); /* before: hole or neighbour */
		rt_check_range(m, r, e->addr + e->npages * RT_PAGE, 1); /* after */
	}
	rt_check_range(m, r, lo - RT_PAGE, RT_PAGE);
	rt_check_range(m, r, hi, 10);
	for (int i = 0; i < RT_SUBRANGES; i++)
		rt_check_range(m, r, lo - 100 + imgtest_below(&rng, hi - lo + 200),
			       1 + imgtest_below(&rng, 5 * RT_PAGE));
	/* Reads that would wrap are refused, not performed. */
	assert_int_not_equal(img_reader_read(r, UINT64_MAX - 2, (uint8_t[8]){0}, 8, &err), 0);
	img_reader_free(r);
}

static void test_roundtrip_file(void **state)
{
	struct rt_model *m = malloc(sizeof(*m));
	struct img_writer_stats st;
	struct img_summary s;
	char *meta = NULL;
	int fd;

	assert_non_null(m);
	rt_model_init(m, imgtest_seed("roundtrip_file"));
	fd = imgtest_memfd(NULL, 0);
	assert_true(fd >= 0);
	rt_write(m, fd, &st);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(img_verify_fd(fd, &s, &meta), 0);
	rt_check_summary(m, &s, &st);
	assert_int_equal(s.valid_bytes, lseek(fd, 0, SEEK_END));
	assert_int_equal(s.valid_bytes, st.bytes + IMG_HEADER_SIZE + IMG_TRAILER_SIZE);
	assert_string_equal(meta, rt_meta);
	free(meta);
	rt_check_reader(m, fd);
	close(fd);
	free(m);
}

struct rt_verifier {
	pthread_t thread;
	int fd;
	struct img_summary sum;
	int result;
};

static void *rt_verifier_main(void *arg)
{
	struct rt_verifier *v = arg;

	v->result = img_verify_fd(v->fd, &v->sum, NULL);
	return NULL;
}

/* The writer streams into a pipe while img_verify_fd reads the other end, as a receiver would. */
static void test_roundtrip_pipe(void **state)
{
	struct rt_model *m = malloc(sizeof(*m));
	struct rt_verifier v = {0};
	struct img_writer_stats st;
	int p[2];

	assert_non_null(m);
	rt_model_init(m, imgtest_seed("roundtrip_pipe"));
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	v.fd = p[0];
	assert_int_equal(pthread_create(&v.thread, NULL, rt_verifier_main, &v), 0);
	rt_write(m, p[1], &st);
	close(p[1]);
	pthread_join(v.thread, NULL);
	close(p[0]);
	assert_int_equal(v.result, 0);
	rt_check_summary(m, &v.sum, &st);
	free(m);
}

/* Through a pipe again, but the writer stops before the index: INCOMPLETE, never COMPLETE. */
static void test_roundtrip_pipe_incomplete(void **state)
{
	struct imgtest_extent ext[3] = {
	    {0x10000, 2, IMG_FRAME_PAGES},
	    {0x20000, 1, IMG_FRAME_ZERO},
	    {0x30000, 1, IMG_FRAME_DISCARDED},
	};
	struct rt_verifier v = {0};
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	v.fd = p[0];
	assert_int_equal(pthread_create(&v.thread, NULL, rt_verifier_main, &v), 0);
	assert_int_equal(imgtest_write_image(p[1], RT_PAGE, 1, ext, 3, 0), 0);
	close(p[1]);
	pthread_join(v.thread, NULL);
	close(p[0]);
	assert_int_equal(v.result, 0);
	assert_int_equal(v.sum.status, IMG_INCOMPLETE);
	assert_int_equal(v.sum.data_pages, 2);
	assert_int_equal(v.sum.zero_pages, 1);
	assert_int_equal(v.sum.discarded_pages, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_file),
	    cmocka_unit_test(test_roundtrip_pipe),
	    cmocka_unit_test(test_roundtrip_pipe_incomplete),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
