/* SPDX-License-Identifier: MIT */
/*
 * Incremental chains (FORMAT.md "Chains"): a child holds the pages that changed since its
 * parent's instant, UNMAPPED extents for what its parent had and it has not, and nothing else;
 * every other page is the parent's. Opening follows the parents down to a full image, checking
 * each link (the digest the child names, complete, the same page size, no loop). The chain's
 * extents are then resolved once, as a pre-copy image's frames are: every link's effective
 * extents, the full image's first and the top's last, later wins (img_resolve()).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "img-chain-int.h"

static int chain_grow(struct img_chain *c)
{
	size_t cap = c->cap ? 2 * c->cap : 8;
	struct img_chain_link *l = realloc(c->links, cap * sizeof(*l));
	int *fds;

	if (!l)
		return -ENOMEM;
	c->links = l;
	fds = realloc(c->fds, cap * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	c->fds = fds;
	c->cap = cap;
	return 0;
}

/* A parent that opened: it must be whole, the one its child names, of its page size. */
static int check_parent(const struct img_chain *c, const struct img_chain_link *l,
			const struct chain_parent *p, struct img_error *err)
{
	const char *child = c->links[c->depth - 1].path;
	uint32_t ps = img_reader_page_size(l->reader);

	if (!l->complete)
		return img_fail(err, 0, -ENODATA,
				"parent image %s of %s is incomplete: an incremental image reads "
				"through complete parents only",
				l->path, child);
	if (memcmp(l->digest, p->digest, IMG_DIGEST_SIZE))
		return img_fail(err, 0, -EBADMSG, "%s changed while it was opened", l->path);
	if (ps != c->page_size)
		return img_fail(err, 0, -EBADMSG,
				"parent image %s has pages of %u bytes, its child %s of %u",
				l->path, ps, child, c->page_size);
	return 0;
}

/* Opens path as the next link; p: what its child says of it (NULL for the top). */
static int link_open(struct img_chain *c, const char *path, const struct chain_parent *p,
		     struct img_error *err)
{
	struct img_chain_link l = {0};
	char msg[sizeof(err->msg)];
	int fd, k = c->depth == c->cap ? chain_grow(c) : 0;

	if (k < 0)
		return k;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return k = -errno, img_fail(err, 0, k, "cannot open %s: %s", path, strerror(-k));
	k = img_reader_open(fd, &l.reader, err);
	if (k < 0 && p && err) { /* the parent's own problem, said as the parent's */
		snprintf(msg, sizeof(msg), "%s", err->msg);
		img_fail(err, err->offset, k, "parent image %s: %s", path, msg);
	}
	if (k >= 0) {
		l.complete = img_reader_digest(l.reader, l.digest) == 0;
		l.path = strdup(path);
		k = l.path ? 0 : -ENOMEM;
	}
	if (k >= 0 && !c->depth)
		c->page_size = img_reader_page_size(l.reader);
	if (k >= 0 && p)
		k = check_parent(c, &l, p, err);
	if (k < 0) {
		img_reader_free(l.reader);
		free((char *)l.path);
		close(fd);
		return k;
	}
	c->fds[c->depth] = fd;
	c->links[c->depth++] = l;
	return 0;
}

/* --parent PATH: the top's parent as given, which must be the one the top names. */
static int given_parent(const char *path, const char *child, const struct chain_parent *p,
			struct img_error *err)
{
	uint8_t digest[IMG_DIGEST_SIZE];
	char hex[2 * IMG_DIGEST_SIZE + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), r;

