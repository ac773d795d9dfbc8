/* SPDX-License-Identifier: MIT */
/*
 * A chain written out as one full image (FORMAT.md "Chains"): what a reader of the chain sees,
 * with no parent left to find. The top's META loses its parent member (the result names no
 * parent) and keeps everything else; the extents are the chain's effective ones, data read
 * through the chain, so that every page of the output is what img_chain_read() returns.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "img-chain-int.h"

/* Bytes copied per read and write: the writer splits frames at 1 MiB anyway. */
#define FLATTEN_CHUNK (1u << 20)

/* The top's META without "parent", compact, malloc'd in *ret. */
static int meta_without_parent(const char *meta, char **ret, struct img_error *err)
{
	json_t *m = json_loads(meta, 0, NULL);
	int k = 0;

	*ret = NULL;
	if (json_is_object(m)) {
		json_object_del(m, "parent");
		*ret = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
		k = *ret ? 0 : -ENOMEM;
	} else {
		k = img_fail(err, 0, -EBADMSG, "the metadata is not a JSON object");
	}
	json_decref(m);
	return k;
}

/* The top's device state (a guest's), as it is: device state is never incremental. */
static int flatten_devstate(struct img_chain *c, struct img_writer *w, struct img_error *err)
{
	void *buf = NULL;
	size_t len = 0;
	int k = img_reader_devstate(c->links[0].reader, &buf, &len);

	if (k == -ENOENT)
		return 0;
	if (k >= 0)
		k = img_writer_devstate(w, buf, len);
	else
		img_fail(err, 0, k, "cannot read the device state of %s", c->links[0].path);
	free(buf);
	return k;
}

static int flatten_pages(struct img_chain *c, struct img_writer *w,
			 const struct img_chain_extent *e, uint8_t *buf, struct img_error *err)
{
	uint64_t ps = c->page_size, per = FLATTEN_CHUNK / ps ? FLATTEN_CHUNK / ps : 1;

	for (uint64_t done = 0; done < e->npages;) {
		uint64_t n = e->npages - done < per ? e->npages - done : per;
		uint64_t addr = e->addr + done * ps;
		int k = img_chain_read(c, addr, buf, n * ps, err);

		if (k >= 0 && (k = img_writer_pages(w, addr, n, buf)) < 0)
			img_fail(err, 0, k, "cannot write the pages at 0x%llx",
				 (unsigned long long)addr);
		if (k < 0)
			return k;
		done += n;
	}
	return 0;
}

static int flatten_extents(struct img_chain *c, struct img_writer *w, struct img_error *err)
{
	uint8_t *buf = malloc(c->page_size > FLATTEN_CHUNK ? c->page_size : FLATTEN_CHUNK);
	int k = buf ? 0 : -ENOMEM;

	for (size_t i = 0; k >= 0 && i < c->next; i++) {
		const struct img_chain_extent *e = &c->ext[i];

		if (e->type == IMG_FRAME_PAGES)
			k = flatten_pages(c, w, e, buf, err);
		else if (e->type == IMG_FRAME_ZERO)
			k = img_writer_zero(w, e->addr, e->npages);
		else
			k = img_writer_discarded(w, e->addr, e->npages);
	}
	free(buf);
	return k;
}

int img_chain_flatten(struct img_chain *c, struct img_sink *sink, struct img_writer_stats *ret,
		      struct img_error *err)
{
	struct img_writer_opts opts = {.page_size = c->page_size};
	struct img_writer *w = NULL;
	char *meta;
	int k;

	if (!c->links[0].complete)
		return img_fail(err, 0, -ENODATA,
				"%s is incomplete: a full image made of it would pass for whole",
				c->links[0].path);
	k = meta_without_parent(img_chain_meta(c), &meta, err);
	if (k >= 0)
		k = img_writer_new(&opts, sink, &w);
	if (k >= 0)
		k = img_writer_begin(w, meta, strlen(meta));
	if (k >= 0)
		k = flatten_devstate(c, w, err);
	if (k >= 0)
		k = flatten_extents(c, w, err);
	if (k >= 0)
		k = img_writer_finish(w);
	if (k >= 0 && ret)
		img_writer_get_stats(w, ret);
	img_writer_free(w);
	free(meta);
	return k;
}
