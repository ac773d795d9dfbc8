/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl image info FILE [--json]: what an image holds. It verifies the whole image
 * (sequentially, so a pipe works) because its state -- complete, incomplete, corrupt -- is
 * part of the answer; what the META JSON lacks is left out rather than guessed. An incremental
 * image's chain is part of it too (info-chain.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli-args.h"
#include "cli-image.h"
#include "cli-meta.h"
#include "cmd-image.h"
#include "info-chain.h"

struct info {
	const char *name;
	struct img_summary sum;
	json_t *meta;	      /* NULL if the image has no readable META */
	char meta_error[256]; /* why meta is NULL although META text was found */
	char state[sizeof(((struct img_error *)0)->msg) + 96];
	struct info_chain chain;
};

static void info_print_target(const json_t *t)
{
	char cb[4 * 64], eb[4 * 4096];
	const char *comm = cli_json_str_shown(t, "comm", cb, sizeof(cb));
	const char *exe = cli_json_str_shown(t, "exe", eb, sizeof(eb));
	uint64_t pid;

	if (!json_is_object(t))
		return;
	printf("target:     ");
	if (cli_json_u64(t, "pid", &pid) >= 0)
		printf("pid %" PRIu64 " ", pid);
	if (comm)
		printf("(%s) ", comm);
	printf("%s\n", exe ? exe : "");
}

/*
 * The snapshot instant: the writer's ISO 8601 text if any, else formatted from realtime_ns. A
 * pre-copy image cut before its second META has only the first's: when the snapshot started.
 */
static void info_print_time(const json_t *t, const struct img_summary *s)
{
	bool started = (s->header.flags & IMG_HEADER_F_REWRITES) && s->metas < 2;
	char ib[4 * 64], buf[64] = "";
	const char *iso = cli_json_str_shown(t, "iso8601", ib, sizeof(ib));
	uint64_t ns;

	if (cli_json_u64(t, "realtime_ns", &ns) >= 0 && !iso) {
		time_t sec = (time_t)(ns / 1000000000u);
		struct tm tm;

		if (gmtime_r(&sec, &tm))
			strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
		iso = buf;
	}
	if (iso)
		printf("%-12s%s\n", started ? "started:" : "snapshot:", iso);
}

static void info_print_pair(const char *label, const json_t *obj, const char *k1, const char *k2)
{
	char ab[4 * 256], bb[4 * 256];
	const char *a = cli_json_str_shown(obj, k1, ab, sizeof(ab));
	const char *b = cli_json_str_shown(obj, k2, bb, sizeof(bb));

	if (a || b)
		printf("%-12s%s%s%s\n", label, a ? a : "", a && b ? " " : "", b ? b : "");
}

static void info_print_pages(const char *label, uint64_t pages, uint32_t page_size)
{
	char size[32];

	printf("%-12s%" PRIu64 " page%s, %s\n", label, pages, pages == 1 ? "" : "s",
	       cli_format_size(cli_pages_bytes(pages, page_size), size, sizeof(size)));
}

/* A QEMU guest's image (format 1.1): the machine, QEMU, each memory backend, the device state. */
static void info_print_guest(const struct info *in)
{
	const json_t *g = json_object_get(in->meta, "guest"), *b;
	char vb[4 * 64], mb[4 * 128], ib[4 * 128], tb[4 * 64], bb[4 * 256], size[32];
	const char *version = cli_json_str_shown(g, "qemu_version", vb, sizeof(vb));
	const char *machine = cli_json_str_shown(g, "machine", mb, sizeof(mb));
	size_t i;
	uint64_t n;

	if (!json_is_object(g))
		return;
	printf("guest:      QEMU %s, machine %s\n", version ? version : "?", machine ? machine : "?");
	if (cli_json_str_shown(g, "binary", bb, sizeof(bb)))
		printf("qemu:       %s, a command line of %zu words (qemu restore --dry-run)\n", bb,
		       json_array_size(json_object_get(g, "argv")));
	json_array_foreach(json_object_get(g, "backends"), i, b) {
		const char *id = cli_json_str_shown(b, "id", ib, sizeof(ib));
		const char *type = cli_json_str_shown(b, "type", tb, sizeof(tb));

		printf("backend:    %s (%s)", id ? id : "?", type ? type : "?");
		if (cli_json_u64(b, "size", &n) >= 0)
			printf(", %s", cli_format_size(n, size, sizeof(size)));
		if (cli_json_u64(b, "addr", &n) >= 0)
			printf(" at 0x%" PRIx64, n);
		printf("\n");
	}
	printf("devstate:   %s in %" PRIu64 " frame%s", cli_format_size(in->sum.devstate_bytes, size,
								      sizeof(size)),
	       in->sum.devstate_frames, in->sum.devstate_frames == 1 ? "" : "s");
	if (cli_json_u64(json_object_get(g, "devstate"), "size", &n) >= 0 &&
	    n != in->sum.devstate_bytes)
		printf(" (of %" PRIu64 " bytes recorded: cut short)", n);
	printf("\n");
}

