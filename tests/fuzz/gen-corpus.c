/* SPDX-License-Identifier: MIT */
/*
 * gen-corpus DIR: writes the seed corpus of fuzz-img-reader: small valid images made by the real
 * writer, incomplete and corrupt variants of them, and hand-built images (every checksum and
 * the digest right) that exercise rules the writer never breaks: optional unknown frames,
 * several INDEX frames, overlapping or unsorted extents, huge extents, odd page sizes.
 * The output is committed in corpus/img/; rerun only when the format changes. The seeds that
 * existed before format 1.1 were kept as the 1.0 writer wrote them (a 1.1 reader reads 1.0);
 * the devstate-* seeds were added from a 1.1 run, the rewrites-* and incremental-* seeds
 * (pre-copy images and chain children, 1.2) from 1.2 runs: copy only the new ones into
 * corpus/img/.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "uffsnap/image.h"

#define GEN_META                                                                                   \
	"{\"format\":\"uffsnap\",\"version\":1,\"target\":{\"pid\":1,\"comm\":\"x\"},"             \
	"\"vmas\":[{\"start\":\"0x1000\",\"end\":\"0x9000\",\"prot\":\"rw-p\"}]}"

struct gen_buf {
	uint8_t *p;
	size_t len, cap;
};

static void gen_append(struct gen_buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void gen_save(const char *dir, const char *name, const uint8_t *p, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wbe");
	if (!f || fwrite(p, 1, len, f) != len || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* --- images from the real writer --------------------------------------------------------- */

struct gen_mem_sink {
	struct img_sink base;
	struct gen_buf *out;
};

static int gen_mem_writev(struct img_sink *s, const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		gen_append(((struct gen_mem_sink *)s)->out, iov[i].iov_base, iov[i].iov_len);
	return 0;
}

static const struct img_sink_ops gen_mem_ops = {.writev = gen_mem_writev};

/* A small image with every frame type; finish = 0 leaves it without index and trailer. */
static void gen_writer_image(struct gen_buf *out, uint32_t ps, uint32_t frame_pages, int finish)
{
	struct gen_mem_sink sink = {{&gen_mem_ops, 0}, out};
	struct img_writer_opts opts = {.page_size = ps, .max_frame_pages = frame_pages};
	struct img_progress pr = {3, 9, 12345};
	struct img_writer *w;
	uint8_t *data = malloc(4 * ps);

	for (uint32_t i = 0; i < 4 * ps; i++)
		data[i] = (uint8_t)(i * 31 + i / ps);
	if (img_writer_new(&opts, &sink.base, &w) < 0 ||
	    img_writer_begin(w, GEN_META, strlen(GEN_META)) < 0 ||
	    img_writer_pages(w, 4 * ps, 3, data) < 0 || img_writer_zero(w, 1 * ps, 2) < 0 ||
	    img_writer_progress(w, &pr) < 0 || img_writer_discarded(w, 8 * ps, 1) < 0 ||
	    img_writer_event(w, "{\"e\":1}", 7) < 0 || img_writer_pages(w, 3 * ps, 1, data) < 0 ||
	    (finish && img_writer_finish(w) < 0))
		abort();
	img_writer_free(w);
	free(data);
}

/* A guest's image: META, the device state (one DEVSTATE frame), pages; finish as above. */
static void gen_devstate_image(struct gen_buf *out, int finish)
{
	struct gen_mem_sink sink = {{&gen_mem_ops, 0}, out};
	struct img_writer_opts opts = {.page_size = 512};
	struct img_writer *w;
	uint8_t state[700], page[512];

	for (size_t i = 0; i < sizeof(state); i++)
		state[i] = (uint8_t)(i * 7);
	memset(page, 0x3c, sizeof(page));
	if (img_writer_new(&opts, &sink.base, &w) < 0 ||
	    img_writer_begin(w, GEN_META, strlen(GEN_META)) < 0 ||
	    img_writer_devstate(w, state, sizeof(state)) < 0 ||
	    img_writer_pages(w, 0x1000, 1, page) < 0 || img_writer_zero(w, 0x1200, 3) < 0 ||
	    (finish && img_writer_finish(w) < 0))
		abort();
	img_writer_free(w);
}