	if (fd < 0)
		return r = -errno,
		       img_fail(err, 0, r, "cannot open parent image %s: %s", path, strerror(-r));
	r = chain_trailer_digest(fd, digest);
	close(fd);
	if (r == -ENODATA)
		return img_fail(err, 0, -ENODATA,
				"parent image %s of %s is incomplete or not an image (no trailer): "
				"an incremental image reads through complete parents only",
				path, child);
	if (r < 0)
		return img_fail(err, 0, r, "cannot read parent image %s: %s", path, strerror(-r));
	for (int i = 0; i < IMG_DIGEST_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	if (memcmp(digest, p->digest, IMG_DIGEST_SIZE))
		return img_fail(err, 0, -EBADMSG,
				"%s is not the parent of %s: its digest is %.16s..., the child "
				"names %.16s...",
				path, child, hex, p->hex);
	return 0;
}

/* A digest already in the chain: following it would go round for ever. */
static int check_loop(const struct img_chain *c, const struct chain_parent *p,
		      struct img_error *err)
{
	for (size_t i = 0; i < c->depth; i++)
		if (c->links[i].complete && !memcmp(c->links[i].digest, p->digest, IMG_DIGEST_SIZE))
			return img_fail(err, 0, -EBADMSG,
					"%s names as its parent %s, which is already in its chain "
					"(an image cannot be its own ancestor)",
					c->links[c->depth - 1].path, c->links[i].path);
	return 0;
}

/* Finds, checks and opens the parent of the last link. */
static int link_parent(struct img_chain *c, const char *parent_path, struct chain_finder **f,
		       struct img_error *err)
{
	const struct img_chain_link *child = &c->links[c->depth - 1];
	struct chain_parent p;
	char *path = NULL;
	int k;

	if (!child->complete)
		return img_fail(
		    err, 0, -ENODATA,
		    "%s is an incomplete incremental image: the pages it lacks may "
		    "have changed since its parent, so the chain cannot stand in for them",
		    child->path);
	if (c->depth == IMG_CHAIN_MAX_DEPTH)
		return img_fail(err, 0, -ELOOP, "the chain of %s is longer than %d images",
				c->links[0].path, IMG_CHAIN_MAX_DEPTH);
	k = chain_parse_parent(img_reader_meta(child->reader), child->path, &p, err);
	if (k >= 0)
		k = check_loop(c, &p, err);
	if (k >= 0 && c->depth == 1 && parent_path) {
		k = given_parent(parent_path, child->path, &p, err);
		path = k >= 0 ? strdup(parent_path) : NULL;
		k = k >= 0 && !path ? -ENOMEM : k;
	} else if (k >= 0) {
		k = chain_find_parent(f, child->path, &p, c->depth == 1, &path, err);
	}
	if (k >= 0)
		k = link_open(c, path, &p, err);
	free(path);
	return k;
}

/* Every link's effective extents, full image first: resolved, the top wins. */
static int chain_resolve(struct img_chain *c)
{
	const struct img_index_entry *e;
	struct img_index_entry *in;
	size_t n = 0, total = 0;
	int k;

	for (size_t i = 0; i < c->depth; i++)
		total += img_reader_index(c->links[i].reader, &e);
	in = malloc((total ? total : 1) * sizeof(*in));
	if (!in)
		return -ENOMEM;
	for (size_t i = c->depth; i-- > 0;) {
		size_t m = img_reader_index(c->links[i].reader, &e);

		for (size_t j = 0; j < m; j++, n++) /* offset: which link (img_resolve keeps it) */
			in[n] = (struct img_index_entry){e[j].addr, e[j].npages, i, e[j].type};
	}
	k = img_resolve(in, n, c->page_size, &c->table, &c->ntable);
	free(in);
	c->ext = k < 0 ? NULL : malloc((c->ntable ? c->ntable : 1) * sizeof(*c->ext));
	if (k >= 0 && !c->ext)
		k = -ENOMEM;
	for (size_t i = 0; k >= 0 && i < c->ntable; i++)
		if (c->table[i].type != IMG_FRAME_UNMAPPED)
			c->ext[c->next++] = (struct img_chain_extent){
			    c->table[i].addr, c->table[i].npages, c->table[i].type,
			    (uint32_t)c->table[i].offset};
	return k;
}

int img_chain_open(const char *path, const char *parent_path, struct img_chain **ret,
		   struct img_error *err)
{
	struct img_chain *c = calloc(1, sizeof(*c));
	struct chain_finder *f = NULL;
	int k;