/*
 * What only a pre-copy or incremental image (1.2) has: pages unmapped at its instant, pages
 * saved by a round and then saved again by a later one, and whether it reached its instant.
 */
static void info_print_rewrites(const struct img_summary *s)
{
	uint32_t ps = s->header.page_size;

	if (!(s->header.flags & (IMG_HEADER_F_REWRITES | IMG_HEADER_F_INCREMENTAL)) &&
	    !s->unmapped_pages)
		return;
	info_print_pages("unmapped:", s->unmapped_pages, ps);
	if (!(s->header.flags & IMG_HEADER_F_REWRITES))
		return;
	info_print_pages("superseded:", s->superseded_pages, ps);
	printf("instant:    %s\n", s->metas > 1 ? "reached (metadata from the second META)"
						: "not reached (cut before its second META)");
}

static void info_print_text(const struct info *in)
{
	const struct img_summary *s = &in->sum;
	uint32_t ps = s->header.page_size;
	long n;
	char size[32], kind[256];

	printf("image:      %s\n", in->name);
	printf("state:      %s\n", in->state);
	printf("format:     %u.%u, page size %" PRIu32 "\n", s->header.version_major,
	       s->header.version_minor, ps);
	if (s->header.flags)
		printf("kind:       %s\n", cli_flags_describe(s->header.flags, kind, sizeof(kind)));
	info_print_target(json_object_get(in->meta, "target"));
	info_print_time(json_object_get(in->meta, "time"), s);
	info_print_pair("kernel:", json_object_get(in->meta, "kernel"), "release", "machine");
	info_print_pair("tool:", json_object_get(in->meta, "tool"), "name", "version");
	info_print_guest(in);
	if (!in->meta)
		printf("metadata:   %s\n", in->meta_error);
	info_print_pages("data:", s->data_pages, ps);
	info_print_pages("zero:", s->zero_pages, ps);
	info_print_pages("discarded:", s->discarded_pages, ps);
	info_print_rewrites(s);
	info_chain_print(&in->chain, in->meta);
	printf("frames:     %" PRIu64 " (%" PRIu64 " progress mark%s, %" PRIu64 " event%s)\n",
	       s->frames, s->progress_marks, s->progress_marks == 1 ? "" : "s", s->events,
	       s->events == 1 ? "" : "s");
	if ((n = cli_json_array_len(in->meta, "vmas")) >= 0)
		printf("vmas:       %ld\n", n);
	if ((n = cli_json_array_len(in->meta, "threads")) >= 0)
		printf("threads:    %ld\n", n);
	printf("size:       %s (%" PRIu64 " bytes%s)\n",
	       cli_format_size(s->valid_bytes, size, sizeof(size)), s->valid_bytes,
	       s->status == IMG_COMPLETE ? "" : " valid");
}

/* Adds "NAME_pages" and "NAME_bytes". */
static void info_json_pages(json_t *o, const char *name, uint64_t pages, uint32_t ps)
{
	char key[32];

	snprintf(key, sizeof(key), "%s_pages", name);
	json_object_set_new(o, key, cli_json_u64_new(pages));
	snprintf(key, sizeof(key), "%s_bytes", name);
	json_object_set_new(o, key, cli_json_u64_new(cli_pages_bytes(pages, ps)));
}

