/* SPDX-License-Identifier: MIT */
/* engine/pinned.c: the io_uring registered buffers listed in /proc/PID/fdinfo/FD. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "engine/pinned.h"

/* As 6.18 prints it (io_uring/fdinfo.c), with a registered file and an empty buffer slot. */
static const char fdinfo[] = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1597326\n"
			     "SqMask:\t0x7\nSqThread:\t-1\nUserFiles:\t1\n    0: /tmp/x\n"
			     "UserBufs:\t3\n    0: 0x7f0de8fdc000/4096\n    1: <none>\n"
			     "    2: 0x7f0de8fde000/100\nPollList:\nCqOverflowList:\n"
			     "NAPI:\tdisabled\n";

static void test_parse(void **state)
{
	struct snap_span *v = NULL;
	size_t n = 0, cap = 0;

	assert_int_equal(pinned_parse_fdinfo(fdinfo, &v, &n, &cap), 2);
	assert_int_equal(n, 2);
	assert_true(v[0].start == 0x7f0de8fdc000ull && v[0].end == 0x7f0de8fdd000ull);
	assert_true(v[1].start == 0x7f0de8fde000ull && v[1].end == 0x7f0de8fde064ull);
	free(v);
}

static void test_none(void **state)
{
	struct snap_span *v = NULL;
	size_t n = 0, cap = 0;

	assert_int_equal(
	    pinned_parse_fdinfo("pos:\t0\nUserFiles:\t0\nUserBufs:\t0\nPollList:\n", &v, &n, &cap),
	    0);
	assert_int_equal(pinned_parse_fdinfo("pos:\t0\nflags:\t02\n", &v, &n, &cap), 0);
	assert_int_equal(n, 0);
	free(v);
}

/* Older kernels leave the list out when they cannot take the ring's lock: read again. */
static void test_short(void **state)
{
	struct snap_span *v = NULL;
	size_t n = 0, cap = 0;

	assert_int_equal(pinned_parse_fdinfo("pos:\t0\nUserBufs:\t2\n    0: 0x1000/4096\n"
					     "PollList:\n",
					     &v, &n, &cap),
			 -EAGAIN);
	assert_int_equal(pinned_parse_fdinfo("", &v, &n, &cap), -EAGAIN);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_none),
	    cmocka_unit_test(test_short),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
