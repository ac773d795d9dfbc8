/* SPDX-License-Identifier: MIT */
/* engine/plan.c: merging remembered spans, and the hot ranges around threads' stacks/TLS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/plan.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define PS 4096u
#define HOT PLAN_HOT_BYTES

static void test_merge_empty(void **state)
{
	size_t n = 0;

	plan_merge_spans(NULL, &n);
	assert_int_equal(n, 0);
}

static void test_merge(void **state)
{
	struct snap_span v[] = {
	    {0x9000, 0xa000}, /* disjoint, last */
	    {0x3000, 0x4000}, /* touches the next: merged */
	    {0x1000, 0x2000}, /* alone: a gap before 0x3000 */
	    {0x4000, 0x5000},
	    {0x4800, 0x4900}, /* inside */
	    {0x6000, 0x7000},
	    {0x6800, 0x8000}, /* overlaps: extends */
	};
	const struct snap_span want[] = {
	    {0x1000, 0x2000}, {0x3000, 0x5000}, {0x6000, 0x8000}, {0x9000, 0xa000}};
	size_t n = N(v);

	plan_merge_spans(v, &n);
	assert_int_equal(n, N(want));
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[i].start, want[i].start);
		assert_int_equal(v[i].end, want[i].end);
	}
	plan_merge_spans(v, &n); /* merged stays merged */
	assert_int_equal(n, N(want));
}

static void test_merge_one(void **state)
{
	struct snap_span v[] = {{0x1000, 0x3000}, {0x1000, 0x2000}, {0x1000, 0x3000}};
	size_t n = N(v);

	plan_merge_spans(v, &n);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].start, 0x1000);
	assert_int_equal(v[0].end, 0x3000);
}

static struct vma mk(uint64_t start, uint64_t end, enum vma_kind k, enum vma_plan p,
		     uint32_t granule)
{
	return (struct vma){.start = start, .end = end, .prot = "rw-p", .kind = k, .plan = p,
			    .granule = granule};
}

static void test_hot(void **state)
{
	struct vma v[] = {
	    mk(0x10000000, 0x11000000, VMA_ANON, VMA_PLAN_TRACK, PS),	   /* big stack area */
	    mk(0x11000000, 0x11010000, VMA_ANON, VMA_PLAN_TRACK, PS),	   /* adjacent */
	    mk(0x20000000, 0x20100000, VMA_ANON, VMA_PLAN_COPY, PS),	   /* copied whole */
	    mk(0x30000000, 0x30100000, VMA_SHM, VMA_PLAN_TRACK, PS),	   /* not anonymous */
	    mk(0x40000000, 0x40400000, VMA_HUGETLB, VMA_PLAN_TRACK, 2 << 20), /* huge */
	    mk(0x50000000, 0x50400000, VMA_ANON, VMA_PLAN_TRACK, 2 << 20), /* not page_size */
	};
	const struct vma_list l = {v, N(v)};
	const uint64_t a[] = {
	    0x10800123, /* middle: 32 KiB each side, page-aligned outwards */
	    0x10000100, /* near the start: clipped to it */
	    0x10fffff0, /* near the end: clipped to it */
	    0x11000010, /* start of the adjacent VMA: its own span, not merged (touching) */
	    0x10804000, /* overlaps the first: merged */
	    0x20000100, 0x30000100, 0x40000100, 0x50000100, /* skipped */
	    0x60000000, /* in no VMA */
	};
	const struct snap_span want[] = {
	    {0x10000000, 0x10000100 + HOT + PS - 1 - (0x10000100 + HOT + PS - 1) % PS},
	    {(0x10800123 - HOT) / PS * PS, (0x10804000 + HOT + PS - 1) / PS * PS},
	    {(0x10fffff0 - HOT) / PS * PS, 0x11000000},
	    {0x11000000, (0x11000010 + HOT + PS - 1) / PS * PS},
	};
	struct snap_span out[N(a)];
	size_t n = plan_hot_spans(&l, a, N(a), PS, out);

	assert_int_equal(n, N(want));
	for (size_t i = 0; i < n; i++) {
		print_message("0x%llx-0x%llx\n", (unsigned long long)out[i].start,
			      (unsigned long long)out[i].end);
		assert_int_equal(out[i].start, want[i].start);
		assert_int_equal(out[i].end, want[i].end);
		assert_int_equal(out[i].start % PS, 0);
		assert_int_equal(out[i].end % PS, 0);
	}
	assert_int_equal(want[1].start, 0x107f8000);
	assert_int_equal(want[1].end, 0x1080c000);
}

static void test_hot_none(void **state)
{
	struct vma v[] = {mk(0x10000000, 0x10001000, VMA_ANON, VMA_PLAN_TRACK, PS)};
	const struct vma_list l = {v, N(v)};
	const uint64_t a[] = {0x10000800};
	struct snap_span out[1];

	assert_int_equal(plan_hot_spans(&l, NULL, 0, PS, out), 0);
	/* a one-page VMA: the span is the page */
	assert_int_equal(plan_hot_spans(&l, a, 1, PS, out), 1);
	assert_int_equal(out[0].start, 0x10000000);
	assert_int_equal(out[0].end, 0x10001000);
}

/* Only the VMAs meeting a span stay planned: a guest's RAM among QEMU's other mappings. */
static void test_scope(void **state)
{
	struct vma v[] = {
	    mk(0x1000, 0x2000, VMA_ANON, VMA_PLAN_TRACK, PS),
	    mk(0x10000, 0x20000, VMA_SHM, VMA_PLAN_TRACK, PS), /* the RAM, exactly */
	    mk(0x20000, 0x30000, VMA_ANON, VMA_PLAN_TRACK, PS), /* touches it: outside */
	    mk(0x40000, 0x48000, VMA_SHM, VMA_PLAN_TRACK, PS), /* a second backend, split */
	    mk(0x48000, 0x50000, VMA_SHM, VMA_PLAN_TRACK, PS),
	    mk(0x60000, 0x61000, VMA_TEXT, VMA_PLAN_REFERENCE, PS),
	};
	const struct snap_span scope[] = {{0x10000, 0x20000}, {0x40000, 0x50000}};
	const enum vma_plan want[] = {VMA_PLAN_NONE,  VMA_PLAN_TRACK, VMA_PLAN_NONE,
				      VMA_PLAN_TRACK, VMA_PLAN_TRACK, VMA_PLAN_NONE};
	struct vma_list l = {v, N(v)};

	assert_int_equal(plan_scope(&l, scope, N(scope)), 3);
	for (size_t i = 0; i < N(v); i++)
		assert_int_equal(v[i].plan, want[i]);
	assert_string_equal(v[0].note, "outside the snapshot's scope");
	assert_int_equal(plan_scope(&l, scope, 0), 0); /* an empty scope leaves nothing */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_merge_empty), cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_merge_one),	cmocka_unit_test(test_hot),
	    cmocka_unit_test(test_hot_none),	cmocka_unit_test(test_scope),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