/* --- hand-built images --------------------------------------------------------------------- */

struct gen_raw {
	struct gen_buf b;
	EVP_MD_CTX *sha;
	uint32_t ps;
	uint64_t seq;
	uint64_t index_offset;
};

static void gen_raw_begin_flags(struct gen_raw *r, uint32_t ps, uint32_t flags)
{
	struct img_header h = {IMG_VERSION_MAJOR, IMG_VERSION_MINOR, ps, flags};
	uint8_t hdr[IMG_HEADER_SIZE];

	memset(r, 0, sizeof(*r));
	r->ps = ps;
	r->sha = EVP_MD_CTX_new();
	EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL);
	img_header_encode(&h, hdr);
	gen_append(&r->b, hdr, sizeof(hdr));
	EVP_DigestUpdate(r->sha, hdr, sizeof(hdr));
}

static void gen_raw_begin(struct gen_raw *r, uint32_t ps)
{
	gen_raw_begin_flags(r, ps, 0);
}

/* Appends a frame with correct checksums; returns its offset. */
static uint64_t gen_raw_frame(struct gen_raw *r, uint16_t type, uint16_t flags, uint64_t addr,
			      uint64_t count, const void *payload, uint32_t len)
{
	struct img_frame f = {.type = type,
			      .flags = flags,
			      .seq = r->seq++,
			      .addr = addr,
			      .count = count,
			      .payload_len = len,
			      .payload_crc = len ? img_crc32c(0, payload, len) : 0};
	uint8_t hdr[IMG_FRAME_HEADER_SIZE];
	uint64_t off = r->b.len;

	img_frame_encode(&f, hdr);
	gen_append(&r->b, hdr, sizeof(hdr));
	gen_append(&r->b, payload, len);
	EVP_DigestUpdate(r->sha, hdr, sizeof(hdr));
	if (type == IMG_FRAME_INDEX && !r->index_offset)
		r->index_offset = off;
	return off;
}

static void gen_raw_index(struct gen_raw *r, const struct img_index_entry *e, size_t n)
{
	uint8_t buf[64 * IMG_INDEX_ENTRY_SIZE];

	for (size_t i = 0; i < n; i++)
		img_index_entry_encode(&e[i], buf + i * IMG_INDEX_ENTRY_SIZE);
	gen_raw_frame(r, IMG_FRAME_INDEX, 0, 0, n, buf, (uint32_t)(n * IMG_INDEX_ENTRY_SIZE));
}

static void gen_raw_finish_meta(struct gen_raw *r, uint64_t meta_offset)
{
	struct img_trailer t = {
	    r->index_offset, r->seq, r->b.len + IMG_TRAILER_SIZE, {0}, meta_offset};
	uint8_t buf[IMG_TRAILER_SIZE];
	unsigned int dlen;

	EVP_DigestFinal_ex(r->sha, t.digest, &dlen);
	EVP_MD_CTX_free(r->sha);
	img_trailer_encode(&t, buf);
	gen_append(&r->b, buf, sizeof(buf));
}

static void gen_raw_finish(struct gen_raw *r)
{
	gen_raw_finish_meta(r, 0);
}

static void gen_raw_meta(struct gen_raw *r)
{
	gen_raw_frame(r, IMG_FRAME_META, 0, 0, 0, GEN_META, strlen(GEN_META));
}

/* kind: 0 optional unknown frame, 1 two INDEX frames, 2 overlap, 3 unsorted index,
 * 4 index entry pointing at the wrong frame, 5 huge ZERO extents, 6 META not JSON,
 * 7 extent at the top of the address space, 8 two DEVSTATE frames after META (valid),
 * 9 a DEVSTATE frame after a PAGES frame, 10 a DEVSTATE frame without the OPTIONAL flag. */
