/* SPDX-License-Identifier: MIT */
/*
 * Incremental chains (format 1.2, header flag INCREMENTAL): chains of real images written by
 * img_writer into a temporary directory -- a full image, children overwriting pages at every
 * depth, ZERO over a parent's PAGES, UNMAPPED pages a parent had, a pre-copied child -- read
 * through img_chain_* page by page against a page map applied link by link; flattened, and the
 * result read back equal to the chain; and each way a chain can be broken: a parent missing,
 * renamed, elsewhere (--parent), wrong, of another page size, incomplete, an incomplete child,
 * a child naming no parent, an image naming itself as its parent (a loop), a corrupt link.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "img-test-util.h"
#include "uffsnap/chain.h"

#define CH_PS	   4096u
#define CH_BASE	   0x7f0000000000ull
#define CH_WINDOW  48 /* pages the tests write in */
#define CH_ADDR(p) (CH_BASE + (uint64_t)(p)*CH_PS)
#define CH_MAXLINK 8

/* One writer call; IMG_FRAME_META: the second META of a pre-copied link. */
struct ch_op {
	uint16_t type;
	uint32_t first, npages;
};

struct ch_link {
	const char *name;
	uint32_t flags; /* header flags; INCREMENTAL for every link but the first */
	const struct ch_op *ops;
	size_t nops;
};

/* What the chain says of a page: type 0 for nothing; link and op say whose content. */
struct ch_page {
	uint16_t type;
	uint32_t link, op;
};

struct ch_test {
	char dir[64];
	uint64_t seed;
};

static void ch_content(uint64_t seed, uint32_t link, uint32_t op, uint64_t addr, void *buf,
		       size_t len)
{
	imgtest_fill(seed ^ (link * 0x9e3779b97f4a7c15ull) ^ (op * 0xc2b2ae3d27d4eb4full), addr,
		     buf, len);
}

static void ch_path(const struct ch_test *t, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", t->dir, name);
}

