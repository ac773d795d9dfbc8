/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "ctl-line.h"

char *ctl_linebuf_space(struct ctl_linebuf *b, size_t *ret_len)
{
	if (b->start) {
		memmove(b->buf, b->buf + b->start, b->len - b->start);
		b->len -= b->start;
		b->start = 0;
	}
	/* Full without a '\n' cannot happen here: ctl_linebuf_next() has reported it. */
	*ret_len = sizeof(b->buf) - b->len;
	return b->buf + b->len;
}

void ctl_linebuf_added(struct ctl_linebuf *b, size_t n)
{
	b->len += n;
}

int ctl_linebuf_next(struct ctl_linebuf *b, const char **ret_line, size_t *ret_len)
{
	char *nl;

	for (;;) {
		nl = memchr(b->buf + b->start, '\n', b->len - b->start);
		if (b->discarding) {
			b->start = nl ? (size_t)(nl - b->buf) + 1 : b->len;
			if (!nl)
				return 0;
			b->discarding = false;
			continue;
		}
		if (!nl) {
			if (b->len - b->start < sizeof(b->buf))
				return 0;
			b->discarding = true; /* CTL_LINE_MAX + 1 bytes and no end in sight */
			b->start = b->len;
			return -E2BIG;
		}
		*ret_line = b->buf + b->start;
		*ret_len = (size_t)(nl - b->buf) - b->start;
		b->start += *ret_len + 1;
		return 1;
	}
}