static void gen_crafted(struct gen_raw *r, int kind)
{
	uint8_t page[512];
	uint32_t ps = kind == 5 ? 2u << 20 : 512;
	struct img_index_entry e[3];
	uint64_t top = UINT64_MAX / ps * ps - ps;

	memset(page, 0xa5, sizeof(page));
	gen_raw_begin(r, ps);
	if (kind == 6)
		gen_raw_frame(r, IMG_FRAME_META, 0, 0, 0, "[1,2]", 5);
	else
		gen_raw_meta(r);
	if (kind == 8) {
		gen_raw_frame(r, IMG_FRAME_DEVSTATE, IMG_FRAME_F_OPTIONAL, 0, 0, "QEVM", 4);
		gen_raw_frame(r, IMG_FRAME_DEVSTATE, IMG_FRAME_F_OPTIONAL, 0, 0, "\x00\x03", 2);
	}
	if (kind == 10)
		gen_raw_frame(r, IMG_FRAME_DEVSTATE, 0, 0, 0, "QEVM", 4);
	e[0] = (struct img_index_entry){0x1000, 1, 0, IMG_FRAME_PAGES};
	e[1] = (struct img_index_entry){0x1200, 2, 0, IMG_FRAME_ZERO};
	e[2] = (struct img_index_entry){0x2000, 1, 0, IMG_FRAME_DISCARDED};
	if (kind == 5) {
		e[0] = (struct img_index_entry){0, 1ull << 40, 0, IMG_FRAME_ZERO};
		e[1] = (struct img_index_entry){2ull << 61, 1ull << 40, 0, IMG_FRAME_DISCARDED};
		e[2] = (struct img_index_entry){3ull << 62, 1, 0, IMG_FRAME_ZERO};
	}
	if (kind == 7)
		e[2] = (struct img_index_entry){top, 1, 0, IMG_FRAME_DISCARDED};
	if (kind == 2)
		e[1].addr = 0x1000; /* the page of e[0] again: overlap */
	for (int i = 0; i < 3; i++)
		e[i].offset = gen_raw_frame(r, e[i].type, 0, e[i].addr, e[i].npages,
					    e[i].type == IMG_FRAME_PAGES ? page : NULL,
					    e[i].type == IMG_FRAME_PAGES ? ps : 0);
	if (kind == 0)
		gen_raw_frame(r, 99, IMG_FRAME_F_OPTIONAL, 0, 0, "opt", 3);
	if (kind == 9)
		gen_raw_frame(r, IMG_FRAME_DEVSTATE, IMG_FRAME_F_OPTIONAL, 0, 0, "QEVM", 4);
	if (kind == 3) {
		struct img_index_entry t = e[0];

		e[0] = e[2];
		e[2] = t;
	}
	if (kind == 4)
		e[0].offset = e[1].offset;
	if (kind == 1) {
		gen_raw_index(r, e, 1);
		gen_raw_index(r, e + 1, 2);
	} else {
		gen_raw_index(r, e, 3);
	}
	gen_raw_finish(r);
}

/* --- pre-copy images (1.2) ------------------------------------------------------------------ */

#define GEN_META2 "{\"format\":\"uffsnap\",\"version\":1,\"time\":{\"iso8601\":\"instant\"}}"

/*
 * A pre-copy image from the writer: a round over 0x1000-0x1a00, a second round over its middle
 * (data, zero, unmapped, discarded), the second META, a last round; finish or not, or cut
 * before the second META (meta 0).
 */
