/* SPDX-License-Identifier: MIT */
/* uffsnapctl image verify FILE: sequential check of every frame, the index and the digest. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli-args.h"
#include "cli-image.h"
#include "cli-meta.h"
#include "cmd-image.h"

static void verify_print_ok(const char *name, const struct img_summary *s)
{
	char size[32];

	printf("%s: ok, %" PRIu64 " frames, %" PRIu64 " data pages, %" PRIu64
	       " zero pages, %" PRIu64 " discarded pages, ",
	       name, s->frames, s->data_pages, s->zero_pages, s->discarded_pages);
	/* Pre-copy images (1.2): the pages counted are the instant's, after resolution. */
	if (s->header.flags & IMG_HEADER_F_REWRITES)
		printf("%" PRIu64 " unmapped pages, %" PRIu64 " superseded pages, ",
		       s->unmapped_pages, s->superseded_pages);
	printf("%s\n", cli_format_size(s->valid_bytes, size, sizeof(size)));
}

int cmd_image_verify(const struct cli_invocation *inv, int argc, char **argv)
{
	static const struct option opts[] = {{NULL, 0, NULL, 0}};
	struct cli_image img = {.fd = -EBADF};
	struct img_summary s = {0};
	char msg[sizeof(s.error.msg) + 96];
	const char *path;
	int r, ret = CLI_EXIT_FAILURE;

	if (cli_getopt(inv, argc, argv, "", opts) != -1)
		return CLI_EXIT_USAGE;
	path = cli_one_operand(inv, argc, argv, "FILE");
	if (!path)
		return CLI_EXIT_USAGE;
	if (cli_image_open(path, &img) < 0)
		return CLI_EXIT_FAILURE;
	r = img_verify_fd(img.fd, &s, NULL);
	if (r < 0) {
		cli_file_error(img.name, "cannot read: %s", cli_strerror(r, msg, sizeof(msg)));
		goto out;
	}
	if (s.status != IMG_COMPLETE) {
		cli_status_describe(&s, msg, sizeof(msg));
		cli_file_error(img.name, "%s", msg);
		goto out;
	}
	verify_print_ok(img.name, &s);
	ret = CLI_EXIT_OK;
out:
	cli_image_close(&img);
	return ret;
}
