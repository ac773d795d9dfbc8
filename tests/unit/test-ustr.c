/* SPDX-License-Identifier: MIT */
/* engine/ustr.c: names the target gave, as JSON strings whatever their bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/ustr.h"

static void expect(const char *in, const char *want)
{
	json_t *j = ustr_json(in);

	assert_non_null(j);
	assert_string_equal(json_string_value(j), want);
	json_decref(j);
}

/* Valid UTF-8, from one to four bytes a character, is kept as it is. */
static void test_valid(void **state)
{
	(void)state;
	expect("", "");
	expect("/usr/bin/redis-server", "/usr/bin/redis-server");
	expect("caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e",
	       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e");
	expect("\xed\x9f\xbf \xee\x80\x80 \xf4\x8f\xbf\xbf", /* U+D7FF, U+E000, U+10FFFF */
	       "\xed\x9f\xbf \xee\x80\x80 \xf4\x8f\xbf\xbf");
}

/* Every byte that does not start a valid sequence becomes \xNN, and the rest is resumed. */
static void test_invalid(void **state)
{
	(void)state;
	expect("a\xff"
	       "b",
	       "a\\xffb");
	expect("\x80", "\\x80");			    /* a lone continuation byte */
	expect("\xc0\x80", "\\xc0\\x80");		    /* overlong NUL */
	expect("\xe0\x80\xaf", "\\xe0\\x80\\xaf");	    /* overlong '/' */
	expect("\xed\xa0\x80", "\\xed\\xa0\\x80");	    /* a surrogate, U+D800 */
	expect("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* past U+10FFFF */
	expect("\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80");
	expect("x\xe2\x82", "x\\xe2\\x82"); /* cut short by the end */
	expect("\xe2\x82"
	       "a\xc3\xa9",
	       "\\xe2\\x82a\xc3\xa9"); /* cut short by ASCII */
	expect("\\x41", "\\x41");      /* not reversible: as documented */
}

/* ustr_valid() says which strings ustr_json() keeps as they are. */
static void test_valid_check(void **state)
{
	(void)state;
	assert_true(ustr_valid(""));
	assert_true(ustr_valid("qemu-system-x86_64"));
	assert_true(ustr_valid("caf\xc3\xa9 \xf4\x8f\xbf\xbf"));
	assert_false(ustr_valid("gu\xff"
				"est"));
	assert_false(ustr_valid("\xed\xa0\x80"));
	assert_false(ustr_valid("x\xe2\x82"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_valid_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
