/* SPDX-License-Identifier: MIT */
/*
 * Random access through the index. Opening reads the header, the META frame, the trailer and
 * the index; an image without a valid trailer is walked from the start instead, and is then
 * readable up to its last valid frame. Page frames are checksummed whenever they are read.
 * A pre-copy image's metadata is its second META (the trailer points at it), and its index
 * entries may be parts of frames; walked, its frames are resolved (later wins) here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-walk.h"

struct img_reader {
	int fd;
	uint64_t size;
	struct img_header header;
	bool complete;
	char *meta;	   /* the last META's text: the instant's */
	uint64_t meta_end; /* where the frame after the first META starts */
	struct img_index_entry *idx;
	size_t nidx;
	uint8_t digest[IMG_DIGEST_SIZE]; /* the trailer's, when complete */
	/* One-frame cache: the last page frame read, checksum verified. */
	uint64_t cache_offset;
	uint8_t *cache;
	size_t cache_cap;
};

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		done += n;
	}
	return 0;
}

/* Reads and checks the frame header at off; type must match unless 0. */
static int frame_at(struct img_reader *r, uint64_t off, uint16_t type, struct img_frame *ret,
		    struct img_error *err)
{
	uint8_t hdr[IMG_FRAME_HEADER_SIZE];
	int k = pread_full(r->fd, hdr, sizeof(hdr), off);

	if (k < 0)
		return img_fail(err, off, k == -ENODATA ? -EBADMSG : k,
				"cannot read the frame at offset %llu", (unsigned long long)off);
	k = img_frame_decode(hdr, ret, err);
	if (k >= 0)
		k = img_frame_check(ret, r->header.page_size, err);
	if (k >= 0 && type && ret->type != type)
		k = img_fail(err, off, -EBADMSG, "expected a %s frame", img_frame_type_name(type));
	if (k < 0 && err)
		err->offset = off;
	ret->offset = off;
	return k;
}

/* Reads a frame's payload into the cache and checks its CRC. */
static int load_payload(struct img_reader *r, const struct img_frame *f, struct img_error *err)
{
	int k;

	if (r->cache && r->cache_offset == f->offset)
		return 0;
	if (f->payload_len > r->cache_cap) {
		uint8_t *p = realloc(r->cache, f->payload_len);

		if (!p)
			return -ENOMEM;
		r->cache = p;
		r->cache_cap = f->payload_len;
	}
	r->cache_offset = UINT64_MAX;
	k = pread_full(r->fd, r->cache, f->payload_len, f->offset + IMG_FRAME_HEADER_SIZE);
	if (k < 0)
		return img_fail(err, f->offset, k == -ENODATA ? -EBADMSG : k,
				"cannot read frame payload");
	if (img_crc32c(0, r->cache, f->payload_len) != f->payload_crc)
		return img_fail(err, f->offset, -EBADMSG, "%s frame payload checksum mismatch",
				img_frame_type_name(f->type));
	r->cache_offset = f->offset;
	return 0;
}