static void gen_rewrites_image(struct gen_buf *out, uint32_t frame_pages, int meta, int finish)
{
	struct gen_mem_sink sink = {{&gen_mem_ops, 0}, out};
	struct img_writer_opts opts = {
	    .page_size = 512, .max_frame_pages = frame_pages, .flags = IMG_HEADER_F_REWRITES};
	struct img_writer *w;
	uint8_t data[13 * 512];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + i / 512);
	if (img_writer_new(&opts, &sink.base, &w) < 0 ||
	    img_writer_begin(w, GEN_META, strlen(GEN_META)) < 0 ||
	    img_writer_pages(w, 0x1000, 13, data) < 0 || img_writer_pages(w, 0x1400, 2, data) < 0 ||
	    img_writer_zero(w, 0x1800, 2) < 0 || img_writer_unmapped(w, 0x1000, 1) < 0 ||
	    img_writer_discarded(w, 0x1600, 1) < 0 ||
	    (meta && img_writer_meta(w, GEN_META2, strlen(GEN_META2)) < 0) ||
	    img_writer_pages(w, 0x1200, 2, data) < 0 || img_writer_unmapped(w, 0x3000, 2) < 0 ||
	    (finish && img_writer_finish(w) < 0))
		abort();
	img_writer_free(w);
}

/*
 * Hand-built pre-copy images, each breaking one rule: kind 0 a second META without the flag,
 * 1 UNMAPPED without a flag that allows it, 2 meta_offset at the first META, 3 the index as
 * written (overlapping) instead of resolved, 4 an entry reaching past its frame, 5 a header
 * flag no reader knows, 6 DEVSTATE after the second META.
 */
static void gen_rewrites_crafted(struct gen_raw *r, int kind)
{
	uint32_t flags = kind == 0 || kind == 1 ? 0 : IMG_HEADER_F_REWRITES;
	struct img_index_entry e[3];
	uint8_t pages[4 * 512];
	uint64_t meta2;

	memset(pages, 0x3c, sizeof(pages));
	gen_raw_begin_flags(r, 512, kind == 5 ? flags | 0x80000000u : flags);
	gen_raw_meta(r);
	e[0] = (struct img_index_entry){0x1000, 4, 0, IMG_FRAME_PAGES};
	e[1] =
	    (struct img_index_entry){0x1200, 1, 0, kind == 1 ? IMG_FRAME_UNMAPPED : IMG_FRAME_ZERO};
	e[0].offset = gen_raw_frame(r, IMG_FRAME_PAGES, 0, 0x1000, 4, pages, sizeof(pages));
	e[1].offset = gen_raw_frame(r, e[1].type, 0, 0x1200, 1, NULL, 0);
	meta2 = gen_raw_frame(r, IMG_FRAME_META, 0, 0, 0, GEN_META2, strlen(GEN_META2));
	if (kind == 6)
		gen_raw_frame(r, IMG_FRAME_DEVSTATE, IMG_FRAME_F_OPTIONAL, 0, 0, "QEVM", 4);
	/* resolved: [0x1000, 0x1200) and [0x1400, 0x1800) of frame 0, 0x1200 of frame 1 */
	e[2] = e[0];
	e[0].npages = 1;
	e[2].addr = 0x1400;
	e[2].npages = kind == 4 ? 4 : 2;
	if (kind == 3)
		e[0].npages = 4, e[2] = e[1], gen_raw_index(r, e, 2);
	else
		gen_raw_index(r, e, 3);
	gen_raw_finish_meta(r, kind == 2 ? IMG_HEADER_SIZE : kind <= 1 ? 0 : meta2);
}