	if (!c)
		return -ENOMEM;
	k = link_open(c, path, NULL, err);
	while (k >= 0 &&
	       (img_reader_flags(c->links[c->depth - 1].reader) & IMG_HEADER_F_INCREMENTAL))
		k = link_parent(c, parent_path, &f, err);
	chain_finder_free(f);
	if (k >= 0)
		k = chain_resolve(c);
	if (k < 0) {
		img_chain_free(c);
		return k;
	}
	*ret = c;
	return 0;
}

void img_chain_free(struct img_chain *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->depth; i++) {
		img_reader_free(c->links[i].reader);
		free((char *)c->links[i].path);
		close(c->fds[i]);
	}
	free(c->links);
	free(c->fds);
	free(c->table);
	free(c->ext);
	free(c);
}

const char *img_chain_meta(const struct img_chain *c)
{
	return img_reader_meta(c->links[0].reader);
}

uint32_t img_chain_page_size(const struct img_chain *c)
{
	return c->page_size;
}

size_t img_chain_depth(const struct img_chain *c)
{
	return c->depth;
}

const struct img_chain_link *img_chain_link(const struct img_chain *c, size_t i)
{
	return i < c->depth ? &c->links[i] : NULL;
}

size_t img_chain_extents(const struct img_chain *c, const struct img_chain_extent **ret)
{
	*ret = c->ext;
	return c->next;
}

/* The resolved extent holding addr, or NULL. */
static const struct img_index_entry *chain_lookup(const struct img_chain *c, uint64_t addr)
{
	size_t lo = 0, hi = c->ntable;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct img_index_entry *e = &c->table[mid];

		if (addr < e->addr)
			hi = mid;
		else if (addr - e->addr >= e->npages * c->page_size)
			lo = mid + 1;
		else
			return e;
	}
	return NULL;
}

/* Bytes of a PAGES extent, from the link holding it; its errors said as that link's. */
static int chain_read_link(struct img_chain *c, size_t link, uint64_t addr, uint8_t *buf,
			   size_t len, struct img_error *err)
{
	char msg[sizeof(err->msg)];
	int k = img_reader_read(c->links[link].reader, addr, buf, len, err);

	if (k < 0 && link && err) {
		snprintf(msg, sizeof(msg), "%s", err->msg);
		img_fail(err, err->offset, k, "in parent image %s: %s", c->links[link].path, msg);
	}
	return k;
}

static int chain_read_extent(struct img_chain *c, const struct img_index_entry *e, uint64_t addr,
			     uint8_t *buf, size_t len, struct img_error *err)
{
	switch (e->type) {
	case IMG_FRAME_ZERO:
		memset(buf, 0, len);
		return 0;
	case IMG_FRAME_DISCARDED:
		return img_fail(err, addr, -ESTALE,
				"0x%llx was discarded after the snapshot instant",
				(unsigned long long)addr);
	case IMG_FRAME_UNMAPPED:
		return img_fail(err, addr, -ENOENT, "0x%llx was not mapped at the snapshot instant",
				(unsigned long long)addr);
	}
	return chain_read_link(c, e->offset, addr, buf, len, err);
}

int img_chain_read(struct img_chain *c, uint64_t addr, void *buf, size_t len, struct img_error *err)
{
	uint8_t *out = buf;

	if (len && addr > UINT64_MAX - (len - 1))
		return img_fail(err, addr, -EINVAL, "range wraps around");
	while (len) {
		const struct img_index_entry *e = chain_lookup(c, addr);
		uint64_t end, n;
		int k;

		if (!e)
			return img_fail(err, addr, -ENOENT, "0x%llx is not in the image%s",
					(unsigned long long)addr,
					c->depth > 1 ? " nor in its parents" : "");
		end = e->addr + e->npages * c->page_size;
		n = end - addr < len ? end - addr : len;
		k = chain_read_extent(c, e, addr, out, n, err);
		if (k < 0)
			return k;
		out += n;
		addr += n;
		len -= n;
	}
	return 0;
}

int img_chain_verify(const struct img_chain *c, size_t first, size_t *ret_bad,
		     struct img_summary *ret_sum)
{
	for (size_t i = first; i < c->depth; i++) {
		int k;

		if (lseek(c->fds[i], 0, SEEK_SET) < 0)
			return -errno;
		k = img_verify_fd(c->fds[i], ret_sum, NULL);
		if (k < 0)
			return k;
		if (ret_sum->status != IMG_COMPLETE) {
			*ret_bad = i;
			return 0;
		}
	}
	*ret_bad = c->depth;
	return 0;
}
