/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl image info on an incremental image: the parent its metadata names, and the chain
 * as found -- each link's file, instant and digest, top first -- with the pages of the chain's
 * instant. A chain that cannot be resolved is shown as such; the command then fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli-meta.h"
#include "info-chain.h"

void info_chain_load(struct info_chain *ic, const struct cli_image *img, const char *parent,
		     uint32_t flags)
{
	struct img_error err;

	memset(ic, 0, sizeof(*ic));
	ic->incremental = flags & IMG_HEADER_F_INCREMENTAL;
	if (!ic->incremental || !img->seekable || !img->owned)
		return;
	if (cli_chain_open(img, parent, "reading its chain", true, &ic->c, &err) < 0)
		snprintf(ic->error, sizeof(ic->error), "%s", err.msg[0] ? err.msg : "cannot read");
}

void info_chain_free(struct info_chain *ic)
{
	img_chain_free(ic->c);
	ic->c = NULL;
}

/* A link's instant, from its own metadata: its time.iso8601, for a terminal. */
static const char *link_time(const struct img_chain_link *l, char *buf, size_t len)
{
	json_t *m = json_loads(img_reader_meta(l->reader), 0, NULL);
	const char *t = cli_json_str_shown(json_object_get(m, "time"), "iso8601", buf, len);

	json_decref(m);
	return t ? t : "?";
}

/* The chain's pages by type (its effective extents). */
static void chain_pages(const struct img_chain *c, uint64_t n[4])
{
	const struct img_chain_extent *e;
	size_t ne = img_chain_extents(c, &e);

	memset(n, 0, 4 * sizeof(*n));
	for (size_t i = 0; i < ne; i++)
		n[e[i].type == IMG_FRAME_PAGES	? 0
		  : e[i].type == IMG_FRAME_ZERO ? 1
						: 2] += e[i].npages;
}

static void print_parent(const json_t *meta)
{
	const json_t *p = json_object_get(meta, "parent");
	char db[4 * 80], tb[4 * 64], fb[4 * 256];
	const char *digest = cli_json_str_shown(p, "digest", db, sizeof(db));
	const char *time = cli_json_str_shown(p, "time", tb, sizeof(tb));
	const char *file = cli_json_str_shown(p, "file", fb, sizeof(fb));

	printf("parent:     %.12s, taken %s, file %s\n", digest ? digest : "(none named)",
	       time ? time : "?", file ? file : "?");
}

void info_chain_print(const struct info_chain *ic, const json_t *meta)
{
	char tb[4 * 64], hex[2 * IMG_DIGEST_SIZE + 1];
	uint64_t n[4];

	if (!ic->incremental)
		return;
	print_parent(meta);
	if (!ic->c) {
		printf("chain:      %s\n", ic->error[0] ? ic->error
							: "not looked up (the image is read "
							  "from a pipe: give the file)");
		return;
	}
	chain_pages(ic->c, n);
	printf("chain:      %zu images; at the instant %" PRIu64 " data, %" PRIu64 " zero, %" PRIu64
	       " discarded pages\n",
	       img_chain_depth(ic->c), n[0], n[1], n[2]);
	for (size_t i = 0; i < img_chain_depth(ic->c); i++) {
		const struct img_chain_link *l = img_chain_link(ic->c, i);
		char label[32];

		snprintf(label, sizeof(label), "link %zu:", i);
		printf("%-12s%s, taken %s, digest %s\n", label, l->path,
		       link_time(l, tb, sizeof(tb)), cli_digest_hex(l->digest, 6, hex));
	}
}

static json_t *link_json(const struct img_chain_link *l)
{
	char hex[2 * IMG_DIGEST_SIZE + 1];
	json_t *m = json_loads(img_reader_meta(l->reader), 0, NULL);
	json_t *o = json_pack("{s:s,s:O?,s:s,s:o}", "file", l->path, "time",
			      json_object_get(json_object_get(m, "time"), "iso8601"), "digest",
			      cli_digest_hex(l->digest, IMG_DIGEST_SIZE, hex), "flags",
			      cli_flags_json(img_reader_flags(l->reader)));

	json_decref(m);
	return o;
}

void info_chain_json(const struct info_chain *ic, json_t *o)
{
	json_t *a;
	uint64_t n[4];

	if (!ic->incremental)
		return;
	if (!ic->c) {
		json_object_set_new(o, "chain_error",
				    json_string(ic->error[0] ? ic->error : "read from a pipe"));
		return;
	}
	a = json_array();
	for (size_t i = 0; i < img_chain_depth(ic->c); i++)
		json_array_append_new(a, link_json(img_chain_link(ic->c, i)));
	json_object_set_new(o, "chain", a);
	chain_pages(ic->c, n);
	json_object_set_new(o, "chain_data_pages", cli_json_u64_new(n[0]));
	json_object_set_new(o, "chain_zero_pages", cli_json_u64_new(n[1]));
	json_object_set_new(o, "chain_discarded_pages", cli_json_u64_new(n[2]));
}