static void ch_hex(const uint8_t *d, char out[2 * IMG_DIGEST_SIZE + 1])
{
	for (int i = 0; i < IMG_DIGEST_SIZE; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The parent member naming the complete image at path (its file name as the hint). */
static void ch_parent_member(const char *path, char *out, size_t len)
{
	uint8_t d[IMG_DIGEST_SIZE];
	char hex[2 * IMG_DIGEST_SIZE + 1];
	struct img_reader *r;
	struct img_error err;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(img_reader_open(fd, &r, &err), 0);
	assert_int_equal(img_reader_digest(r, d), 0);
	ch_hex(d, hex);
	snprintf(out, len, ",\"parent\":{\"digest\":\"%s\",\"time\":\"t-%s\",\"file\":\"%s\"}", hex,
		 strrchr(path, '/') + 1, strrchr(path, '/') + 1);
	img_reader_free(r);
	close(fd);
}

static int ch_write_op(struct img_writer *w, const struct ch_test *t, uint32_t link, uint32_t op,
		       const struct ch_op *o, const char *meta)
{
	uint64_t addr = CH_ADDR(o->first);
	uint8_t *buf;
	int r;

	switch (o->type) {
	case IMG_FRAME_META:
		return img_writer_meta(w, meta, strlen(meta));
	case IMG_FRAME_ZERO:
		return img_writer_zero(w, addr, o->npages);
	case IMG_FRAME_DISCARDED:
		return img_writer_discarded(w, addr, o->npages);
	case IMG_FRAME_UNMAPPED:
		return img_writer_unmapped(w, addr, o->npages);
	}
	buf = malloc((size_t)o->npages * CH_PS);
	assert_non_null(buf);
	ch_content(t->seed, link, op, addr, buf, (size_t)o->npages * CH_PS);
	r = img_writer_pages(w, addr, o->npages, buf);
	free(buf);
	return r;
}

/*
 * Writes link i of links[] as t->dir/NAME; its META names the link before it (parent_name, or
 * NULL for none). finish 0 leaves it without index and trailer.
 */
static void ch_write(const struct ch_test *t, const struct ch_link *l, uint32_t i,
		     const char *parent_name, uint32_t page_size, bool finish)
{
	struct img_writer_opts o = {.page_size = page_size, .flags = l->flags};
	char path[128], ppath[128], member[256] = "", meta[512];
	struct img_writer *w;
	struct img_sink *s;
	int fd;

	if (parent_name) {
		ch_path(t, parent_name, ppath, sizeof(ppath));
		ch_parent_member(ppath, member, sizeof(member));
	}
	snprintf(meta, sizeof(meta),
		 "{\"format\":\"uffsnap\",\"version\":1,\"link\":%u,"
		 "\"time\":{\"iso8601\":\"t-%s\"}%s}",
		 i, l->name, member);
	ch_path(t, l->name, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(img_sink_fd_new(fd, &s), 0);
	assert_int_equal(img_writer_new(&o, s, &w), 0);
	assert_int_equal(img_writer_begin(w, meta, strlen(meta)), 0);
	for (uint32_t k = 0; k < l->nops; k++)
		assert_int_equal(ch_write_op(w, t, i, k, &l->ops[k], meta), 0);
	if (finish)
		assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	img_sink_free(s);
	close(fd);
}

/* Writes links[0..n) in order, each naming the one before it. */
static void ch_write_chain(const struct ch_test *t, const struct ch_link *links, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ch_write(t, &links[i], (uint32_t)i, i ? links[i - 1].name : NULL, CH_PS, true);
}

/* The page map of the chain's instant: links[0..n) applied in order, each op in order. */
static void ch_model(const struct ch_link *links, size_t n, struct ch_page m[CH_WINDOW])
{
	memset(m, 0, CH_WINDOW * sizeof(*m));
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < links[i].nops; k++) {
			const struct ch_op *o = &links[i].ops[k];

			for (uint32_t p = o->first;
			     o->type != IMG_FRAME_META && p < o->first + o->npages; p++)
				m[p] = (struct ch_page){o->type, i, k};
		}
}

static int ch_expect(const struct ch_test *t, const struct ch_page *m, uint32_t first, uint32_t n,
		     uint8_t *buf)
{
	for (uint32_t p = first; p < first + n; p++) {
		uint8_t *out = buf + (size_t)(p - first) * CH_PS;

		if (!m[p].type || m[p].type == IMG_FRAME_UNMAPPED)
			return -ENOENT;
		if (m[p].type == IMG_FRAME_DISCARDED)
			return -ESTALE;
		if (m[p].type == IMG_FRAME_ZERO)
			memset(out, 0, CH_PS);
		else
			ch_content(t->seed, m[p].link, m[p].op, CH_ADDR(p), out, CH_PS);
	}
	return 0;
}

/* Every page, every run of 1..6 pages and the whole window, and the extents, as the model. */
static void ch_check(const struct ch_test *t, struct img_chain *c, const struct ch_page *m)
{
	static uint8_t got[CH_WINDOW * CH_PS], want[CH_WINDOW * CH_PS];
	const struct img_chain_extent *e;
	size_t n = img_chain_extents(c, &e), covered = 0;
	struct img_error err;

	for (uint32_t p = 0; p < CH_WINDOW; p++)
		for (uint32_t len = 1; len <= 6 && p + len <= CH_WINDOW; len++) {
			int k = img_chain_read(c, CH_ADDR(p), got, (size_t)len * CH_PS, &err);
			int x = ch_expect(t, m, p, len, want);

			if (k != x)
				fail_msg("read of pages %u+%u: %d (%s), expected %d", p, len, k,
					 err.msg, x);
			if (k == 0 && memcmp(got, want, (size_t)len * CH_PS))
				fail_msg("read of pages %u+%u: wrong bytes", p, len);
			if (len == 1 && m[p].type == IMG_FRAME_UNMAPPED)
				assert_non_null(
				    strstr(err.msg, "not mapped at the snapshot instant"));
		}
	for (size_t i = 0; i < n; i++) {
		assert_true(i == 0 || e[i - 1].addr + e[i - 1].npages * CH_PS <= e[i].addr);
		for (uint64_t p = 0; p < e[i].npages; p++) {
			const struct ch_page *x = &m[(e[i].addr - CH_BASE) / CH_PS + p];

			assert_int_equal(x->type, e[i].type);
			assert_int_equal(img_chain_depth(c) - 1 - e[i].link, x->link);
		}
		covered += e[i].npages;
	}
	for (uint32_t p = 0; p < CH_WINDOW; p++)
		covered -= m[p].type && m[p].type != IMG_FRAME_UNMAPPED;
	assert_int_equal(covered, 0);
}

static struct img_chain *ch_open(const struct ch_test *t, const char *name, const char *parent)
{
	struct img_chain *c = NULL;
	struct img_error err = {0};
	char path[128];
	int k;

	ch_path(t, name, path, sizeof(path));
	k = img_chain_open(path, parent, &c, &err);
	if (k < 0)
		fail_msg("chain of %s: %d %s", name, k, err.msg);
	return c;
}

/* The error img_chain_open() gives, its message containing want. */
static void ch_open_fails(const struct ch_test *t, const char *name, const char *parent, int rc,
			  const char *want)
{
	struct img_chain *c = NULL;
	struct img_error err = {0};
	char path[128];
	int k;

	ch_path(t, name, path, sizeof(path));
	k = img_chain_open(path, parent, &c, &err);
	if (k != rc || !strstr(err.msg, want))
		fail_msg("chain of %s: %d '%s', expected %d '%s'", name, k, err.msg, rc, want);
	assert_null(c);
}

static int ch_setup(void **state)
{
	struct ch_test *t = calloc(1, sizeof(*t));

	snprintf(t->dir, sizeof(t->dir), "/tmp/uffsnap-chain-XXXXXX");
	if (!mkdtemp(t->dir))
		return -1;
	t->seed = imgtest_seed("chain");
	*state = t;
	return 0;
}

/* Removes the directory, its files and its subdirectories' files (one level deep). */
static void ch_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			if (unlink(p) < 0)
				ch_rmdir(p);
		}
	if (d)
		closedir(d);
	rmdir(dir);
}

