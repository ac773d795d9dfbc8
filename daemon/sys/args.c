/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sys/args.h"

int args_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("uffsnapd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return ARGS_EXIT_USAGE;
}

int args_try_help(const char *mode)
{
	fprintf(stderr, "Try 'uffsnapd %s--help'.\n", mode);
	return ARGS_EXIT_USAGE;
}

int args_parse_uint(const char *s, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > max || s[0] == '-')
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}
