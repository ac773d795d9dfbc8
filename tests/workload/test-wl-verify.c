/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the checker's arithmetic on synthetic regions (no process): a model fills the
 * regions the way the workload would at some instant, each test breaks one thing and expects
 * the verdict to change for exactly that reason.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <uffsnap/image.h>

#include "wl-check.h"

#define PS    4096u
#define PAGES 4u
#define RECS  8u /* S = 32; pages hold bytes past the records, which must stay zero */

struct model {
	uint32_t n;
	struct wl_geometry geo;
	uint8_t *mem[WL_MAX_THREADS]; /* header page + data pages */
	uint8_t state[WL_MAX_THREADS][PAGES];
	struct wl_view views[WL_MAX_THREADS];
	char first[400];
	unsigned lines;
};

static void model_report(void *userdata, const char *line)
{
	struct model *m = userdata;

	if (!m->lines++)
		snprintf(m->first, sizeof(m->first), "%s", line);
	print_message("  report: %s\n", line);
}

static uint8_t *slot_ptr(struct model *m, uint32_t t, uint64_t s)
{
	return m->mem[t] + PS + wl_slot_offset(&m->geo, wl_slot_of_store(&m->geo, s));
}

/* The seen value the model gives thread t's store s: monotone, and <= the neighbour's k. */
static uint64_t model_seen(uint64_t s, uint64_t nb_k)
{
	return s / 2 < nb_k ? s / 2 : nb_k;
}

/* Thread t made k[t] stores and published counter[t]. */
static void model_fill(struct model *m, uint32_t n, const uint64_t *k, const uint64_t *counter)
{
	uint64_t slots;

	memset(m, 0, sizeof(*m));
	m->n = n;
	m->geo = (struct wl_geometry){PS, PAGES, RECS};
	slots = wl_slots(&m->geo);
	for (uint32_t t = 0; t < n; t++) {
		struct wl_header h = {WL_HEADER_MAGIC, t, n, PAGES, RECS, PS};
		uint64_t nb = counter[(t + 1) % n];

		m->mem[t] = calloc(PAGES + 1, PS);
		assert_non_null(m->mem[t]);
		memcpy(m->mem[t], &h, sizeof(h));
		memcpy(m->mem[t] + WL_COUNTER_OFFSET, &counter[t], 8);
		for (uint64_t s = k[t] > slots ? k[t] - slots + 1 : 1; s <= k[t]; s++) {
			struct wl_record r = {wl_tag(t, s), n == 1 ? s - 1 : model_seen(s, nb)};

			memcpy(slot_ptr(m, t, s), &r, sizeof(r));
		}
		m->views[t] = (struct wl_view){.thread = t, .geo = m->geo,
					       .header_addr = 0x100000 * (t + 1),
					       .data_addr = 0x100000 * (t + 1) + PS,
					       .header = m->mem[t], .data = m->mem[t] + PS,
					       .page_state = m->state[t]};
	}
}

static void model_free(struct model *m)
{
	for (uint32_t t = 0; t < m->n; t++)
		free(m->mem[t]);
}

static struct wl_verify_result model_verify(struct model *m, struct wl_verify_opts o)
{
	struct wl_verify_result res;

	o.report = model_report;
	o.userdata = m;
	m->lines = 0;
	m->first[0] = '\0';
	assert_int_equal(wl_verify(m->views, m->n, &o, &res), 0);
	return res;
}

static void test_slot_arithmetic(void **state)
{
	struct wl_geometry g = {PS, PAGES, RECS};
	uint32_t t;
	uint64_t s;

	assert_int_equal(wl_slot_of_store(&g, 1), 0);
	assert_int_equal(wl_slot_of_store(&g, 33), 0);
	/* slot 5 = page 1, record 1 */
	assert_int_equal(wl_slot_offset(&g, 5), PS + 16);
	assert_int_equal(wl_latest_store(&g, 5, 5), 0);
	assert_int_equal(wl_latest_store(&g, 5, 6), 6);
	assert_int_equal(wl_latest_store(&g, 5, 37), 6);
	assert_int_equal(wl_latest_store(&g, 5, 38), 38);
	assert_true(wl_tag_decode(wl_tag(63, 123456789), &t, &s));
	assert_int_equal(t, 63);
	assert_int_equal(s, 123456789);
	assert_false(wl_tag_decode(0, &t, &s));
	assert_false(wl_tag_decode(wl_tag(1, 0), &t, &s));
}

