/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl image core FILE --output CORE: the image as an ELF core file that gdb, eu-stack and
 * readelf read as they read the kernel's (libuffsnap's img_core_write(), which uffsnapd --core
 * uses too). What the image lacks is a warning per item; the core is still written. An
 * incremental image's core is its chain's: the top's threads, the chain's memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli-args.h"
#include "cli-image.h"
#include "cli-meta.h"
#include "cmd-image.h"
#include "uffsnap/core.h"

struct core_args {
	const char *path;
	const char *output; /* "-": stdout */
	const char *parent; /* --parent: an incremental image's parent */
	bool force;	    /* replace an existing CORE */
};

static int core_parse(const struct cli_invocation *inv, int argc, char **argv,
		      struct core_args *a)
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
		return cli_usage_error(inv, "missing --output CORE"), -EINVAL;
	if (!strcmp(a->output, "-") && isatty(STDOUT_FILENO))
		return cli_usage_error(inv, "refusing to write a core file to a terminal; "
					    "redirect stdout or use --output FILE"),
		       -EINVAL;
	return 0;
}

static void core_warn(const char *name, const struct img_core_report *rep)
{
	for (uint32_t bit = 1; bit & IMG_CORE_MISSING_ALL; bit <<= 1) {
		if (!(rep->missing & bit))
			continue;
		if (bit == IMG_CORE_PAGES_MISSING)
			cli_file_error(name, "warning: the core lacks %" PRIu64 " %s", rep->pages_missing,
				       img_core_missing_name(bit));
		else if (bit == IMG_CORE_PAGES_DISCARDED)
			cli_file_error(name, "warning: of those, %" PRIu64 " are %s",
				       rep->pages_discarded, img_core_missing_name(bit));
		else
			cli_file_error(name, "warning: the core lacks %s", img_core_missing_name(bit));
	}
}

static int core_write(const struct cli_image *img, struct img_chain *r, const char *output, int out)
{
	struct img_core_report rep = {0};
	struct img_error err = {0};
	char e[128], where[48], sz[32], mem[32];
	int k = img_core_write_chain(r, out, &rep, &err);

	if (k == -EPROTONOSUPPORT || k == -EBADMSG || k == -EFBIG)
		cli_file_error(img->name, "cannot write a core: %s", err.msg);
	else if (k < 0 && err.msg[0])
		cli_file_error(img->name, "cannot read: %s%s", err.msg,
			       cli_error_where(&err, where, sizeof(where)));
	else if (k < 0)
		cli_file_error(output, "cannot write: %s", cli_strerror(k, e, sizeof(e)));
	if (k < 0)
		return k;
	core_warn(img->name, &rep);
	fprintf(strcmp(output, "-") ? stdout : stderr,
		"%s: %u threads, %" PRIu64 " mappings, %s of memory content, %s\n", output,
		rep.threads, rep.segments, cli_format_size(rep.data_bytes, mem, sizeof(mem)),
		cli_format_size(rep.size, sz, sizeof(sz)));
	return 0;
}

/* A guest's image holds guest RAM and QEMU's threads: no process to write a core of. */
static int core_refuse_guest(const struct cli_image *img, struct img_chain *r)
{
	json_t *meta = json_loads(img_chain_meta(r), 0, NULL);
	bool guest = json_is_object(json_object_get(meta, "guest"));

	json_decref(meta);
	if (!guest)
		return 0;
	fprintf(stderr, "uffsnapctl: %s is a QEMU guest's image: its memory is guest RAM, not a "
			"process; restore it with `uffsnapctl qemu restore`\n", img->name);
	return -EPROTONOSUPPORT;
}

int cmd_image_core(const struct cli_invocation *inv, int argc, char **argv)
{
	struct cli_image img = {.fd = -EBADF};
	struct core_args a = {0};
	struct img_chain *r = NULL;
	struct img_error err;
	struct out_file o = OUT_FILE_INIT;
	int out, ret = CLI_EXIT_FAILURE;

	if (core_parse(inv, argc, argv, &a) < 0)
		return CLI_EXIT_USAGE;
	if (cli_image_open(a.path, &img) < 0)
		return CLI_EXIT_FAILURE;
	if (cli_chain_open(&img, a.parent, "writing a core", false, &r, &err) < 0 ||
	    core_refuse_guest(&img, r) < 0)
		goto out;
	out = cli_output_open(a.output, a.force, 0600, &o);
	if (cli_output_close(a.output, &o, out < 0 ? out : core_write(&img, r, a.output, out)) >= 0)
		ret = CLI_EXIT_OK;
out:
	img_chain_free(r);
	cli_image_close(&img);
	return ret;
}
