/* SPDX-License-Identifier: MIT */
/* engine/pages.c: per-granule states of the tracked ranges, and the claim only one may win. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/pages.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct vma mk(uint64_t start, uint64_t end, enum vma_kind k, enum vma_plan p,
		     uint32_t granule)
{
	return (struct vma){.start = start, .end = end, .kind = k, .plan = p, .granule = granule};
}

/* Tracked: 16 pages of anon, 2 huge pages; not tracked: a copied and a referenced VMA. */
static void init(struct pages *p)
{
	struct vma v[] = {
	    mk(0x10000, 0x20000, VMA_ANON, VMA_PLAN_TRACK, 4096),
	    mk(0x20000, 0x30000, VMA_FILE_PRIVATE, VMA_PLAN_COPY, 4096),
	    mk(0x40000000, 0x40400000, VMA_HUGETLB, VMA_PLAN_TRACK, 2 << 20),
	    mk(0x50000000, 0x50001000, VMA_FILE_SHARED, VMA_PLAN_REFERENCE, 4096),
	};
	const struct vma_list l = {v, N(v)};

	assert_int_equal(pages_init(p, &l), 0);
}

static void test_init(void **state)
{
	struct pages p;

	init(&p);
	assert_int_equal(p.n, 2);
	assert_int_equal(p.total_granules, 16 + 2);
	assert_int_equal(p.r[0].start, 0x10000);
	assert_int_equal(p.r[0].end, 0x20000);
	assert_int_equal(p.r[1].granule, 2 << 20);
	assert_int_equal(p.r[1].kind, VMA_HUGETLB);
	for (size_t i = 0; i < 16; i++)
		assert_int_equal(pages_get(&p.r[0], i), PAGE_PROTECTED);
	pages_free(&p);
	assert_int_equal(p.n, 0);
	pages_free(&p); /* twice, and NULL */
	pages_free(NULL);
}

static void test_init_empty(void **state)
{
	const struct vma_list l = {0};
	struct pages p;

	assert_int_equal(pages_init(&p, &l), 0);
	assert_int_equal(p.n, 0);
	assert_int_equal(p.total_granules, 0);
	assert_null(pages_find(&p, 0x1000));
	pages_free(&p);
}

static void test_find_index(void **state)
{
	struct pages p;

	init(&p);
	assert_ptr_equal(pages_find(&p, 0x10000), &p.r[0]);
	assert_ptr_equal(pages_find(&p, 0x1ffff), &p.r[0]);
	assert_null(pages_find(&p, 0x20000)); /* the copied VMA is not tracked */
	assert_null(pages_find(&p, 0xffff));
	assert_ptr_equal(pages_find(&p, 0x403fffff), &p.r[1]);
	assert_null(pages_find(&p, 0x40400000));
	assert_null(pages_find(&p, 0x50000000));
	assert_int_equal(pages_index(&p.r[0], 0x10000), 0);
	assert_int_equal(pages_index(&p.r[0], 0x10fff), 0);
	assert_int_equal(pages_index(&p.r[0], 0x1f000), 15);
	assert_int_equal(pages_index(&p.r[1], 0x40200000), 1);
	assert_int_equal(pages_index(&p.r[1], 0x401fffff), 0);
	pages_free(&p);
}

static void test_claim(void **state)
{
	struct pages p;
	struct pages_range *r;

	init(&p);
	r = &p.r[0];
	assert_true(pages_claim(r, 3, PAGE_SAVED)); /* won */
	assert_false(pages_claim(r, 3, PAGE_SAVED)); /* lost: already saved */
	assert_false(pages_claim(r, 3, PAGE_DISCARDED));
	assert_int_equal(pages_get(r, 3), PAGE_SAVED);
	assert_true(pages_claim(r, 4, PAGE_DISCARDED));
	assert_false(pages_claim(r, 4, PAGE_SAVED)); /* a discarded page is never saved */
	assert_int_equal(pages_get(r, 4), PAGE_DISCARDED);
	for (size_t i = 0; i < 16; i++) /* neighbours untouched */
		if (i != 3 && i != 4)
			assert_int_equal(pages_get(r, i), PAGE_PROTECTED);
	assert_int_equal(pages_get(&p.r[1], 0), PAGE_PROTECTED);
	pages_free(&p);
}

#define THREADS 4

struct racer {
	struct pages_range *r;
	size_t n, won;
	pthread_barrier_t *go;
};

static void *race(void *arg)
{
	struct racer *x = arg;

	pthread_barrier_wait(x->go);
	for (size_t i = 0; i < x->n; i++)
		x->won += pages_claim(x->r, i, (i & 1) ? PAGE_SAVED : PAGE_DISCARDED);
	return NULL;
}

/* Threads claiming the same granules at once: each granule has exactly one winner. */
static void test_claim_race(void **state)
{
	struct vma v = mk(0, 4096ull * 65536, VMA_ANON, VMA_PLAN_TRACK, 4096);
	const struct vma_list l = {&v, 1};
	struct racer x[THREADS];
	pthread_t th[THREADS];
	pthread_barrier_t go;
	size_t won = 0;
	struct pages p;

	assert_int_equal(pages_init(&p, &l), 0);
	pthread_barrier_init(&go, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		x[i] = (struct racer){&p.r[0], p.total_granules, 0, &go};
		assert_int_equal(pthread_create(&th[i], NULL, race, &x[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		won += x[i].won;
	}
	pthread_barrier_destroy(&go);
	assert_int_equal(won, p.total_granules);
	for (size_t i = 0; i < p.total_granules; i++)
		assert_int_equal(pages_get(&p.r[0], i), (i & 1) ? PAGE_SAVED : PAGE_DISCARDED);
	pages_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init),	cmocka_unit_test(test_init_empty),
	    cmocka_unit_test(test_find_index), cmocka_unit_test(test_claim),
	    cmocka_unit_test(test_claim_race),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