static int ch_teardown(void **state)
{
	struct ch_test *t = *state;

	ch_rmdir(t->dir);
	free(t);
	return 0;
}

/* A full image, then children overwriting at every depth; one pre-copied, one pre-copy base. */
static const struct ch_op ch_base_ops[] = {
    {IMG_FRAME_PAGES, 0, 16},	  {IMG_FRAME_ZERO, 16, 8},  {IMG_FRAME_PAGES, 24, 8},
    {IMG_FRAME_DISCARDED, 32, 2}, {IMG_FRAME_PAGES, 36, 6},
};
static const struct ch_op ch_c1_ops[] = {
    {IMG_FRAME_PAGES, 2, 3},  {IMG_FRAME_ZERO, 8, 2},	   /* ZERO over the parent's PAGES */
    {IMG_FRAME_PAGES, 18, 2}, {IMG_FRAME_UNMAPPED, 26, 2}, /* a page the parent had */
    {IMG_FRAME_PAGES, 44, 2},				   /* new since the parent */
};
static const struct ch_op ch_c2_ops[] = {
    /* pre-copied: rounds over the same pages, then its instant, then the last round */
    {IMG_FRAME_PAGES, 0, 12}, {IMG_FRAME_PAGES, 3, 1},	{IMG_FRAME_UNMAPPED, 10, 1},
    {IMG_FRAME_META, 0, 0},   {IMG_FRAME_PAGES, 11, 1}, {IMG_FRAME_PAGES, 26, 1},
    {IMG_FRAME_ZERO, 36, 1},
};
static const struct ch_op ch_c3_ops[] = {
    {IMG_FRAME_PAGES, 3, 2},
    {IMG_FRAME_PAGES, 20, 1},
    {IMG_FRAME_DISCARDED, 40, 1},
    {IMG_FRAME_UNMAPPED, 44, 1},
};
#define CH_OPS(o) o, sizeof(o) / sizeof(o[0])
static const struct ch_link ch_links[] = {
    {"base.img", 0, CH_OPS(ch_base_ops)},
    {"c1.img", IMG_HEADER_F_INCREMENTAL, CH_OPS(ch_c1_ops)},
    {"c2.img", IMG_HEADER_F_INCREMENTAL | IMG_HEADER_F_REWRITES, CH_OPS(ch_c2_ops)},
    {"c3.img", IMG_HEADER_F_INCREMENTAL, CH_OPS(ch_c3_ops)},
};
#define CH_NLINKS (sizeof(ch_links) / sizeof(ch_links[0]))