static void test_consistent(void **state)
{
	static const uint64_t cases[][4] = {{0, 0, 0, 0}, {3, 0, 17, 31}, {32, 33, 100, 1000}};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t cnt[4];
		struct model m;
		struct wl_verify_result res;

		for (int t = 0; t < 4; t++)
			cnt[t] = cases[i][t] && t % 2 ? cases[i][t] - 1 : cases[i][t];
		model_fill(&m, 4, cases[i], cnt);
		res = model_verify(&m, (struct wl_verify_opts){0});
		assert_true(res.consistent);
		for (int t = 0; t < 4; t++)
			assert_int_equal(res.k[t], cases[i][t]);
		model_free(&m);
	}
}

static void test_counter(void **state)
{
	uint64_t k[2] = {100, 50}, cnt[2] = {98, 50};
	struct model m;
	struct wl_verify_result res;

	model_fill(&m, 2, k, cnt);
	res = model_verify(&m, (struct wl_verify_opts){0});
	assert_false(res.consistent);
	assert_non_null(strstr(m.first, "counter"));
	model_free(&m);

	cnt[0] = 99;
	model_fill(&m, 2, k, cnt);
	assert_true(model_verify(&m, (struct wl_verify_opts){0}).consistent);
	/* Threads stopped between stores: the counter must be exact. */
	assert_false(model_verify(&m, (struct wl_verify_opts){.exact_counter = true}).consistent);
	model_free(&m);
}

static void test_stale_slot(void **state)
{
	uint64_t k[2] = {100, 80}, cnt[2] = {100, 80};
	struct wl_record old = {wl_tag(0, 90 - 32), 0};
	struct model m;
	struct wl_verify_result res;

	model_fill(&m, 2, k, cnt);
	memcpy(slot_ptr(&m, 0, 90), &old, sizeof(old));
	res = model_verify(&m, (struct wl_verify_opts){0});
	assert_false(res.consistent);
	assert_int_equal(res.problems, 1);
	assert_non_null(strstr(m.first, "expected store 90"));
	assert_non_null(strstr(m.first, "found store 58"));
	model_free(&m);
}

/* Page 0 read early, the rest late: what a dumper racing a running process produces. */
static void test_torn(void **state)
{
	uint64_t k[1] = {200}, cnt[1] = {200}, early[1] = {150}, ecnt[1] = {150};
	struct model m, e;

	model_fill(&m, 1, k, cnt);
	model_fill(&e, 1, early, ecnt);
	memcpy(m.mem[0] + PS, e.mem[0] + PS, PS);
	assert_false(model_verify(&m, (struct wl_verify_opts){0}).consistent);
	model_free(&m);
	model_free(&e);
}

static void test_seen(void **state)
{
	uint64_t k[2] = {60, 60}, cnt[2] = {60, 60};
	struct wl_record r;
	struct model m;

	model_fill(&m, 2, k, cnt);
	/* Store 50 claims to have seen more than store 51 did: not monotone. */
	memcpy(&r, slot_ptr(&m, 0, 50), sizeof(r));
	r.seen = 40;
	memcpy(slot_ptr(&m, 0, 50), &r, sizeof(r));
	assert_false(model_verify(&m, (struct wl_verify_opts){0}).consistent);
	assert_non_null(strstr(m.first, "less than seen"));
	model_free(&m);

	/* Thread 0's newest store saw thread 1 at 61: the image must hold thread 1 at >= 61. */
	model_fill(&m, 2, k, cnt);
	memcpy(&r, slot_ptr(&m, 0, 60), sizeof(r));
	r.seen = 61;
	memcpy(slot_ptr(&m, 0, 60), &r, sizeof(r));
	assert_false(model_verify(&m, (struct wl_verify_opts){0}).consistent);
	assert_non_null(strstr(m.first, "saw thread 1 at store 61"));
	model_free(&m);
}

static void test_single_thread_seen(void **state)
{
	uint64_t k[1] = {40}, cnt[1] = {40};
	struct wl_record r;
	struct model m;

	model_fill(&m, 1, k, cnt);
	assert_true(model_verify(&m, (struct wl_verify_opts){0}).consistent);
	memcpy(&r, slot_ptr(&m, 0, 39), sizeof(r));
	r.seen = 37;
	memcpy(slot_ptr(&m, 0, 39), &r, sizeof(r));
	assert_false(model_verify(&m, (struct wl_verify_opts){0}).consistent);
	model_free(&m);
}

