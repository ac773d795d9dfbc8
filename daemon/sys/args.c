/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void args_table_help(FILE *f, const struct args_opt *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char left[64];

		snprintf(left, sizeof(left), "--%s%s%s", t[i].opt.name, t[i].arg ? " " : "",
			 t[i].arg ? t[i].arg : "");
		fprintf(f, "  %-28s %s\n", left, t[i].help);
	}
}

int args_table_parse(int argc, char **argv, const struct args_opt *t, size_t n,
		     int (*fn)(void *ctx, int o), void *ctx, const char *mode)
{
	struct option *longs = calloc(n + 1, sizeof(*longs));
	int o, idx = -1, r = 0;

	if (!longs)
		return args_usage_error("out of memory");
	for (size_t i = 0; i < n; i++)
		longs[i] = t[i].opt;
	while (!r && (o = getopt_long(argc, argv, "", longs, &idx)) != -1) {
		if (o != '?' && (r = fn(ctx, o)) >= 0)
			continue;
		if (r == ARGS_DONE)
			break;
		if (o != '?' && idx >= 0)
			args_usage_error("invalid value '%s' for --%s", optarg, longs[idx].name);
		r = args_try_help(mode);
	}
	free(longs);
	if (!r && optind < argc)
		r = args_usage_error("unexpected argument '%s'", argv[optind]);
	return r;
}
