/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl image maps FILE: the VMA table of the META frame, one line per VMA as in
 * /proc/PID/maps (proc(5)), with the kind and content columns before the path so that the path,
 * which may contain spaces, stays last. An incremental image's META has the whole layout of its
 * instant; its chain is opened all the same, so that a broken one is said (exit status 1).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli-args.h"
#include "cli-image.h"
#include "cli-meta.h"
#include "cmd-image.h"

static void maps_print_vma(const json_t *v)
{
	uint64_t start = 0, end = 0, offset = 0, inode = 0;
	char b[4][4 * 32], pb[4 * 4096];
	const char *prot = cli_json_str_shown(v, "prot", b[0], sizeof(b[0]));
	const char *dev = cli_json_str_shown(v, "dev", b[1], sizeof(b[1]));
	const char *kind = cli_json_str_shown(v, "kind", b[2], sizeof(b[2]));
	const char *content = cli_json_str_shown(v, "content", b[3], sizeof(b[3]));
	const char *path = cli_json_str_shown(v, "path", pb, sizeof(pb));

	cli_json_u64(v, "start", &start);
	cli_json_u64(v, "end", &end);
	cli_json_u64(v, "offset", &offset);
	cli_json_u64(v, "inode", &inode);
	printf("%08" PRIx64 "-%08" PRIx64 " %-4s %08" PRIx64 " %-5s %-10" PRIu64 " %-12s %-9s %s\n",
	       start, end, prot ? prot : "----", offset, dev ? dev : "00:00", inode,
	       kind ? kind : "-", content ? content : "-", path ? path : "");
}

/*
 * The META text, and whether the image is complete, by reading it front to back as verify
 * does (the index alone cannot tell a corrupt frame): works on a pipe too, and says where an
 * incomplete or corrupt image ends.
 */
static int maps_load_meta(const struct cli_image *img, char **ret_text, struct img_summary *ret_sum)
{
	char e[128];
	int k = img_verify_fd(img->fd, ret_sum, ret_text);

	if (k < 0)
		cli_file_error(img->name, "cannot read: %s", cli_strerror(k, e, sizeof(e)));
	return k;
}

static int maps_print(const char *name, const char *text)
{
	char err[256];
	json_t *meta = cli_meta_parse(text, err, sizeof(err));
	json_t *vmas = json_object_get(meta, "vmas");
	size_t i;
	json_t *v;

	if (!meta) {
		cli_file_error(name, "the image's metadata is %s", err);
		return -EBADMSG;
	}
	if (!json_is_array(vmas))
		cli_file_error(name, "the image's metadata has no VMA table");
	json_array_foreach(vmas, i, v) maps_print_vma(v);
	json_decref(meta);
	return 0;
}

/* The chain of an incremental image (a pipe's cannot be looked up: not an error here). */
static int maps_check_chain(const struct cli_image *img, const char *parent)
{
	struct img_chain *c = NULL;
	struct img_error err;
	int r;

	if (!img->seekable || !img->owned)
		return 0;
	r = cli_chain_open(img, parent, "its chain", false, &c, &err);
	img_chain_free(c);
	return r;
}

int cmd_image_maps(const struct cli_invocation *inv, int argc, char **argv)
{
	static const struct option opts[] = {{"parent", required_argument, NULL, 'p'},
					     {NULL, 0, NULL, 0}};
	struct cli_image img = {.fd = -EBADF};
	struct img_summary s = {0};
	char *text = NULL, state[sizeof(s.error.msg) + 96];
	const char *path, *parent = NULL;
	int c, ret = CLI_EXIT_FAILURE;

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
	if (maps_load_meta(&img, &text, &s) < 0)
		goto out;
	cli_status_describe(&s, state, sizeof(state));
	if (!text) {
		cli_file_error(img.name, "%s", state);
		goto out;
	}
	if (maps_print(img.name, text) < 0)
		goto out;
	fflush(stdout);
	if (s.status != IMG_COMPLETE) {
		cli_file_error(img.name, "%s", state);
		goto out;
	}
	if ((s.header.flags & IMG_HEADER_F_INCREMENTAL) && maps_check_chain(&img, parent) < 0)
		goto out;
	ret = CLI_EXIT_OK;
out:
	free(text);
	cli_image_close(&img);
	return ret;
}