static void gen_rewrites(const char *dir)
{
	static const char *const crafted[] = {
	    "rewrites-crafted-meta-no-flag.img",	"rewrites-crafted-unmapped-no-flag.img",
	    "rewrites-crafted-meta-offset.img",		"rewrites-crafted-index-unresolved.img",
	    "rewrites-crafted-entry-past-frame.img",	"rewrites-crafted-unknown-flag.img",
	    "rewrites-crafted-devstate-after-meta.img",
	};
	struct gen_buf v = {0};

	gen_rewrites_image(&v, 0, 1, 1);
	gen_save(dir, "rewrites-valid.img", v.p, v.len);
	v.len = 0;
	gen_rewrites_image(&v, 1, 1, 1);
	gen_save(dir, "rewrites-valid-split-frames.img", v.p, v.len);
	v.len = 0;
	gen_rewrites_image(&v, 0, 1, 0);
	gen_save(dir, "rewrites-incomplete-after-instant.img", v.p, v.len);
	v.len = 0;
	gen_rewrites_image(&v, 0, 0, 0);
	gen_save(dir, "rewrites-incomplete-before-instant.img", v.p, v.len);
	for (size_t i = 0; i < sizeof(crafted) / sizeof(crafted[0]); i++) {
		struct gen_raw r;

		gen_rewrites_crafted(&r, (int)i);
		gen_save(dir, crafted[i], r.b.p, r.b.len);
		free(r.b.p);
	}
	free(v.p);
}

/* --- incremental images (1.2) --------------------------------------------------------------- */

#define GEN_CHILD_META                                                                             \
	"{\"format\":\"uffsnap\",\"version\":1,\"parent\":{\"digest\":"                            \
	"\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","                    \
	"\"time\":\"2026-11-18T09:40:00Z\",\"file\":\"parent.img\"}}"

/* A chain's child: changed pages, an UNMAPPED range its parent had; pre-copied or not. */
static void gen_incremental_image(struct gen_buf *out, uint32_t flags, int finish)
{
	struct gen_mem_sink sink = {{&gen_mem_ops, 0}, out};
	struct img_writer_opts opts = {.page_size = 512, .flags = IMG_HEADER_F_INCREMENTAL | flags};
	struct img_writer *w;
	uint8_t data[4 * 512];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 5 + 1);
	if (img_writer_new(&opts, &sink.base, &w) < 0 ||
	    img_writer_begin(w, GEN_CHILD_META, strlen(GEN_CHILD_META)) < 0 ||
	    img_writer_pages(w, 0x1000, 4, data) < 0 || img_writer_unmapped(w, 0x2000, 3) < 0 ||
	    img_writer_zero(w, 0x3000, 1) < 0 ||
	    ((flags & IMG_HEADER_F_REWRITES) &&
	     (img_writer_pages(w, 0x1200, 1, data) < 0 ||
	      img_writer_meta(w, GEN_CHILD_META, strlen(GEN_CHILD_META)) < 0)) ||
	    (finish && img_writer_finish(w) < 0))
		abort();
	img_writer_free(w);
}

/* A child whose extents overlap without REWRITES: corrupt as in any image. */
static void gen_incremental_crafted(struct gen_raw *r)
{
	struct img_index_entry e[2];

	gen_raw_begin_flags(r, 512, IMG_HEADER_F_INCREMENTAL);
	gen_raw_frame(r, IMG_FRAME_META, 0, 0, 0, GEN_CHILD_META, strlen(GEN_CHILD_META));
	e[0] = (struct img_index_entry){0x1000, 2, 0, IMG_FRAME_UNMAPPED};
	e[1] = (struct img_index_entry){0x1200, 1, 0, IMG_FRAME_ZERO};
	e[0].offset = gen_raw_frame(r, IMG_FRAME_UNMAPPED, 0, 0x1000, 2, NULL, 0);
	e[1].offset = gen_raw_frame(r, IMG_FRAME_ZERO, 0, 0x1200, 1, NULL, 0);
	gen_raw_index(r, e, 2);
	gen_raw_finish(r);
}

static void gen_incremental(const char *dir)
{
	struct gen_buf v = {0};
	struct gen_raw r;

	gen_incremental_image(&v, 0, 1);
	gen_save(dir, "incremental-valid.img", v.p, v.len);
	v.len = 0;
	gen_incremental_image(&v, IMG_HEADER_F_REWRITES, 1);
	gen_save(dir, "incremental-precopy-valid.img", v.p, v.len);
	v.len = 0;
	gen_incremental_image(&v, 0, 0);
	gen_save(dir, "incremental-incomplete.img", v.p, v.len);
	gen_incremental_crafted(&r);
	gen_save(dir, "incremental-crafted-overlap.img", r.b.p, r.b.len);
	free(r.b.p);
	free(v.p);
}

