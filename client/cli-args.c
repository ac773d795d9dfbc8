/* SPDX-License-Identifier: MIT */
/* Argument parsing shared by uffsnapctl's commands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-args.h"

int cli_parse_u64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	const char *digits = s;
	char *end = NULL;
	int base = 10;

	if (!strncmp(s, "0x", 2) || !strncmp(s, "0X", 2)) {
		digits = s + 2;
		base = 16;
	}
	/* strtoull() would accept spaces, a sign and an empty string: allow only digits. */
	if (!*digits ||
	    strspn(digits, base == 16 ? "0123456789abcdefABCDEF" : "0123456789") != strlen(digits))
		return -EINVAL;
	errno = 0;
	v = strtoull(digits, &end, base);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int cli_getopt(const struct cli_invocation *inv, int argc, char **argv, const char *shortopts,
	       const struct option *longopts)
{
	char spec[64];
	int c;

	/* A ':' first (after a '+') makes a missing value return ':' rather than '?'. */
	if (shortopts[0] == '+')
		snprintf(spec, sizeof(spec), "+:%s", shortopts + 1);
	else
		snprintf(spec, sizeof(spec), ":%s", shortopts);
	opterr = 0;
	c = getopt_long(argc, argv, spec, longopts, NULL);
	if (c == ':') {
		cli_usage_error(inv, "option '%s' needs a value", argv[optind - 1]);
		return '?';
	}
	if (c == '?') {
		const char *arg = argv[optind - 1];

		/* A long option ("--foo", "--json=x") is named as written, a short one alone. */
		if (!strncmp(arg, "--", 2) || !optopt)
			cli_usage_error(inv, "unknown option '%s'", arg);
		else
			cli_usage_error(inv, "unknown option '-%c'", optopt);
		return '?';
	}
	return c;
}

const char *cli_one_operand(const struct cli_invocation *inv, int argc, char **argv,
			    const char *what)
{
	if (optind >= argc) {
		cli_usage_error(inv, "missing %s", what);
		return NULL;
	}
	if (optind + 1 < argc) {
		cli_usage_error(inv, "unexpected argument '%s'", argv[optind + 1]);
		return NULL;
	}
	return argv[optind];
}
