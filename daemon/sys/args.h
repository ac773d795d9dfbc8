/* SPDX-License-Identifier: MIT */
/*
 * What uffsnapd's three command lines (one-shot, --service, --receive) share beyond
 * getopt_long(): the grammar of their numeric option values, and the form of their usage
 * errors. Only their parsers, at the entry points, print with these.
 */
#pragma once

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

/*
 * What a mode's parser returns: 0, run; ARGS_EXIT_USAGE, the exit status of a wrong command
 * line (in every mode); ARGS_DONE, it printed what was asked (--help, --version): exit 0.
 */
#define ARGS_EXIT_USAGE 2
#define ARGS_DONE	(-1)

/* Prints "uffsnapd: MESSAGE" as one line on stderr; returns ARGS_EXIT_USAGE. */
__attribute__((format(printf, 1, 2))) int args_usage_error(const char *fmt, ...);

/*
 * After getopt_long() has said what was wrong (in glibc's words): the hint to the mode's help,
 * "Try 'uffsnapd MODE--help'." (mode "" or "--service "); returns ARGS_EXIT_USAGE.
 */
int args_try_help(const char *mode);

/*
 * A count from 1 to max written in decimal, as strtoul() reads it (leading blanks and a '+'
 * allowed, nothing after the digits). -EINVAL for anything else, 0 and a leading '-' included
 * (strtoul() would turn "-1" into ULONG_MAX); ret is untouched then.
 */
int args_parse_uint(const char *s, unsigned max, unsigned *ret);

/*
 * A mode's options with their help, in one table (--help is generated from it): the receivers'.
 * Their help is a line an option, and they share six options (recv_common_opt()). The one-shot
 * and --service parsers are the same getopt_long() over a table, with the cases in the parser;
 * their --help is written by hand (short options, entries of several lines) and stays so.
 */
struct args_opt {
	struct option opt;
	const char *arg, *help; /* arg: the value's name, NULL for a flag */
};

/* The table's lines for --help: "  --NAME ARG   HELP". */
void args_table_help(FILE *f, const struct args_opt *t, size_t n);
/*
 * getopt_long() over the table: fn(ctx, val) for each option ('h' prints nothing itself: fn
 * decides; a negative return is an invalid value). Returns 0, ARGS_DONE (fn returned it), or
 * ARGS_EXIT_USAGE (printed, with the hint "Try 'uffsnapd MODE--help'").
 */
int args_table_parse(int argc, char **argv, const struct args_opt *t, size_t n,
		     int (*fn)(void *ctx, int o), void *ctx, const char *mode);
