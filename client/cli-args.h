/* SPDX-License-Identifier: MIT */
/* Argument parsing shared by uffsnapctl's commands. */
#pragma once

#include <getopt.h>
#include <stdint.h>

#include "cli-command.h"

/*
 * Parses an unsigned 64-bit number written in hex ("0x1000") or decimal ("4096"); the whole
 * string must be the number (no sign, no spaces, no suffix). -EINVAL for anything else,
 * -ERANGE when it does not fit. ret is untouched on failure.
 */
int cli_parse_u64(const char *s, uint64_t *ret);

/*
 * getopt_long() (argv[0] is the command's name) that reports an unknown option or a missing
 * value as one line with the --help hint: it then returns '?' and the caller returns
 * CLI_EXIT_USAGE. shortopts may start with '+': stop at the first operand (uffsnapctl's options
 * before the command). cli_dispatch() resets getopt's state before it runs a handler.
 */
int cli_getopt(const struct cli_invocation *inv, int argc, char **argv, const char *shortopts,
	       const struct option *longopts);

/*
 * The single FILE operand after the options (optind onwards): prints a usage error and
 * returns NULL when it is missing or followed by more operands.
 */
const char *cli_one_operand(const struct cli_invocation *inv, int argc, char **argv,
			    const char *what);