static void test_chain_read(void **state)
{
	struct ch_test *t = *state;
	struct ch_page m[CH_WINDOW];

	ch_write_chain(t, ch_links, CH_NLINKS);
	for (size_t depth = 1; depth <= CH_NLINKS; depth++) {
		struct img_chain *c = ch_open(t, ch_links[depth - 1].name, NULL);
		char want[160];

		assert_int_equal(img_chain_depth(c), depth);
		assert_int_equal(img_chain_page_size(c), CH_PS);
		snprintf(want, sizeof(want), "\"link\":%zu", depth - 1);
		assert_non_null(strstr(img_chain_meta(c), want)); /* the top's (last) META */
		for (size_t i = 0; i < depth; i++) {
			const struct img_chain_link *l = img_chain_link(c, i);

			assert_true(l->complete);
			assert_non_null(strstr(l->path, ch_links[depth - 1 - i].name));
		}
		assert_null(img_chain_link(c, depth));
		ch_model(ch_links, depth, m);
		ch_check(t, c, m);
		img_chain_free(c);
	}
}

/* Random chains of 1..7 links, random ops at every depth (pre-copied links among them). */
static void test_chain_random(void **state)
{
	static const uint16_t types[] = {IMG_FRAME_PAGES, IMG_FRAME_PAGES, IMG_FRAME_ZERO,
					 IMG_FRAME_DISCARDED, IMG_FRAME_UNMAPPED};
	static const char *const names[CH_MAXLINK] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6"};
	struct ch_test *t = *state;
	struct imgtest_rng rng = {t->seed};
	struct ch_op ops[CH_MAXLINK][12];
	struct ch_link links[CH_MAXLINK];
	struct ch_page m[CH_WINDOW];

	for (int round = 0; round < 12; round++) {
		size_t n = 1 + imgtest_below(&rng, CH_MAXLINK - 1);
		struct img_chain *c;

		for (size_t i = 0; i < n; i++) {
			bool pre = imgtest_below(&rng, 3) == 0;
			size_t nops = 1 + imgtest_below(&rng, 11);
			uint32_t cursor = 0;

			for (size_t k = 0; k < nops; k++) {
				/* Without REWRITES a link's ops never overlap: in address order. */
				uint32_t first = pre ? (uint32_t)imgtest_below(&rng, CH_WINDOW)
						     : cursor + (uint32_t)imgtest_below(&rng, 4);
				uint32_t len = 1 + (uint32_t)imgtest_below(&rng, i ? 6 : CH_WINDOW);
				uint16_t type = types[imgtest_below(&rng, i || pre ? 5 : 4)];

				if (first >= CH_WINDOW) {
					nops = k ? k : (ops[i][0] = (struct ch_op){type, 0, 1}, 1);
					break;
				}
				len = first + len > CH_WINDOW ? CH_WINDOW - first : len;
				ops[i][k] = (struct ch_op){type, first, len};
				cursor = first + len;
			}
			if (pre) /* its instant somewhere among its ops */
				ops[i][imgtest_below(&rng, nops)] = (struct ch_op){IMG_FRAME_META};
			links[i] = (struct ch_link){names[i],
						    (i ? IMG_HEADER_F_INCREMENTAL : 0) |
							(pre ? IMG_HEADER_F_REWRITES : 0),
						    ops[i], nops};
		}
		ch_write_chain(t, links, n);
		c = ch_open(t, links[n - 1].name, NULL);
		assert_int_equal(img_chain_depth(c), n);
		ch_model(links, n, m);
		ch_check(t, c, m);
		img_chain_free(c);
	}
}

