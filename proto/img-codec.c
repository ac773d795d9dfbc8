/* SPDX-License-Identifier: MIT */
/*
 * Encoding and decoding of the fixed-size structures of the format (FORMAT.md). Every field is
 * written explicitly, little-endian; reserved bytes are written as zero and must read as zero.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "img-endian.h"
#include "img-internal.h"

_Static_assert(IMG_HEADER_SIZE == 64, "header size is part of the format");
_Static_assert(IMG_FRAME_HEADER_SIZE == 48, "frame header size is part of the format");
_Static_assert(IMG_TRAILER_SIZE == 80, "trailer size is part of the format");

/* Header: magic[8] major:2 minor:2 header_size:4 page_size:4 flags:4 reserved[36] crc:4 */
void img_header_encode(const struct img_header *h, uint8_t out[IMG_HEADER_SIZE])
{
	memset(out, 0, IMG_HEADER_SIZE);
	memcpy(out, IMG_MAGIC, IMG_MAGIC_LEN);
	put_le16(out + 8, h->version_major);
	put_le16(out + 10, h->version_minor);
	put_le32(out + 12, IMG_HEADER_SIZE);
	put_le32(out + 16, h->page_size);
	put_le32(out + 20, h->flags);
	put_le32(out + 60, img_crc32c(0, out, 60));
}

int img_header_decode(const uint8_t in[IMG_HEADER_SIZE], struct img_header *ret,
		      struct img_error *err)
{
	uint32_t page_size = get_le32(in + 16);

	if (memcmp(in, IMG_MAGIC, IMG_MAGIC_LEN))
		return img_fail(err, 0, -EBADMSG, "not a uffsnap image (bad magic)");
	if (get_le32(in + 60) != img_crc32c(0, in, 60))
		return img_fail(err, 0, -EBADMSG, "header checksum mismatch");
	if (get_le16(in + 8) != IMG_VERSION_MAJOR)
		return img_fail(err, 8, -EPROTONOSUPPORT,
				"unsupported format version %u.%u (this reader: %u.x)",
				get_le16(in + 8), get_le16(in + 10), IMG_VERSION_MAJOR);
	if (get_le32(in + 12) != IMG_HEADER_SIZE || !all_zero(in + 24, 36))
		return img_fail(err, 12, -EBADMSG, "header size or reserved bytes invalid");
	if (page_size < 512 || page_size > (1u << 21) || (page_size & (page_size - 1)))
		return img_fail(err, 16, -EBADMSG, "invalid page size %u", page_size);
	if (get_le32(in + 20) & ~IMG_HEADER_KNOWN_FLAGS)
		return img_fail(err, 20, -EPROTONOSUPPORT,
				"uses header flags 0x%x this reader does not know (written by a "
				"newer uffsnap?)",
				get_le32(in + 20) & ~IMG_HEADER_KNOWN_FLAGS);
	ret->version_major = get_le16(in + 8);
	ret->version_minor = get_le16(in + 10);
	ret->page_size = page_size;
	ret->flags = get_le32(in + 20);
	return 0;
}

/*
 * Frame header: magic[4] type:2 flags:2 seq:8 addr:8 count:8 payload_len:4 payload_crc:4
 * reserved:4 header_crc:4
 */
void img_frame_encode(const struct img_frame *f, uint8_t out[IMG_FRAME_HEADER_SIZE])
{
	memcpy(out, IMG_FRAME_MAGIC, 4);
	put_le16(out + 4, f->type);
	put_le16(out + 6, f->flags);
	put_le64(out + 8, f->seq);
	put_le64(out + 16, f->addr);
	put_le64(out + 24, f->count);
	put_le32(out + 32, f->payload_len);
	put_le32(out + 36, f->payload_crc);
	put_le32(out + 40, 0);
	put_le32(out + 44, img_crc32c(0, out, 44));
}

int img_frame_decode(const uint8_t in[IMG_FRAME_HEADER_SIZE], struct img_frame *ret,
		     struct img_error *err)
{
	if (memcmp(in, IMG_FRAME_MAGIC, 4))
		return img_fail(err, 0, -EBADMSG, "bad frame magic");
	if (get_le32(in + 44) != img_crc32c(0, in, 44))
		return img_fail(err, 0, -EBADMSG, "frame header checksum mismatch");
	if (get_le32(in + 40) || (get_le16(in + 6) & ~IMG_FRAME_KNOWN_FLAGS))
		return img_fail(err, 0, -EBADMSG, "frame reserved bits set");
	ret->type = get_le16(in + 4);
	ret->flags = get_le16(in + 6);
	ret->seq = get_le64(in + 8);
	ret->addr = get_le64(in + 16);
	ret->count = get_le64(in + 24);
	ret->payload_len = get_le32(in + 32);
	ret->payload_crc = get_le32(in + 36);
	return 0;
}

