/* SPDX-License-Identifier: MIT */
/*
 * What uffsnapd's three command lines (one-shot, --service, --receive) share beyond
 * getopt_long(): the grammar of their numeric option values. The caller prints the error,
 * each in its own words.
 */
#pragma once

/*
 * A count from 1 to max written in decimal, as strtoul() reads it (leading blanks and a '+'
 * allowed, nothing after the digits). -EINVAL for anything else, 0 and a leading '-' included
 * (strtoul() would turn "-1" into ULONG_MAX); ret is untouched then.
 */
int args_parse_uint(const char *s, unsigned max, unsigned *ret);