static json_t *info_json(const struct info *in)
{
	static const char *const copied[] = {"target", "time", "kernel", "tool", "guest", "parent"};
	const struct img_summary *s = &in->sum;
	json_t *o = json_object();
	long n;

	json_object_set_new(o, "file", json_string(in->name));
	json_object_set_new(o, "status", json_string(cli_status_name(s->status)));
	if (s->status != IMG_COMPLETE)
		json_object_set_new(o, "error",
				    json_pack("{s:o,s:s}", "offset",
					      cli_json_u64_new(s->error.offset), "message",
					      s->error.msg));
	json_object_set_new(
	    o, "version", json_sprintf("%u.%u", s->header.version_major, s->header.version_minor));
	json_object_set_new(o, "page_size", json_integer(s->header.page_size));
	json_object_set_new(o, "flags", cli_flags_json(s->header.flags));
	for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++)
		if (json_object_get(in->meta, copied[i]))
			json_object_set(o, copied[i], json_object_get(in->meta, copied[i]));
	info_json_pages(o, "data", s->data_pages, s->header.page_size);
	info_json_pages(o, "zero", s->zero_pages, s->header.page_size);
	info_json_pages(o, "discarded", s->discarded_pages, s->header.page_size);
	if (s->header.flags || s->unmapped_pages) {
		info_json_pages(o, "unmapped", s->unmapped_pages, s->header.page_size);
		info_json_pages(o, "superseded", s->superseded_pages, s->header.page_size);
		json_object_set_new(o, "metas", cli_json_u64_new(s->metas));
	}
	json_object_set_new(o, "frames", cli_json_u64_new(s->frames));
	json_object_set_new(o, "progress_marks", cli_json_u64_new(s->progress_marks));
	json_object_set_new(o, "events", cli_json_u64_new(s->events));
	if (json_object_get(in->meta, "guest") || s->devstate_frames) {
		json_object_set_new(o, "devstate_frames", cli_json_u64_new(s->devstate_frames));
		json_object_set_new(o, "devstate_bytes", cli_json_u64_new(s->devstate_bytes));
	}
	if ((n = cli_json_array_len(in->meta, "vmas")) >= 0)
		json_object_set_new(o, "vmas", json_integer(n));
	if ((n = cli_json_array_len(in->meta, "threads")) >= 0)
		json_object_set_new(o, "threads", json_integer(n));
	info_chain_json(&in->chain, o);
	json_object_set_new(o, "valid_bytes", cli_json_u64_new(s->valid_bytes));
	return o;
}

static int info_print_json(const struct info *in)
{
	json_t *o = info_json(in);
	int r = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	putchar('\n');
	json_decref(o);
	return r;
}

static int info_parse(const struct cli_invocation *inv, int argc, char **argv, int *ret_json,
		      const char **ret_path, const char **ret_parent)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"parent", required_argument, NULL, 'p'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = cli_getopt(inv, argc, argv, "p:", opts)) != -1) {
		if (c == 'p')
			*ret_parent = optarg;
		else if (c == 'j')
			*ret_json = 1;
		else
			return -EINVAL;
	}
	*ret_path = cli_one_operand(inv, argc, argv, "FILE");
	return *ret_path ? 0 : -EINVAL;
}

/* Verifies the image and parses its META. Returns 0 if there is something to show. */
static int info_load(struct info *in, int fd)
{
	char *text = NULL, e[128];
	int r;

	r = img_verify_fd(fd, &in->sum, &text);
	if (r < 0) {
		cli_file_error(in->name, "cannot read: %s", cli_strerror(r, e, sizeof(e)));
		return r;
	}
	cli_status_describe(&in->sum, in->state, sizeof(in->state));
	if (!text && in->sum.status != IMG_COMPLETE) {
		/* Not even a header and META: there is nothing to show but the problem. */
		cli_file_error(in->name, "%s", in->state);
		return -EBADMSG;
	}
	if (text)
		in->meta = cli_meta_parse(text, in->meta_error, sizeof(in->meta_error));
	else
		snprintf(in->meta_error, sizeof(in->meta_error), "none");
	free(text);
	return 0;
}

int cmd_image_info(const struct cli_invocation *inv, int argc, char **argv)
{
	struct cli_image img = {.fd = -EBADF};
	struct info in = {0};
	const char *path, *parent = NULL;
	int json = 0, ret = CLI_EXIT_FAILURE;

	if (info_parse(inv, argc, argv, &json, &path, &parent) < 0)
		return CLI_EXIT_USAGE;
	if (cli_image_open(path, &img) < 0)
		return CLI_EXIT_FAILURE;
	in.name = img.name;
	if (info_load(&in, img.fd) < 0)
		goto out;
	if (in.sum.status == IMG_COMPLETE)
		info_chain_load(&in.chain, &img, parent, in.sum.header.flags);
	if (json)
		info_print_json(&in);
	else
		info_print_text(&in);
	fflush(stdout);
	if (in.sum.status != IMG_COMPLETE) {
		cli_file_error(in.name, "%s", in.state);
		goto out;
	}
	if (in.chain.error[0]) {
		cli_file_error(in.name, "cannot resolve its chain: %s", in.chain.error);
		goto out;
	}
	ret = CLI_EXIT_OK;
out:
	info_chain_free(&in.chain);
	json_decref(in.meta);
	cli_image_close(&img);
	return ret;
}