static int check_extent(const struct img_frame *f, uint32_t page_size, struct img_error *err)
{
	if (f->addr % page_size)
		return img_fail(err, 0, -EBADMSG, "extent address 0x%llx not page aligned",
				(unsigned long long)f->addr);
	if (f->count == 0 || f->count > UINT64_MAX / page_size ||
	    f->addr > UINT64_MAX - f->count * page_size)
		return img_fail(err, 0, -EBADMSG, "extent of %llu pages at 0x%llx is invalid",
				(unsigned long long)f->count, (unsigned long long)f->addr);
	return 0;
}

int img_frame_check(const struct img_frame *f, uint32_t page_size, struct img_error *err)
{
	int r;

	if (f->payload_len > IMG_MAX_FRAME_PAYLOAD)
		return img_fail(err, 0, -EBADMSG, "frame payload of %u bytes is too large",
				f->payload_len);
	switch (f->type) {
	case IMG_FRAME_META:
	case IMG_FRAME_EVENT:
		if (f->addr || f->count || f->payload_len == 0 || f->payload_len > IMG_MAX_META)
			return img_fail(err, 0, -EBADMSG, "invalid %s frame",
					img_frame_type_name(f->type));
		return 0;
	case IMG_FRAME_PAGES:
		r = check_extent(f, page_size, err);
		if (r < 0)
			return r;
		if (f->payload_len != f->count * page_size)
			return img_fail(err, 0, -EBADMSG,
					"page frame length %u does not match %llu pages",
					f->payload_len, (unsigned long long)f->count);
		return 0;
	case IMG_FRAME_ZERO:
	case IMG_FRAME_DISCARDED:
	case IMG_FRAME_UNMAPPED:
		r = check_extent(f, page_size, err);
		if (r >= 0 && f->payload_len)
			return img_fail(err, 0, -EBADMSG, "extent frame with a payload");
		/* Not OPTIONAL: a reader that skipped it would read the pages it unmaps. */
		if (r >= 0 && f->type == IMG_FRAME_UNMAPPED && f->flags)
			return img_fail(err, 0, -EBADMSG, "unmapped frame with flags");
		return r;
	case IMG_FRAME_PROGRESS:
		if (f->addr || f->count || f->payload_len != IMG_PROGRESS_SIZE)
			return img_fail(err, 0, -EBADMSG, "invalid progress frame");
		return 0;
	case IMG_FRAME_INDEX:
		if (f->addr || f->count > IMG_MAX_FRAME_PAYLOAD / IMG_INDEX_ENTRY_SIZE ||
		    f->payload_len != f->count * IMG_INDEX_ENTRY_SIZE)
			return img_fail(err, 0, -EBADMSG, "invalid index frame");
		return 0;
	case IMG_FRAME_DEVSTATE:
		if (f->addr || f->count || f->payload_len == 0 ||
		    !(f->flags & IMG_FRAME_F_OPTIONAL))
			return img_fail(err, 0, -EBADMSG, "invalid devstate frame");
		return 0;
	default:
		if (f->flags & IMG_FRAME_F_OPTIONAL)
			return 0;
		return img_fail(err, 0, -EPROTONOSUPPORT, "unknown frame type %u", f->type);
	}
}

const char *img_frame_type_name(uint16_t type)
{
	static const char *const names[] = {
	    [IMG_FRAME_META] = "meta",	       [IMG_FRAME_PAGES] = "pages",
	    [IMG_FRAME_ZERO] = "zero",	       [IMG_FRAME_DISCARDED] = "discarded",
	    [IMG_FRAME_PROGRESS] = "progress", [IMG_FRAME_EVENT] = "event",
	    [IMG_FRAME_INDEX] = "index",       [IMG_FRAME_DEVSTATE] = "devstate",
	    [IMG_FRAME_UNMAPPED] = "unmapped",
	};

	if (type < sizeof(names) / sizeof(names[0]) && names[type])
		return names[type];
	return "unknown";
}

/* Index entry: addr:8 npages:8 offset:8 type:2 reserved[6] */
void img_index_entry_encode(const struct img_index_entry *e, uint8_t out[IMG_INDEX_ENTRY_SIZE])
{
	memset(out, 0, IMG_INDEX_ENTRY_SIZE);
	put_le64(out, e->addr);
	put_le64(out + 8, e->npages);
	put_le64(out + 16, e->offset);
	put_le16(out + 24, e->type);
}

