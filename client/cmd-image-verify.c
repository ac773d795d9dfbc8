/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl image verify FILE [--parent PATH]: sequential check of every frame, the index and
 * the digest. An incremental image's chain is checked too, link by link: each parent is found
 * (or given), must be the one its child names, and must verify.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	/* Pre-copy and incremental images (1.2): the pages counted are the instant's. */
	if (s->header.flags & (IMG_HEADER_F_REWRITES | IMG_HEADER_F_INCREMENTAL))
		printf("%" PRIu64 " unmapped pages, ", s->unmapped_pages);
	if (s->header.flags & IMG_HEADER_F_REWRITES)
		printf("%" PRIu64 " superseded pages, ", s->superseded_pages);
	printf("%s\n", cli_format_size(s->valid_bytes, size, sizeof(size)));
}

/* "top.img <- mid.img <- base.img": each link and the parent it reads through. */
static void verify_print_chain(const char *name, const struct img_chain *c)
{
	printf("%s: chain ok, %zu images: ", name, img_chain_depth(c));
	for (size_t i = 0; i < img_chain_depth(c); i++)
		printf("%s%s", i ? " <- " : "", img_chain_link(c, i)->path);
	printf("\n");
}

/* The parents of an incremental image that verified: found, linked, and each verified. */
static int verify_chain(const struct cli_image *img, const char *parent)
{
	char msg[sizeof(((struct img_error *)0)->msg) + 96], e[128];
	struct img_chain *c = NULL;
	struct img_summary s;
	struct img_error err;
	size_t bad;
	int r;

	if (!img->seekable || !img->owned) {
		printf("%s: an incremental image, read from a pipe: its parents were not checked "
		       "(verify the file to check its chain)\n",
		       img->name);
		return 0;
	}
	r = cli_chain_open(img, parent, "checking its chain", false, &c, &err);
	if (r >= 0)
		r = img_chain_verify(c, 1, &bad, &s);
	if (r < 0 && c) /* an error cli_chain_open() did not already report */
		cli_file_error(img->name, "cannot read its chain: %s",
			       cli_strerror(r, e, sizeof(e)));
	if (r >= 0 && bad < img_chain_depth(c)) {
		cli_status_describe(&s, msg, sizeof(msg));
		cli_file_error(img->name, "link %zu of its chain, %s: %s", bad,
			       img_chain_link(c, bad)->path, msg);
		r = -EBADMSG;
	} else if (r >= 0) {
		verify_print_chain(img->name, c);
	}
	img_chain_free(c);
	return r;
}

int cmd_image_verify(const struct cli_invocation *inv, int argc, char **argv)
{
	static const struct option opts[] = {{"parent", required_argument, NULL, 'p'},
					     {NULL, 0, NULL, 0}};
	struct cli_image img = {.fd = -EBADF};
	struct img_summary s = {0};
	char msg[sizeof(s.error.msg) + 96];
	const char *path, *parent = NULL;
	int c, r, ret = CLI_EXIT_FAILURE;

	while ((c = cli_getopt(inv, argc, argv, "p:", opts)) != -1) {
		if (c != 'p')
			return CLI_EXIT_USAGE;
		parent = optarg;
	}
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
	if ((s.header.flags & IMG_HEADER_F_INCREMENTAL) && verify_chain(&img, parent) < 0)
		goto out;
	ret = CLI_EXIT_OK;
out:
	cli_image_close(&img);
	return ret;
}