/* Flattened: a full image whose every page is the chain's, its META without the parent. */
static void test_chain_flatten(void **state)
{
	struct ch_test *t = *state;
	struct img_writer_stats st;
	struct img_chain *c;
	struct img_reader *r;
	struct img_summary s;
	struct img_error err;
	struct img_sink *sink;
	struct ch_page m[CH_WINDOW];
	static uint8_t a[CH_PS], b[CH_PS], want[CH_PS];
	char *meta = NULL;
	int fd = imgtest_memfd(NULL, 0);

	ch_write_chain(t, ch_links, CH_NLINKS);
	c = ch_open(t, "c3.img", NULL);
	assert_int_equal(img_sink_fd_new(fd, &sink), 0);
	assert_int_equal(img_chain_flatten(c, sink, &st, &err), 0);
	img_sink_free(sink);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(img_verify_fd(fd, &s, &meta), 0);
	assert_int_equal(s.status, IMG_COMPLETE);
	assert_int_equal(s.header.flags, 0);
	assert_int_equal(s.header.version_minor, 2);
	assert_null(strstr(meta, "parent"));
	assert_non_null(strstr(meta, "\"link\":3"));
	assert_non_null(strstr(meta, "t-c3.img"));
	ch_model(ch_links, CH_NLINKS, m);
	assert_int_equal(st.data_pages, s.data_pages);
	assert_int_equal(img_reader_open(fd, &r, &err), 0);
	for (uint32_t p = 0; p < CH_WINDOW; p++) {
		int x = img_chain_read(c, CH_ADDR(p), a, CH_PS, &err);
		int y = img_reader_read(r, CH_ADDR(p), b, CH_PS, &err);

		assert_int_equal(x, ch_expect(t, m, p, 1, want));
		assert_int_equal(x, y);
		if (x == 0) {
			assert_memory_equal(a, want, CH_PS);
			assert_memory_equal(b, want, CH_PS);
		}
	}
	img_reader_free(r);
	img_chain_free(c);
	free(meta);
	close(fd);
}

/* The parent is found by its digest when its hint is stale, and through --parent elsewhere. */
static void test_chain_find(void **state)
{
	struct ch_test *t = *state;
	char from[128], to[128], sub[128], parent[160];
	struct img_chain *c;

	ch_write_chain(t, ch_links, CH_NLINKS);
	ch_path(t, "c2.img", from, sizeof(from));
	ch_path(t, "renamed-c2.img", to, sizeof(to));
	assert_int_equal(rename(from, to), 0);
	c = ch_open(t, "c3.img", NULL);
	assert_int_equal(img_chain_depth(c), 4);
	assert_non_null(strstr(img_chain_link(c, 1)->path, "renamed-c2.img"));
	img_chain_free(c);

	/* Elsewhere: not found beside its child; --parent finds it, and its parents beside it. */
	ch_path(t, "elsewhere", sub, sizeof(sub));
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(parent, sizeof(parent), "%s/c2.img", sub);
	assert_int_equal(rename(to, parent), 0);
	ch_open_fails(t, "c3.img", NULL, -ENOENT, "of ");
	ch_open_fails(t, "c3.img", NULL, -ENOENT,
		      "(taken t-c2.img) not found beside it; give --parent PATH");
	ch_open_fails(t, "c3.img", parent, -ENOENT, "/elsewhere/c2.img (taken t-c1.img) not found");
	for (size_t i = 0; i < 2; i++) {
		char a[128], b[160];

		ch_path(t, ch_links[i].name, a, sizeof(a));
		snprintf(b, sizeof(b), "%s/%s", sub, ch_links[i].name);
		assert_int_equal(rename(a, b), 0);
	}
	c = ch_open(t, "c3.img", parent);
	assert_int_equal(img_chain_depth(c), 4);
	assert_string_equal(img_chain_link(c, 1)->path, parent);
	img_chain_free(c);
	/* The wrong parent: one clear error, never another chain. */
	snprintf(parent, sizeof(parent), "%s/c1.img", sub);
	ch_open_fails(t, "c3.img", parent, -EBADMSG, "is not the parent of");
	ch_open_fails(t, "c3.img", parent, -EBADMSG, "the child names");
}