void img_index_entry_decode(const uint8_t in[IMG_INDEX_ENTRY_SIZE], struct img_index_entry *ret)
{
	ret->addr = get_le64(in);
	ret->npages = get_le64(in + 8);
	ret->offset = get_le64(in + 16);
	/* Reserved bytes must be zero: fold them into the type so the reader rejects it. */
	ret->type = all_zero(in + 26, 6) ? get_le16(in + 24) : UINT16_MAX;
}

/* Progress: pages_done:8 pages_total:8 elapsed_ns:8 reserved[8] */
void img_progress_encode(const struct img_progress *p, uint8_t out[IMG_PROGRESS_SIZE])
{
	memset(out, 0, IMG_PROGRESS_SIZE);
	put_le64(out, p->pages_done);
	put_le64(out + 8, p->pages_total);
	put_le64(out + 16, p->elapsed_ns);
}

void img_progress_decode(const uint8_t in[IMG_PROGRESS_SIZE], struct img_progress *ret)
{
	ret->pages_done = get_le64(in);
	ret->pages_total = get_le64(in + 8);
	ret->elapsed_ns = get_le64(in + 16);
}

/*
 * Trailer: magic[8] index_offset:8 frame_count:8 image_size:8 digest[32] meta_offset:8
 * reserved[4] crc:4 (meta_offset since 1.2; reserved before, so zero in older images)
 */
void img_trailer_encode(const struct img_trailer *t, uint8_t out[IMG_TRAILER_SIZE])
{
	memset(out, 0, IMG_TRAILER_SIZE);
	memcpy(out, IMG_TRAILER_MAGIC, IMG_MAGIC_LEN);
	put_le64(out + 8, t->index_offset);
	put_le64(out + 16, t->frame_count);
	put_le64(out + 24, t->image_size);
	memcpy(out + 32, t->digest, IMG_DIGEST_SIZE);
	put_le64(out + 64, t->meta_offset);
	put_le32(out + 76, img_crc32c(0, out, 76));
}

int img_trailer_decode(const uint8_t in[IMG_TRAILER_SIZE], struct img_trailer *ret,
		       struct img_error *err)
{
	if (memcmp(in, IMG_TRAILER_MAGIC, IMG_MAGIC_LEN))
		return img_fail(err, 0, -ENODATA, "no trailer");
	if (get_le32(in + 76) != img_crc32c(0, in, 76))
		return img_fail(err, 0, -EBADMSG, "trailer checksum mismatch");
	if (!all_zero(in + 72, 4))
		return img_fail(err, 0, -EBADMSG, "trailer reserved bytes set");
	ret->index_offset = get_le64(in + 8);
	ret->frame_count = get_le64(in + 16);
	ret->image_size = get_le64(in + 24);
	memcpy(ret->digest, in + 32, IMG_DIGEST_SIZE);
	ret->meta_offset = get_le64(in + 64);
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct img_index_entry *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

void img_index_sort(struct img_index_entry *e, size_t n)
{
	if (n > 1) /* e may be NULL when n is 0, which qsort does not allow */
		qsort(e, n, sizeof(*e), cmp_entry);
}

size_t img_index_find_overlap(const struct img_index_entry *e, size_t n, uint32_t page_size)
{
	for (size_t i = 1; i < n; i++)
		if (e[i - 1].addr + e[i - 1].npages * page_size > e[i].addr)
			return i;
	return n;
}

struct img_digest {
	EVP_MD_CTX *ctx;
};

int img_digest_new(struct img_digest **ret)
{
	struct img_digest *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->ctx = EVP_MD_CTX_new();
	if (!d->ctx || EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1) {
		img_digest_free(d);
		return -ENOMEM;
	}
	*ret = d;
	return 0;
}

int img_digest_update(struct img_digest *d, const void *buf, size_t len)
{
	return EVP_DigestUpdate(d->ctx, buf, len) == 1 ? 0 : -EIO;
}

int img_digest_final(struct img_digest *d, uint8_t out[IMG_DIGEST_SIZE])
{
	unsigned int len = 0;

	if (EVP_DigestFinal_ex(d->ctx, out, &len) != 1 || len != IMG_DIGEST_SIZE)
		return -EIO;
	return 0;
}

void img_digest_free(struct img_digest *d)
{
	if (!d)
		return;
	EVP_MD_CTX_free(d->ctx);
	free(d);
}
