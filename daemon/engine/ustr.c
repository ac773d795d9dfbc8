/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "engine/ustr.h"

/* Bytes in "\xNN", one invalid byte written out. */
#define ESCAPED_LEN 4

/*
 * The length of the UTF-8 sequence at s (1-4), or 0 if it is not a valid one: RFC 3629, as
 * jansson checks it (no overlong forms, no surrogates, nothing past U+10FFFF).
 */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0], n, min, cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, min = 0x80, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, min = 0x800, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	for (unsigned i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL */
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool ustr_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	for (; *p; p += n)
		if (!(n = utf8_len(p)))
			return false;
	return true;
}

/* One character as jansson's dump_string() writes it: the mandatory escapes, \uXXXX under 0x20. */
static char *put_char(char *o, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";

	switch (c) {
	case '"':
	case '\\':
		*o++ = '\\';
		*o++ = (char)c;
		return o;
	case '\b':
		return memcpy(o, "\\b", 2), o + 2;
	case '\f':
		return memcpy(o, "\\f", 2), o + 2;
	case '\n':
		return memcpy(o, "\\n", 2), o + 2;
	case '\r':
		return memcpy(o, "\\r", 2), o + 2;
	case '\t':
		return memcpy(o, "\\t", 2), o + 2;
	}
	if (c >= 0x20) {
		*o++ = (char)c;
		return o;
	}
	memcpy(o, "\\u00", 4);
	o[4] = hex[c >> 4];
	o[5] = hex[c & 15];
	return o + 6;
}

/*
 * s at o, every byte that does not start a valid UTF-8 sequence as the four characters \xNN;
 * as JSON string content (put_char()) if json, else as it is. Returns the end.
 */
static char *put_text(char *o, const char *s, bool json)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;

	for (size_t n; *p; p += n) {
		char esc[ESCAPED_LEN] = {'\\', 'x'};

		n = utf8_len(p);
		if (n == 1 && json) {
			o = put_char(o, *p);
		} else if (n) {
			memcpy(o, p, n);
			o += n;
		} else {
			esc[2] = hex[*p >> 4];
			esc[3] = hex[*p & 15];
			for (size_t i = 0; i < ESCAPED_LEN; i++) {
				if (json)
					o = put_char(o, (unsigned char)esc[i]);
				else
					*o++ = esc[i];
			}
			n = 1;
		}
	}
	return o;
}

char *ustr_put_json(char *o, const char *s)
{
	*o++ = '"';
	o = put_text(o, s, true);
	*o++ = '"';
	return o;
}

json_t *ustr_json(const char *s)
{
	char *out = malloc(strlen(s) * ESCAPED_LEN + 1), *end;
	json_t *j;

	if (!out)
		return NULL;
	end = put_text(out, s, false);
	j = json_stringn(out, (size_t)(end - out));
	free(out);
	return j;
}