static void test_foreign_bytes(void **state)
{
	uint64_t k[2] = {10, 10}, cnt[2] = {10, 10};
	struct wl_record r = {wl_tag(1, 1), 0};
	struct model m;

	model_fill(&m, 2, k, cnt);
	m.mem[1][PS + 3 * PS + RECS * 16 + 5] = 1; /* past the records of page 3 */
	assert_false(model_verify(&m, (struct wl_verify_opts){0}).consistent);
	model_free(&m);

	model_fill(&m, 2, k, cnt);
	m.mem[0][200] = 1; /* header page, never written */
	assert_false(model_verify(&m, (struct wl_verify_opts){0}).consistent);
	model_free(&m);

	model_fill(&m, 2, k, cnt);
	memcpy(slot_ptr(&m, 0, 1), &r, sizeof(r)); /* thread 1's record in thread 0's slot */
	assert_false(model_verify(&m, (struct wl_verify_opts){0}).consistent);
	assert_non_null(strstr(m.first, "of thread 1"));
	model_free(&m);
}

static void test_discarded(void **state)
{
	uint64_t k[2] = {100, 100}, cnt[2] = {100, 100};
	struct wl_verify_result res;
	struct model m;

	model_fill(&m, 2, k, cnt);
	m.state[0][2] = WL_PAGE_DISCARDED;
	memset(m.mem[0] + PS + 2 * PS, 0, PS);
	res = model_verify(&m, (struct wl_verify_opts){0});
	assert_false(res.consistent);
	assert_int_equal(res.discarded_pages, 1);
	assert_non_null(strstr(m.first, "discarded"));
	res = model_verify(&m, (struct wl_verify_opts){.allow_discarded = true});
	assert_true(res.consistent);
	assert_int_equal(res.discarded_pages, 1);
	/* Stores 99 and 100 land on pages 2 and 3: with both gone the counter still says 100. */
	m.state[0][3] = WL_PAGE_DISCARDED;
	res = model_verify(&m, (struct wl_verify_opts){.allow_discarded = true});
	assert_true(res.consistent);
	assert_int_equal(res.k[0], 100);
	m.state[1][0] = WL_PAGE_MISSING;
	res = model_verify(&m, (struct wl_verify_opts){.allow_discarded = true});
	assert_false(res.consistent);
	assert_int_equal(res.missing_pages, 1);
	model_free(&m);
}

/* Store 1024 (a multiple of 8) in flight in read(2): its slot may mix old and new bytes. */
static void test_kernel_store_in_flight(void **state)
{
	uint64_t k[1] = {1023}, cnt[1] = {1023};
	struct wl_verify_opts ks = {.kernel_store_every = 8};
	uint64_t oldtag = wl_tag(0, 992), newtag = wl_tag(0, 1024), mixed;
	struct wl_record r;
	struct model m;

	/* New low byte, old byte 1: reads as store 768, which maps to the same slot. */
	mixed = (newtag & 0xff) | (oldtag & ~0xffULL);
	assert_int_equal(mixed & WL_TAG_STORE_MASK, 768);
	model_fill(&m, 1, k, cnt);
	r = (struct wl_record){mixed, 0x1234};
	memcpy(slot_ptr(&m, 0, 1024), &r, sizeof(r));
	assert_true(model_verify(&m, ks).consistent);
	assert_false(model_verify(&m, (struct wl_verify_opts){0}).consistent);
	/* A byte that is neither the old nor the new tag's is not a half-done copy. */
	r.tag = mixed ^ 0x10000;
	memcpy(slot_ptr(&m, 0, 1024), &r, sizeof(r));
	assert_false(model_verify(&m, ks).consistent);
	/* The whole new tag with a half-copied seen: store 1024 counts, its seen is not judged. */
	r = (struct wl_record){newtag, 999999};
	memcpy(slot_ptr(&m, 0, 1024), &r, sizeof(r));
	assert_true(model_verify(&m, ks).consistent);
	model_free(&m);
}

