/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl image flatten FILE --output FULL [--parent PATH]: an incremental image and its
 * parents as one full image (libuffsnap's img_chain_flatten()), which reads with no parent to
 * find. The output is written as `image core` writes its core: beside its name, given that
 * name only once complete, never over an existing file without --force; a failure leaves
 * nothing behind.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli-args.h"
#include "cli-image.h"
#include "cli-meta.h"
#include "cmd-image.h"

struct flatten_args {
	const char *path;
	const char *output; /* "-": stdout */
	const char *parent; /* --parent: the image's parent */
	bool force;	    /* replace an existing FULL */
};

static int flatten_parse(const struct cli_invocation *inv, int argc, char **argv,
			 struct flatten_args *a)
{
	static const struct option opts[] = {
	    {"output", required_argument, NULL, 'o'},
	    {"force", no_argument, NULL, 'f'},
	    {"parent", required_argument, NULL, 'p'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = cli_getopt(inv, argc, argv, "o:fp:", opts)) != -1) {
		if (c == 'o')
			a->output = optarg;
		else if (c == 'f')
			a->force = true;
		else if (c == 'p')
			a->parent = optarg;
		else
			return -EINVAL;
	}
	a->path = cli_one_operand(inv, argc, argv, "FILE");
	if (!a->path)
		return -EINVAL;
	if (!a->output)
		return cli_usage_error(inv, "missing --output FULL"), -EINVAL;
	if (!strcmp(a->output, "-") && isatty(STDOUT_FILENO))
		return cli_usage_error(inv, "refusing to write an image to a terminal; "
					    "redirect stdout or use --output FILE"),
		       -EINVAL;
	return 0;
}

/* Flattens into out; says what went wrong, or what was written. */
static int flatten_write(const struct cli_image *img, struct img_chain *c, const char *output,
			 int out)
{
	struct img_writer_stats st = {0};
	struct img_error err = {0};
	struct img_sink *sink = NULL;
	char e[128], size[32];
	int k = img_sink_fd_new(out, &sink);

	if (k >= 0)
		k = img_chain_flatten(c, sink, &st, &err);
	img_sink_free(sink);
	if (k < 0 && err.msg[0])
		cli_file_error(img->name, "cannot flatten: %s", err.msg);
	else if (k < 0)
		cli_file_error(output, "cannot write: %s", cli_strerror(k, e, sizeof(e)));
	if (k < 0)
		return k;
	fprintf(strcmp(output, "-") ? stdout : stderr,
		"%s: a full image of %zu image%s: %" PRIu64 " data, %" PRIu64 " zero, %" PRIu64
		" discarded pages, %s\n",
		output, img_chain_depth(c), img_chain_depth(c) == 1 ? "" : "s", st.data_pages,
		st.zero_pages, st.discarded_pages, cli_format_size(st.bytes, size, sizeof(size)));
	return 0;
}

int cmd_image_flatten(const struct cli_invocation *inv, int argc, char **argv)
{
	struct cli_image img = {.fd = -EBADF};
	struct flatten_args a = {0};
	struct img_chain *c = NULL;
	struct img_error err;
	struct out_file o = OUT_FILE_INIT;
	int out, ret = CLI_EXIT_FAILURE;

	if (flatten_parse(inv, argc, argv, &a) < 0)
		return CLI_EXIT_USAGE;
	if (cli_image_open(a.path, &img) < 0)
		return CLI_EXIT_FAILURE;
	if (cli_chain_open(&img, a.parent, "flattening", false, &c, &err) < 0)
		goto out;
	/* Memory of a process, as a core holds: readable by its owner only. */
	out = cli_output_open(a.output, a.force, 0600, &o);
	if (cli_output_close(a.output, &o, out < 0 ? out : flatten_write(&img, c, a.output, out)) >=
	    0)
		ret = CLI_EXIT_OK;
out:
	img_chain_free(c);
	cli_image_close(&img);
	return ret;
}