/* --- variants -------------------------------------------------------------------------------- */

static void gen_variants(const char *dir, const struct gen_buf *v)
{
	uint8_t *p = malloc(v->len);
	struct img_trailer t;

	gen_save(dir, "incomplete-cut-frame.img", v->p, v->len / 2);
	gen_save(dir, "incomplete-cut-trailer.img", v->p, v->len - 30);
	gen_save(dir, "incomplete-header-only.img", v->p, IMG_HEADER_SIZE);
	memcpy(p, v->p, v->len);
	p[IMG_HEADER_SIZE + 48 + strlen(GEN_META) + 48 + 7] ^= 0x40; /* in the first page */
	gen_save(dir, "corrupt-payload.img", p, v->len);
	memcpy(p, v->p, v->len);
	if (img_trailer_decode(p + v->len - IMG_TRAILER_SIZE, &t, NULL) < 0)
		abort();
	t.digest[5] ^= 1; /* a digest that does not match, in an otherwise valid trailer */
	img_trailer_encode(&t, p + v->len - IMG_TRAILER_SIZE);
	gen_save(dir, "corrupt-digest.img", p, v->len);
	memcpy(p, v->p, v->len);
	p[IMG_HEADER_SIZE + 5] ^= 2; /* META frame header */
	gen_save(dir, "corrupt-meta-header.img", p, v->len);
	free(p);
}

int main(int argc, char **argv)
{
	static const char *const crafted[] = {
	    "crafted-optional-frame.img",  "crafted-two-index.img",	"crafted-overlap.img",
	    "crafted-unsorted-index.img",  "crafted-index-offset.img",	"crafted-huge-extents.img",
	    "crafted-meta-not-object.img", "crafted-top-of-memory.img",	"devstate-crafted-two.img",
	    "devstate-crafted-after-pages.img", "devstate-crafted-not-optional.img",
	};
	struct gen_buf v = {0};

	if (argc != 2) {
		fprintf(stderr, "usage: gen-corpus DIR\n");
		return 2;
	}
	gen_writer_image(&v, 512, 0, 1);
	gen_save(argv[1], "valid-512.img", v.p, v.len);
	gen_variants(argv[1], &v);
	v.len = 0;
	gen_writer_image(&v, 4096, 0, 1);
	gen_save(argv[1], "valid-4096.img", v.p, v.len);
	v.len = 0;
	gen_writer_image(&v, 512, 1, 1);
	gen_save(argv[1], "valid-split-frames.img", v.p, v.len);
	v.len = 0;
	gen_writer_image(&v, 512, 0, 0);
	gen_save(argv[1], "incomplete-no-index.img", v.p, v.len);
	v.len = 0;
	gen_devstate_image(&v, 1);
	gen_save(argv[1], "devstate-valid.img", v.p, v.len);
	gen_save(argv[1], "devstate-incomplete-cut.img", v.p,
		 IMG_HEADER_SIZE + 48 + strlen(GEN_META) + 48 + 300);
	v.len = 0;
	gen_devstate_image(&v, 0);
	gen_save(argv[1], "devstate-incomplete-no-index.img", v.p, v.len);
	for (size_t i = 0; i < sizeof(crafted) / sizeof(crafted[0]); i++) {
		struct gen_raw r;

		gen_crafted(&r, (int)i);
		gen_save(argv[1], crafted[i], r.b.p, r.b.len);
		free(r.b.p);
	}
	free(v.p);
	gen_rewrites(argv[1]);
	gen_incremental(argv[1]);
	return 0;
}
