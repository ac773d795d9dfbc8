/* SPDX-License-Identifier: MIT */
/* engine/shared.c: which shared memory has a name, and the addresses two mappings share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/shared-internal.h"

static void test_named(void **state)
{
	assert_true(shared_named("/dev/shm/guest-ram"));
	assert_true(shared_named("/mnt/huge/ram"));
	assert_false(shared_named("/memfd:guest-ram (deleted)"));
	assert_false(shared_named("/dev/shm/gone (deleted)"));
	assert_false(shared_named("/dev/zero (deleted)"));
	assert_false(shared_named("/SYSV0000002a (deleted)"));
	assert_false(shared_named(NULL));
}

/* The target maps pages 4..12 of an object at 0x10000; another mapping shows some pages. */
static void test_overlap(void **state)
{
	const struct shared_map m = {0x10000, 0x18000, 0x4000};
	struct snap_span r;

	assert_true(shared_overlap(&m, 0x8000, 0x8000, &r)); /* pages 8..16 */
	assert_true(r.start == 0x14000 && r.end == 0x18000);
	assert_true(shared_overlap(&m, 0, 0x6000, &r)); /* pages 0..6 */
	assert_true(r.start == 0x10000 && r.end == 0x12000);
	assert_true(shared_overlap(&m, 0x5000, 0x1000, &r)); /* page 5, inside */
	assert_true(r.start == 0x11000 && r.end == 0x12000);
	assert_false(shared_overlap(&m, 0, 0x4000, &r));      /* pages 0..4: just before */
	assert_false(shared_overlap(&m, 0xc000, 0x1000, &r)); /* page 12: just after */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_named),
	    cmocka_unit_test(test_overlap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
