/* SPDX-License-Identifier: MIT */
/*
 * A client's input: bytes in, complete lines out, in bounded memory. A line longer than
 * CTL_LINE_MAX is reported once and the rest of it is dropped as it arrives, so a 10 MB line
 * costs no more than a short one. Pure (the fuzzer drives it).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "ctl-request.h"

struct ctl_linebuf {
	size_t start, len;	    /* unconsumed bytes are buf[start, len) */
	bool discarding;	    /* inside an over-long line: drop up to the next '\n' */
	char buf[CTL_LINE_MAX + 1]; /* a longest line and its '\n' */
};

/* Where to read to next, and how much fits (never 0). */
char *ctl_linebuf_space(struct ctl_linebuf *b, size_t *ret_len);
/* n bytes were stored at the space returned last. */
void ctl_linebuf_added(struct ctl_linebuf *b, size_t n);
/*
 * The next complete line (without '\n'; valid until the next call): 1 and *ret_line,
 * *ret_len; 0 if no complete line is buffered; -E2BIG once per over-long line.
 */
int ctl_linebuf_next(struct ctl_linebuf *b, const char **ret_line, size_t *ret_len);