static void test_layout_parse(void **state)
{
	static const char good[] =
		"{\"pid\":1,\"page_size\":4096,\"kind\":\"anon\",\"threads\":1,"
		"\"regions\":[{\"thread\":0,\"addr\":\"0x11000\",\"header\":\"0x10000\","
		"\"counter\":\"0x10040\",\"pages\":4,\"records_per_page\":8}],"
		"\"scratch\":[{\"event\":\"munmap\",\"pages\":32}]}";
	static const char *const bad[] = {
		"{", "{\"page_size\":4096,\"kind\":\"anon\",\"threads\":2,\"regions\":[]}",
		"{\"page_size\":4096,\"kind\":\"anon\",\"threads\":1,\"regions\":[{\"thread\":0,"
		"\"addr\":\"0x11000\",\"counter\":\"0x10048\",\"pages\":4,\"records_per_page\":8}]}",
		"{\"page_size\":4096,\"kind\":\"anon\",\"threads\":1,\"regions\":[{\"thread\":0,"
		"\"addr\":\"0x11000\",\"counter\":\"0x10040\",\"pages\":4,\"records_per_page\":257}]}",
	};
	struct wl_layout l;
	char err[200];

	assert_int_equal(wl_layout_parse(good, strlen(good), &l, err, sizeof(err)), 0);
	assert_int_equal(l.regions[0].header, 0x10000);
	assert_int_equal(l.regions[0].records, 8);
	assert_int_equal(l.nscratch, 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(wl_layout_parse(bad[i], strlen(bad[i]), &l, err, sizeof(err)),
				 -EINVAL);
		print_message("  rejected: %s\n", err);
	}
}

/* Through a real image: pages, zero extents, a discarded extent, a page left out. */
static int write_image(int fd, struct model *m, bool discard, bool leave_out)
{
	struct img_writer_opts o = {.page_size = PS};
	struct img_sink *sink = NULL;
	struct img_writer *w = NULL;
	int r = img_sink_fd_new(fd, &sink);

	if (r >= 0)
		r = img_writer_new(&o, sink, &w);
	if (r >= 0)
		r = img_writer_begin(w, "{}", 2);
	for (uint32_t t = 0; r >= 0 && t < m->n; t++) {
		uint64_t base = m->views[t].header_addr;

		r = img_writer_pages(w, base, PAGES - 1, m->mem[t]);
		if (r >= 0 && discard && t == 1)
			r = img_writer_discarded(w, base + (PAGES - 1) * PS, 2);
		else if (r >= 0 && !(leave_out && t == 1))
			r = img_writer_pages(w, base + (PAGES - 1) * PS, 2,
					     m->mem[t] + (PAGES - 1) * PS);
	}
	if (r >= 0)
		r = img_writer_finish(w);
	img_writer_free(w);
	img_sink_free(sink);
	return r;
}

static struct wl_layout model_layout(struct model *m)
{
	struct wl_layout l = {.page_size = PS, .nthreads = m->n};

	for (uint32_t t = 0; t < m->n; t++)
		l.regions[t] = (struct wl_layout_region){t, m->views[t].data_addr,
							 m->views[t].header_addr,
							 m->views[t].header_addr + WL_COUNTER_OFFSET,
							 PAGES, RECS};
	return l;
}

static void check_image_case(struct model *m, bool discard, bool leave_out, bool allow,
			     bool want)
{
	struct wl_check_opts o = {.allow_discarded = allow, .report = model_report, .userdata = m};
	struct wl_layout l = model_layout(m);
	struct wl_verify_result res;
	struct img_reader *r = NULL;
	struct img_error err;
	FILE *f = tmpfile();

	assert_non_null(f);
	assert_int_equal(write_image(fileno(f), m, discard, leave_out), 0);
	assert_int_equal(img_reader_open(fileno(f), &r, &err), 0);
	assert_int_equal(wl_check_image(r, &l, &o, &res), 0);
	assert_int_equal(res.consistent, want);
	assert_int_equal(res.discarded_pages, discard ? 2 : 0);
	assert_int_equal(res.missing_pages, leave_out ? 2 : 0);
	img_reader_free(r);
	fclose(f);
}

static void test_image(void **state)
{
	uint64_t k[2] = {1000, 0}, cnt[2] = {999, 0};
	struct model m;

	model_fill(&m, 2, k, cnt);
	check_image_case(&m, false, false, false, true);
	check_image_case(&m, true, false, false, false);
	check_image_case(&m, true, false, true, true);
	check_image_case(&m, false, true, true, false);
	model_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_arithmetic),
		cmocka_unit_test(test_consistent),
		cmocka_unit_test(test_counter),
		cmocka_unit_test(test_stale_slot),
		cmocka_unit_test(test_torn),
		cmocka_unit_test(test_seen),
		cmocka_unit_test(test_single_thread_seen),
		cmocka_unit_test(test_foreign_bytes),
		cmocka_unit_test(test_discarded),
		cmocka_unit_test(test_kernel_store_in_flight),
		cmocka_unit_test(test_layout_parse),
		cmocka_unit_test(test_image),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
