/* SPDX-License-Identifier: MIT */
/* uffsnapctl's number parsing: hex or decimal, the whole string, no sign, no overflow. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli-args.h"

static void test_parse_good(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
	    {"0", 0},
	    {"4096", 4096},
	    {"0x1000", 0x1000},
	    {"0X1000", 0x1000},
	    {"0xdeadBEEF", 0xdeadbeef},
	    {"010", 10}, /* decimal, not octal */
	    {"0x0", 0},
	    {"18446744073709551615", UINT64_MAX},
	    {"0xffffffffffffffff", UINT64_MAX},
	    {"0x00000000000000000000001", 1},
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t v = 42;

		assert_int_equal(cli_parse_u64(good[i].s, &v), 0);
		assert_int_equal(v, good[i].v);
	}
}

static void test_parse_bad(void **state)
{
	static const char *const bad[] = {"",	  "0x",	 "x10",	 "-1",	 " 1",	  "1 ",
					  "+1",	  "1k",	 "0x1g", "1.5",	 "0b101", "abc",
					  "0x-1", "1e3", "\t7",	 "0x 1", "--1"};
	static const char *const big[] = {"18446744073709551616", "0x10000000000000000",
					  "99999999999999999999999"};
	uint64_t v = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cli_parse_u64(bad[i], &v), -EINVAL);
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++)
		assert_int_equal(cli_parse_u64(big[i], &v), -ERANGE);
	assert_int_equal(v, 42); /* untouched on failure */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good),
	    cmocka_unit_test(test_parse_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
