/* SPDX-License-Identifier: MIT */
/*
 * uffsnap-check IMAGE LAYOUT_JSON_FILE: is the image exactly one instant's memory of the
 * workload whose start-up layout line is in LAYOUT_JSON_FILE?
 * Exit 0: consistent; 1: not consistent (or the image is unreadable); 2: usage or I/O error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uffsnap/image.h>

#include "wl-check.h"

enum { EXIT_CONSISTENT = 0, EXIT_INCONSISTENT = 1, EXIT_USAGE = 2 };

struct check_args {
	bool allow_discarded;
	bool quiet;
	unsigned max_reports;
	const char *image;
	const char *layout;
};

static void check_usage(FILE *f)
{
	fprintf(f, "usage: uffsnap-check [--allow-discarded] [--max-reports N] [--quiet] "
		   "IMAGE LAYOUT_JSON_FILE\n"
		   "  --allow-discarded  pages discarded after the instant are acceptable\n"
		   "                     (they are still reported and counted)\n"
		   "  --max-reports N    problem lines per thread (default 20)\n"
		   "  --quiet            only the verdict line\n"
		   "exit: 0 consistent, 1 not consistent or image unreadable, 2 usage\n");
}

static int check_parse(int argc, char **argv, struct check_args *a)
{
	static const struct option opts[] = {{"allow-discarded", no_argument, NULL, 'd'},
					     {"max-reports", required_argument, NULL, 'm'},
					     {"quiet", no_argument, NULL, 'q'},
					     {"help", no_argument, NULL, 'h'},
					     {}};
	int c;

	while ((c = getopt_long(argc, argv, "dm:qh", opts, NULL)) != -1) {
		if (c == 'd')
			a->allow_discarded = true;
		else if (c == 'q')
			a->quiet = true;
		else if (c == 'm')
			a->max_reports = (unsigned)strtoul(optarg, NULL, 10);
		else
			return c == 'h' ? 1 : -EINVAL;
	}
	if (argc - optind != 2)
		return -EINVAL;
	a->image = argv[optind];
	a->layout = argv[optind + 1];
	return 0;
}

static void check_print_line(void *userdata, const char *line)
{
	printf("%s\n", line);
}

static void check_print_result(const struct wl_layout *l, const struct wl_verify_result *res)
{
	printf("%s: threads=%" PRIu32 " stores=%" PRIu64 " problems=%" PRIu64
	       " discarded_pages=%" PRIu64 " missing_pages=%" PRIu64 " bad_pages=%" PRIu64 "\n",
	       res->consistent ? "consistent" : "INCONSISTENT", res->nthreads, res->stores,
	       res->problems, res->discarded_pages, res->missing_pages, res->bad_pages);
	for (uint32_t t = 0; t < res->nthreads; t++)
		printf("thread %" PRIu32 ": stores %" PRIu64 " counter %s%" PRIu64 "\n", t,
		       res->k[t], res->has_counter[t] ? "" : "(not in image) ", res->counter[t]);
	for (size_t i = 0; i < l->nscratch; i++)
		printf("scratch %s at 0x%" PRIx64 " (%" PRIu32 " pages): not verified\n",
		       l->scratch[i].event, l->scratch[i].addr, l->scratch[i].pages);
}

static int check_run(const struct check_args *a, const struct wl_layout *l)
{
	struct wl_check_opts o = {.allow_discarded = a->allow_discarded,
				  .max_reports = a->max_reports,
				  .report = a->quiet ? NULL : check_print_line};
	struct img_reader *r = NULL;
	struct img_error err = {0};
	struct wl_verify_result res;
	int fd = -EBADF, k, ret = EXIT_USAGE;

	fd = open(a->image, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "uffsnap-check: cannot open %s: %m\n", a->image);
		goto out;
	}
	ret = EXIT_INCONSISTENT;
	k = img_reader_open(fd, &r, &err);
	if (k < 0) {
		printf("INCONSISTENT: cannot read image %s: %s (offset %" PRIu64 ")\n", a->image,
		       err.msg[0] ? err.msg : strerror(-k), err.offset);
		goto out;
	}
	k = wl_check_image(r, l, &o, &res);
	if (k < 0) {
		printf("INCONSISTENT: reading the workload's regions failed: %s\n", strerror(-k));
		goto out;
	}
	if (!a->quiet)
		check_print_result(l, &res);
	else
		printf("%s\n", res.consistent ? "consistent" : "INCONSISTENT");
	ret = res.consistent ? EXIT_CONSISTENT : EXIT_INCONSISTENT;
out:
	img_reader_free(r);
	if (fd >= 0)
		close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	struct check_args a = {0};
	struct wl_layout l;
	char err[256];
	int k = check_parse(argc, argv, &a);

	if (k != 0) {
		check_usage(k > 0 ? stdout : stderr);
		return k > 0 ? EXIT_CONSISTENT : EXIT_USAGE;
	}
	k = wl_layout_load(a.layout, &l, err, sizeof(err));
	if (k < 0) {
		fprintf(stderr, "uffsnap-check: layout %s: %s\n", a.layout,
			k == -EINVAL ? err : strerror(-k));
		return EXIT_USAGE;
	}
	return check_run(&a, &l);
}
