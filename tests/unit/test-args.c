/* SPDX-License-Identifier: MIT */
/* sys/args.c: the grammar of uffsnapd's numeric options, as the three parsers had it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sys/args.h"

#define UNTOUCHED 777u

static void accepts(const char *s, unsigned max, unsigned want)
{
	unsigned v = UNTOUCHED;

	assert_int_equal(args_parse_uint(s, max, &v), 0);
	assert_int_equal(v, want);
}

static void refuses(const char *s, unsigned max)
{
	unsigned v = UNTOUCHED;

	assert_int_equal(args_parse_uint(s, max, &v), -EINVAL);
	assert_int_equal(v, UNTOUCHED);
}

static void test_range(void **state)
{
	accepts("1", 512, 1);
	accepts("512", 512, 512);
	accepts("86400", 86400, 86400);
	refuses("0", 512);
	refuses("513", 512);
	refuses("-1", 512);
	refuses("18446744073709551616", 4294967295u); /* ERANGE */
}

static void test_grammar(void **state)
{
	/* strtoul()'s own leniency, kept: leading blanks and a '+'. */
	accepts(" 16", 512, 16);
	accepts("+16", 512, 16);
	accepts("010", 512, 10); /* decimal, not octal */
	refuses("", 512);
	refuses("16 ", 512);
	refuses("16k", 512);
	refuses("0x10", 512);
	/* The '-' check sees the first character only; strtoul() makes this ULONG_MAX: too big. */
	refuses(" -1", 512);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_range),
	    cmocka_unit_test(test_grammar),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