/* Broken chains: each gives its one clear error. */
static void test_chain_broken(void **state)
{
	static const struct ch_op one[] = {{IMG_FRAME_PAGES, 0, 2}};
	const struct ch_link small = {"small.img", 0, CH_OPS(one)};
	const struct ch_link child = {"child.img", IMG_HEADER_F_INCREMENTAL, CH_OPS(one)};
	const struct ch_link cut = {"cut.img", 0, CH_OPS(one)};
	const struct ch_link orphan = {"orphan.img", IMG_HEADER_F_INCREMENTAL, CH_OPS(one)};
	struct ch_test *t = *state;
	char path[128];
	struct stat st;

	/* A parent of another page size. */
	ch_write(t, &small, 0, NULL, 512, true);
	ch_write(t, &child, 1, "small.img", CH_PS, true);
	ch_open_fails(t, "child.img", NULL, -EBADMSG, "has pages of 512 bytes, its child");
	/* An incomplete parent: its trailer cut off. */
	ch_write(t, &cut, 0, NULL, CH_PS, true);
	ch_write(t, &child, 1, "cut.img", CH_PS, true);
	ch_path(t, "cut.img", path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 1), 0);
	ch_open_fails(t, "child.img", NULL, -ENODATA, "cut.img of");
	ch_open_fails(t, "child.img", NULL, -ENODATA, "is incomplete");
	ch_open_fails(t, "child.img", path, -ENODATA, "is incomplete or not an image");
	/* A missing parent. */
	assert_int_equal(unlink(path), 0);
	ch_open_fails(t, "child.img", NULL, -ENOENT, "not found beside it; give --parent PATH");
	/* An incremental image that names no parent. */
	ch_write(t, &orphan, 1, NULL, CH_PS, true);
	ch_open_fails(t, "orphan.img", NULL, -EBADMSG, "names no parent");
}