static int load_index(struct img_reader *r, const struct img_trailer *t, struct img_error *err)
{
	uint64_t off = t->index_offset, end = r->size - IMG_TRAILER_SIZE;

	while (off < end) {
		struct img_frame f;
		int k = frame_at(r, off, IMG_FRAME_INDEX, &f, err);
		struct img_index_entry *v;

		if (k >= 0)
			k = load_payload(r, &f, err);
		if (k < 0)
			return k;
		v = realloc(r->idx, (r->nidx + f.count + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->idx = v;
		for (uint64_t i = 0; i < f.count; i++)
			img_index_entry_decode(r->cache + i * IMG_INDEX_ENTRY_SIZE, &r->idx[r->nidx++]);
		off += IMG_FRAME_HEADER_SIZE + f.payload_len;
	}
	return off == end ? 0 : img_fail(err, off, -EBADMSG, "index overruns the trailer");
}

/* Every entry must be an extent inside the image, sorted, with no page twice. */
static int check_index(struct img_reader *r, uint64_t data_end, struct img_error *err)
{
	for (size_t i = 0; i < r->nidx; i++) {
		const struct img_index_entry *e = &r->idx[i];

		if (!img_extent_allowed(e->type, r->header.flags) || e->offset < IMG_HEADER_SIZE ||
		    e->addr % r->header.page_size || e->offset >= data_end || e->npages == 0 ||
		    e->npages > (UINT64_MAX - e->addr) / r->header.page_size)
			return img_fail(err, e->offset, -EBADMSG, "index entry %zu is invalid", i);
		if (i && e->addr < r->idx[i - 1].addr)
			return img_fail(err, e->offset, -EBADMSG, "index is not sorted");
	}
	if (img_index_find_overlap(r->idx, r->nidx, r->header.page_size) != r->nidx)
		return img_fail(err, 0, -EBADMSG, "index lists a page twice");
	return 0;
}

/* Reads the META frame at off (a pre-copy image's second one) as the image's metadata. */
static int read_meta_at(struct img_reader *r, uint64_t off, struct img_error *err)
{
	struct img_frame f;
	int k = frame_at(r, off, IMG_FRAME_META, &f, err);

	if (k >= 0 && f.seq == 0)
		k = img_fail(err, off, -EBADMSG, "the second meta frame has sequence number 0");
	if (k >= 0)
		k = load_payload(r, &f, err);
	if (k < 0)
		return k;
	free(r->meta);
	r->meta = strndup((const char *)r->cache, f.payload_len);
	return r->meta ? 0 : -ENOMEM;
}

/* The trailer's meta_offset: a pre-copy image's second META, within the frames; else 0. */
static int trailer_meta(struct img_reader *r, const struct img_trailer *t, struct img_error *err)
{
	uint64_t where = r->size - IMG_TRAILER_SIZE;

	if (!(r->header.flags & IMG_HEADER_F_REWRITES))
		return t->meta_offset ? img_fail(err, where, -EBADMSG, "trailer reserved bytes set")
				      : 0;
	if (t->meta_offset < r->meta_end || t->meta_offset >= t->index_offset)
		return img_fail(err, where, -EBADMSG,
				"trailer does not point at the second meta frame");
	return read_meta_at(r, t->meta_offset, err);
}

static int open_with_trailer(struct img_reader *r, struct img_error *err)
{
	uint8_t buf[IMG_TRAILER_SIZE];
	struct img_trailer t;
	int k;

	if (r->size < IMG_HEADER_SIZE + IMG_TRAILER_SIZE)
		return -ENODATA;
	k = pread_full(r->fd, buf, sizeof(buf), r->size - IMG_TRAILER_SIZE);
	if (k < 0)
		return k;
	k = img_trailer_decode(buf, &t, NULL);
	if (k < 0)
		return -ENODATA;
	if (t.image_size != r->size || t.index_offset < IMG_HEADER_SIZE ||
	    t.index_offset > r->size - IMG_TRAILER_SIZE)
		return img_fail(err, r->size - IMG_TRAILER_SIZE, -EBADMSG,
				"trailer does not match the file");
	memcpy(r->digest, t.digest, sizeof(r->digest));
	k = trailer_meta(r, &t, err);
	if (k >= 0)
		k = load_index(r, &t, err);
	if (k >= 0)
		k = check_index(r, t.index_offset, err);
	return k;
}

struct pread_ctx {
	int fd;
	uint64_t off;
};

static ssize_t ctx_pread(void *c, void *buf, size_t len)
{
	struct pread_ctx *p = c;
	ssize_t n;

	do
		n = pread(p->fd, buf, len, p->off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	p->off += n;
	return n;
}

/*
 * A walked pre-copy image: its frames resolved (later wins), its metadata the second META. Cut
 * before that META, it has no instant: its pages are from different rounds.
 */
static int settle_rewrites(struct img_reader *r, uint64_t meta_offset, uint64_t end,
			   struct img_error *err)
{
	struct img_index_entry *eff;
	size_t n;
	int k;

	if (!meta_offset)
		return img_fail(err, end, -ENODATA, IMG_NO_INSTANT_MSG);
	k = read_meta_at(r, meta_offset, err);
	if (k >= 0)
		k = img_resolve(r->idx, r->nidx, r->header.page_size, &eff, &n);
	if (k < 0)
		return k;
	free(r->idx);
	r->idx = eff;
	r->nidx = n;
	return 0;
}

/* Appends the extent frames the walk finds, in seq order; returns how the walk ended. */
static int walk_extents(struct img_reader *r, struct img_walker *w)
{
	size_t cap = 0;
	struct img_frame f;
	int k;

	while ((k = img_walk_next(w, &f, NULL)) == IMG_WALK_FRAME) {
		if (!img_frame_is_extent(f.type))
			continue;
		if (r->nidx == cap) {
			struct img_index_entry *v;

			cap = cap ? 2 * cap : 256;
			v = realloc(r->idx, cap * sizeof(*v));
			if (!v)
				return -ENOMEM;
			r->idx = v;
		}
		r->idx[r->nidx++] = (struct img_index_entry){f.addr, f.count, f.offset, f.type};
	}
	return k;
}

/* No trailer: walk the frames and index what is there, up to the first bad one. */
static int open_by_walking(struct img_reader *r, struct img_error *err)
{
	struct pread_ctx c = {r->fd, 0};
	struct img_walker w;
	int k = img_walk_start(&w, ctx_pread, &c, err);

	free(r->idx);
	r->idx = NULL;
	r->nidx = 0;
	if (k >= 0)
		k = walk_extents(r, &w);
	if (k == -ENOMEM || (k < 0 && k != -EBADMSG && k != -EPROTONOSUPPORT)) {
		img_walk_done(&w);
		return k;
	}
	if (r->header.flags & IMG_HEADER_F_REWRITES)
		k = settle_rewrites(r, w.meta_offset, w.offset, err);
	else
		img_index_sort(r->idx, r->nidx), k = 0;
	img_walk_done(&w);
	return k < 0 ? k : check_index(r, UINT64_MAX, err);
}

static int read_meta(struct img_reader *r, struct img_error *err)
{
	uint8_t hdr[IMG_HEADER_SIZE];
	struct img_frame f;
	int k = pread_full(r->fd, hdr, sizeof(hdr), 0);

	if (k < 0)
		return img_fail(err, 0, k == -ENODATA ? -EBADMSG : k,
				r->size ? "file too short for an image header" : "empty file");
	k = img_header_decode(hdr, &r->header, err);
	if (k >= 0)
		k = frame_at(r, IMG_HEADER_SIZE, IMG_FRAME_META, &f, err);
	if (k >= 0)
		k = load_payload(r, &f, err);
	if (k < 0)
		return k;
	r->meta_end = IMG_HEADER_SIZE + IMG_FRAME_HEADER_SIZE + (uint64_t)f.payload_len;
	r->meta = strndup((const char *)r->cache, f.payload_len);
	return r->meta ? 0 : -ENOMEM;
}

int img_reader_open(int fd, struct img_reader **ret, struct img_error *err)
{
	struct img_reader *r;
	struct stat st;
	int k;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return img_fail(err, 0, -EISDIR, "is a directory");
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return img_fail(err, 0, -ESPIPE, "random access needs a regular file");
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = fd;
	r->size = st.st_size;
	k = read_meta(r, err);
	if (k >= 0) {
		k = open_with_trailer(r, err);
		r->complete = k >= 0;
		if (k == -ENODATA)
			k = open_by_walking(r, err);
	}
	if (k < 0) {
		img_reader_free(r);
		return k;
	}
	*ret = r;
	return 0;
}

void img_reader_free(struct img_reader *r)
{
	if (!r)
		return;
	free(r->meta);
	free(r->idx);
	free(r->cache);
	free(r);
}

const char *img_reader_meta(const struct img_reader *r)
{
	return r->meta;
}

uint32_t img_reader_flags(const struct img_reader *r)
{
	return r->header.flags;
}

int img_reader_digest(const struct img_reader *r, uint8_t ret[IMG_DIGEST_SIZE])
{
	if (!r->complete)
		return -ENODATA;
	memcpy(ret, r->digest, IMG_DIGEST_SIZE);
	return 0;
}

uint32_t img_reader_page_size(const struct img_reader *r)
{
	return r->header.page_size;
}

bool img_reader_complete(const struct img_reader *r)
{
	return r->complete;
}

size_t img_reader_index(const struct img_reader *r, const struct img_index_entry **ret)
{
	*ret = r->idx;
	return r->nidx;
}

/* The entry containing addr, or NULL. */
static const struct img_index_entry *lookup(const struct img_reader *r, uint64_t addr)
{
	size_t lo = 0, hi = r->nidx;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct img_index_entry *e = &r->idx[mid];

		if (addr < e->addr)
			hi = mid;
		else if (addr - e->addr >= e->npages * r->header.page_size)
			lo = mid + 1;
		else
			return e;
	}
	return NULL;
}

/*
 * Whether index entry e may name frame f: the same extent, or in a pre-copy image a part of it
 * (the rest was covered by later frames).
 */
static bool entry_fits(const struct img_reader *r, const struct img_index_entry *e,
		       const struct img_frame *f)
{
	uint64_t ps = r->header.page_size, flen = f->count * ps; /* checked: no overflow */

	if (!(r->header.flags & IMG_HEADER_F_REWRITES))
		return f->addr == e->addr && f->count == e->npages;
	/* check_index(): e is page aligned and its length does not overflow */
	return f->addr <= e->addr && e->addr - f->addr <= flen &&
	       e->npages * ps <= flen - (e->addr - f->addr);
}

/* Copies the part of extent e that overlaps [addr, addr + len) into buf. */
static int read_extent(struct img_reader *r, const struct img_index_entry *e, uint64_t addr,
		       uint8_t *buf, size_t len, struct img_error *err)
{
	struct img_frame f;
	int k;

	if (e->type == IMG_FRAME_ZERO) {
		memset(buf, 0, len);
		return 0;
	}
	if (e->type == IMG_FRAME_DISCARDED)
		return img_fail(err, addr, -ESTALE,
				"0x%llx was discarded after the snapshot instant",
				(unsigned long long)addr);
	if (e->type == IMG_FRAME_UNMAPPED)
		return img_fail(err, addr, -ENOENT, "0x%llx was not mapped at the snapshot instant",
				(unsigned long long)addr);
	k = frame_at(r, e->offset, IMG_FRAME_PAGES, &f, err);
	if (k >= 0 && !entry_fits(r, e, &f))
		k = img_fail(err, e->offset, -EBADMSG, "index does not match the frame");
	if (k >= 0)
		k = load_payload(r, &f, err);
	if (k < 0)
		return k;
	memcpy(buf, r->cache + (addr - f.addr), len);
	return 0;
}

int img_reader_read(struct img_reader *r, uint64_t addr, void *buf, size_t len,
		    struct img_error *err)
{
	uint8_t *out = buf;

	if (len && addr > UINT64_MAX - (len - 1))
		return img_fail(err, addr, -EINVAL, "range wraps around");
	while (len) {
		const struct img_index_entry *e = lookup(r, addr);
		uint64_t end, n;
		int k;

		if (!e)
			return img_fail(err, addr, -ENOENT, "0x%llx is not in the image",
					(unsigned long long)addr);
		end = e->addr + e->npages * r->header.page_size;
		n = end - addr < len ? end - addr : len;
		k = read_extent(r, e, addr, out, n, err);
		if (k < 0)
			return k;
		out += n;
		addr += n;
		len -= n;
	}
	return 0;
}

static int devstate_append(uint8_t **buf, size_t *len, const uint8_t *data, size_t n)
{
	uint8_t *p = realloc(*buf, *len + n);

	if (!p)
		return -ENOMEM;
	memcpy(p + *len, data, n);
	*buf = p;
	*len += n;
	return 0;
}

/*
 * The DEVSTATE frames are seq 1..k, right after META (FORMAT.md), and not in the index: read
 * them in order from there. The device state is known whole only once another frame follows.
 */
int img_reader_devstate(struct img_reader *r, void **ret, size_t *ret_len)
{
	uint64_t off = r->meta_end, seq = 1;
	uint8_t *buf = NULL;
	size_t len = 0;
	struct img_frame f;
	int k;

	for (;; seq++) {
		k = frame_at(r, off, 0, &f, NULL);
		if (k < 0 || f.type != IMG_FRAME_DEVSTATE)
			break;
		if (f.seq != seq) {
			k = -EBADMSG;
			goto fail;
		}
		k = load_payload(r, &f, NULL);
		if (k == -EBADMSG && !r->complete &&
		    off + IMG_FRAME_HEADER_SIZE + f.payload_len > r->size)
			k = -ENODATA; /* cut inside this frame */
		if (k >= 0)
			k = devstate_append(&buf, &len, r->cache, f.payload_len);
		if (k < 0)
			goto fail;
		off += IMG_FRAME_HEADER_SIZE + f.payload_len;
	}
	if (k == -EPROTONOSUPPORT || (k >= 0 && f.seq == seq))
		k = len ? 0 : -ENOENT;
	else if (k >= 0 || k == -EBADMSG)
		k = r->complete || off + IMG_FRAME_HEADER_SIZE <= r->size ? -EBADMSG : -ENODATA;
	if (k < 0)
		goto fail;
	*ret = buf;
	*ret_len = len;
	return 0;
fail:
	free(buf);
	return k;
}