/* An incomplete child: readable alone, but not through its chain. */
static void test_chain_incomplete_child(void **state)
{
	struct ch_test *t = *state;
	struct img_reader *r;
	struct img_error err;
	char path[128];
	uint8_t page[CH_PS];
	int fd;

	ch_write_chain(t, ch_links, 2);
	ch_write(t, &ch_links[2], 2, "c1.img", CH_PS, false);
	ch_open_fails(t, "c2.img", NULL, -ENODATA, "incomplete incremental image");
	ch_path(t, "c2.img", path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(img_reader_open(fd, &r, &err), 0);
	assert_false(img_reader_complete(r));
	assert_int_equal(img_reader_read(r, CH_ADDR(3), page, CH_PS, &err), 0);
	img_reader_free(r);
	close(fd);
}

/*
 * Sets bits among the low 4 bits of buf[pad .. pad + npad) (characters '0'..'?', so JSON text
 * stays JSON) so that CRC32C(buf) becomes want. CRC32C is affine over GF(2): each bit flipped
 * flips a fixed set of CRC bits, so this is a linear system, solved by Gaussian elimination.
 */
static void ch_forge_crc(uint8_t *buf, size_t len, size_t pad, size_t npad, uint32_t want)
{
	uint64_t nbits = 4 * npad, rows[32] = {0}, pivot[32], tmp;
	uint32_t base = img_crc32c(0, buf, len), target = base ^ want;
	int rank = 0;

	assert_true(nbits < 64);
	for (uint64_t b = 0; b < nbits; b++) { /* column b: the CRC bits flipped by bit b */
		uint32_t col;

		buf[pad + b / 4] ^= (uint8_t)(1u << (b % 4));
		col = img_crc32c(0, buf, len) ^ base;
		buf[pad + b / 4] ^= (uint8_t)(1u << (b % 4));
		for (int i = 0; i < 32; i++)
			rows[i] |= (uint64_t)(col >> i & 1) << b;
	}
	for (int i = 0; i < 32; i++) /* the right-hand side rides in bit 63 (nbits < 64) */
		rows[i] |= (uint64_t)(target >> i & 1) << 63;
	for (uint64_t b = 0; b < nbits && rank < 32; b++) {
		int p = rank;

		while (p < 32 && !(rows[p] >> b & 1))
			p++;
		if (p == 32)
			continue;
		tmp = rows[p];
		rows[p] = rows[rank];
		rows[rank] = tmp;
		for (int i = 0; i < 32; i++)
			if (i != rank && (rows[i] >> b & 1))
				rows[i] ^= rows[rank];
		pivot[rank++] = b;
	}
	assert_int_equal(rank, 32);
	for (int i = 0; i < rank; i++)
		if (rows[i] >> 63 & 1)
			buf[pad + pivot[i] / 4] ^= (uint8_t)(1u << (pivot[i] % 4));
	assert_int_equal(img_crc32c(0, buf, len), want);
}

/*
 * An image that names itself as its parent. The digest covers the frame headers, and META's
 * frame header holds only its length and CRC: write the image, put its own digest in its META
 * and forge the META's CRC back (15 padding characters): the digest stays what it was.
 */
static void test_chain_loop(void **state)
{
	static const char zeros[] =
	    "0000000000000000000000000000000000000000000000000000000000000000";
	static const struct ch_op one[] = {{IMG_FRAME_PAGES, 0, 1}};
	struct ch_test *t = *state;
	char meta[300], path[128], hex[2 * IMG_DIGEST_SIZE + 1];
	struct img_writer_opts o = {.page_size = CH_PS, .flags = IMG_HEADER_F_INCREMENTAL};
	struct ch_link self = {"self.img", IMG_HEADER_F_INCREMENTAL, CH_OPS(one)};
	struct img_frame f;
	struct img_summary s;
	struct img_writer *w;
	struct img_sink *sink;
	uint8_t hdr[IMG_FRAME_HEADER_SIZE], d[IMG_DIGEST_SIZE], *p;
	size_t len = (size_t)snprintf(meta, sizeof(meta),
				      "{\"parent\":{\"digest\":\"%s\",\"time\":\"t\",\"file\":"
				      "\"self.img\"},\"pad\":\"0000000000000000\"}",
				      zeros);
	int fd;

	ch_path(t, self.name, path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_int_equal(img_sink_fd_new(fd, &sink), 0);
	assert_int_equal(img_writer_new(&o, sink, &w), 0);
	assert_int_equal(img_writer_begin(w, meta, len), 0);
	assert_int_equal(ch_write_op(w, t, 0, 0, &one[0], meta), 0);
	assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	img_sink_free(sink);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), IMG_HEADER_SIZE), sizeof(hdr));
	assert_int_equal(img_frame_decode(hdr, &f, NULL), 0);
	{
		struct img_reader *r;
		struct img_error err;

		assert_int_equal(img_reader_open(fd, &r, &err), 0);
		assert_int_equal(img_reader_digest(r, d), 0);
		img_reader_free(r);
	}
	ch_hex(d, hex);
	p = (uint8_t *)strstr(meta, zeros);
	memcpy(p, hex, 2 * IMG_DIGEST_SIZE);
	p = (uint8_t *)strstr(meta, "\"pad\":\"") + 7;
	ch_forge_crc((uint8_t *)meta, len, (size_t)(p - (uint8_t *)meta), 15, f.payload_crc);
	assert_int_equal(pwrite(fd, meta, len, IMG_HEADER_SIZE + IMG_FRAME_HEADER_SIZE),
			 (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(img_verify_fd(fd, &s, NULL), 0);
	assert_int_equal(s.status, IMG_COMPLETE); /* a valid image naming itself */
	close(fd);
	ch_open_fails(t, "self.img", NULL, -EBADMSG, "which is already in its chain");
	ch_open_fails(t, "self.img", NULL, -EBADMSG, "cannot be its own ancestor");
}

/* The offset of the frame holding addr in the image at path (walking the frame headers). */
static off_t ch_frame_at(int fd, uint64_t addr)
{
	uint8_t hdr[IMG_FRAME_HEADER_SIZE];
	off_t off = IMG_HEADER_SIZE;
	struct img_frame f;

	while (pread(fd, hdr, sizeof(hdr), off) == sizeof(hdr) &&
	       img_frame_decode(hdr, &f, NULL) == 0 && f.type != IMG_FRAME_INDEX) {
		if (f.type == IMG_FRAME_PAGES && addr >= f.addr && addr - f.addr < f.count * CH_PS)
			return off;
		off += IMG_FRAME_HEADER_SIZE + f.payload_len;
	}
	fail_msg("no page frame holds 0x%llx", (unsigned long long)addr);
	return -1;
}

/* Verification of every link, and a corrupt one found and named. */
static void test_chain_verify(void **state)
{
	struct ch_test *t = *state;
	struct img_summary s;
	struct img_chain *c;
	struct img_error err;
	char path[128];
	uint8_t b, page[CH_PS];
	size_t bad;
	off_t off;
	int fd;

	ch_write_chain(t, ch_links, CH_NLINKS);
	c = ch_open(t, "c3.img", NULL);
	assert_int_equal(img_chain_verify(c, 0, &bad, &s), 0);
	assert_int_equal(bad, 4);
	img_chain_free(c);
	/* A byte of page 18, which c1 holds for the whole chain (nothing above rewrites it). */
	ch_path(t, "c1.img", path, sizeof(path));
	fd = open(path, O_RDWR | O_CLOEXEC);
	off = ch_frame_at(fd, CH_ADDR(18)) + IMG_FRAME_HEADER_SIZE + 100;
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0x20;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
	c = ch_open(t, "c3.img", NULL); /* opening reads no payload */
	assert_int_equal(img_chain_verify(c, 1, &bad, &s), 0);
	assert_int_equal(bad, 2);
	assert_int_equal(s.status, IMG_CORRUPT);
	assert_int_equal(img_chain_read(c, CH_ADDR(18), page, CH_PS, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "in parent image"));
	assert_non_null(strstr(err.msg, "c1.img"));
	img_chain_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_chain_read, ch_setup, ch_teardown),
	    cmocka_unit_test_setup_teardown(test_chain_random, ch_setup, ch_teardown),
	    cmocka_unit_test_setup_teardown(test_chain_flatten, ch_setup, ch_teardown),
	    cmocka_unit_test_setup_teardown(test_chain_find, ch_setup, ch_teardown),
	    cmocka_unit_test_setup_teardown(test_chain_broken, ch_setup, ch_teardown),
	    cmocka_unit_test_setup_teardown(test_chain_incomplete_child, ch_setup, ch_teardown),
	    cmocka_unit_test_setup_teardown(test_chain_loop, ch_setup, ch_teardown),
	    cmocka_unit_test_setup_teardown(test_chain_verify, ch_setup, ch_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
