/* SPDX-License-Identifier: MIT */
/*
 * The image writer. Producers (the copier and the fault handler) call it from several threads;
 * a payload's checksum is computed outside the lock, and only the sequence number, the offset,
 * the digest and the write itself are serialised, so frames leave in one well-formed order.
 * That order is the seq order, which in a pre-copy image decides which frame of a page written
 * twice holds it: the one that reached the lock last.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "img-internal.h"

#define DEFAULT_FRAME_BYTES (1u << 20)

struct img_writer {
	pthread_mutex_t lock;
	struct img_sink *sink;
	struct img_digest *digest;
	uint32_t page_size;
	uint32_t max_frame_pages;
	uint32_t flags; /* header flags */
	uint64_t seq;
	uint64_t offset;
	int error; /* sticky: the first failure ends the image */
	bool begun, finished;
	bool devstate; /* the device state was written (it may be, once, right after META) */
	uint64_t meta_offset;	     /* a pre-copy image's second META, once written */
	struct img_index_entry *idx; /* extent frames in seq order */
	size_t nidx, idx_cap;
	struct img_writer_stats stats;
};

int img_writer_new(const struct img_writer_opts *opts, struct img_sink *sink,
		   struct img_writer **ret)
{
	struct img_writer *w;
	long ps = opts && opts->page_size ? (long)opts->page_size : sysconf(_SC_PAGESIZE);
	int r;

	if (!sink || ps < 512 || (ps & (ps - 1)) || ps > (1 << 21) ||
	    (opts && (opts->flags & ~IMG_HEADER_KNOWN_FLAGS)))
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	r = img_digest_new(&w->digest);
	if (r < 0) {
		free(w);
		return r;
	}
	pthread_mutex_init(&w->lock, NULL);
	w->sink = sink;
	w->page_size = ps;
	w->flags = opts ? opts->flags : 0;
	w->max_frame_pages = opts && opts->max_frame_pages ? opts->max_frame_pages
							   : DEFAULT_FRAME_BYTES / ps;
	if ((uint64_t)w->max_frame_pages * ps > IMG_MAX_FRAME_PAYLOAD)
		w->max_frame_pages = IMG_MAX_FRAME_PAYLOAD / ps;
	*ret = w;
	return 0;
}

void img_writer_free(struct img_writer *w)
{
	if (!w)
		return;
	pthread_mutex_destroy(&w->lock);
	img_digest_free(w->digest);
	free(w->idx);
	free(w);
}

/* Room for at least cap entries; the new room is written once, so that it is faulted in. */
static int index_grow(struct img_writer *w, size_t cap)
{
	struct img_index_entry *n;

	if (cap <= w->idx_cap)
		return 0;
	if (cap > SIZE_MAX / sizeof(*n))
		return -ENOMEM;
	n = realloc(w->idx, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	memset(n + w->idx_cap, 0, (cap - w->idx_cap) * sizeof(*n));
	w->idx = n;
	w->idx_cap = cap;
	return 0;
}

static int index_add(struct img_writer *w, const struct img_frame *f)
{
	int r = w->nidx < w->idx_cap ? 0 : index_grow(w, w->idx_cap ? w->idx_cap * 2 : 1024);

	if (r < 0)
		return r;
	w->idx[w->nidx++] = (struct img_index_entry){
		.addr = f->addr, .npages = f->count, .offset = f->offset, .type = f->type};
	return 0;
}

static void stats_add(struct img_writer *w, const struct img_frame *f)
{
	w->stats.frames++;
	w->stats.bytes += IMG_FRAME_HEADER_SIZE + f->payload_len;
	if (f->type == IMG_FRAME_PAGES)
		w->stats.data_pages += f->count;
	else if (f->type == IMG_FRAME_ZERO)
		w->stats.zero_pages += f->count;
	else if (f->type == IMG_FRAME_DISCARDED)
		w->stats.discarded_pages += f->count;
	else if (f->type == IMG_FRAME_UNMAPPED)
		w->stats.unmapped_pages += f->count;
}

/* Appends one frame. Called with the lock held; f->payload_crc already computed. */
static int emit_locked(struct img_writer *w, struct img_frame *f, const struct iovec *payload,
		       int npayload)
{
	uint8_t hdr[IMG_FRAME_HEADER_SIZE];
	struct iovec iov[1 + 16];
	int r;

	if (w->error)
		return w->error;
	if (npayload > 16)
		return -EINVAL;
	f->seq = w->seq;
	f->offset = w->offset;
	img_frame_encode(f, hdr);
	if (img_frame_is_extent(f->type) && (r = index_add(w, f)) < 0)
		return r;
	iov[0] = (struct iovec){.iov_base = hdr, .iov_len = sizeof(hdr)};
	if (npayload) /* payload is NULL for extent frames */
		memcpy(iov + 1, payload, sizeof(*payload) * npayload);
	r = img_digest_update(w->digest, hdr, sizeof(hdr));
	if (r >= 0)
		r = w->sink->ops->writev(w->sink, iov, 1 + npayload);
	if (r < 0) {
		w->error = r;
		return r;
	}
	w->seq++;
	w->offset += IMG_FRAME_HEADER_SIZE + f->payload_len;
	w->sink->written = w->offset;
	stats_add(w, f);
	return 0;
}

static uint32_t iov_crc(const struct iovec *iov, int n)
{
	uint32_t crc = 0;

	for (int i = 0; i < n; i++)
		crc = img_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
	return crc;
}

static int emit(struct img_writer *w, struct img_frame *f, const struct iovec *payload, int n)
{
	int r;

	f->payload_crc = iov_crc(payload, n);
	pthread_mutex_lock(&w->lock);
	if (!w->begun || w->finished)
		r = -EINVAL;
	else
		r = emit_locked(w, f, payload, n);
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* The length of a META given in n pieces, or 0 if n or the length is out of bounds. */
static size_t meta_len(const struct iovec *meta, int n)
{
	size_t len = 0;

	if (n < 1 || n > IMG_META_PIECES_MAX)
		return 0;
	for (int i = 0; i < n; i++)
		len += meta[i].iov_len;
	return len > IMG_MAX_META ? 0 : len;
}

int img_writer_beginv(struct img_writer *w, const struct iovec *meta, int n)
{
	struct img_header h = {IMG_VERSION_MAJOR, IMG_VERSION_MINOR, w->page_size, w->flags};
	uint8_t hdr[IMG_HEADER_SIZE];
	size_t len = meta_len(meta, n);
	struct img_frame f = {.type = IMG_FRAME_META, .payload_len = len};
	struct iovec iov = {hdr, sizeof(hdr)};
	int r;

	if (len == 0)
		return -EINVAL;
	img_header_encode(&h, hdr);
	f.payload_crc = iov_crc(meta, n);
	pthread_mutex_lock(&w->lock);
	r = w->begun ? -EINVAL : img_digest_update(w->digest, hdr, sizeof(hdr));
	if (r >= 0)
		r = w->sink->ops->writev(w->sink, &iov, 1);
	if (r >= 0) {
		w->offset = sizeof(hdr);
		w->begun = true;
		r = emit_locked(w, &f, meta, n);
	} else if (!w->begun) {
		w->error = r;
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

int img_writer_begin(struct img_writer *w, const char *meta_json, size_t len)
{
	struct iovec meta = {(void *)meta_json, len};

	return img_writer_beginv(w, &meta, 1);
}

/* Takes the sub-array of iov covering [off, off + len); returns its count or -EINVAL. */
static int iov_slice(const struct iovec *iov, int n, size_t off, size_t len, struct iovec *out,
		     int max)
{
	int k = 0;

	for (int i = 0; i < n && len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t take = iov[i].iov_len - off < len ? iov[i].iov_len - off : len;
		if (k == max)
			return -EINVAL;
		out[k++] = (struct iovec){(char *)iov[i].iov_base + off, take};
		len -= take;
		off = 0;
	}
	return len ? -EINVAL : k;
}

int img_writer_pagesv(struct img_writer *w, uint64_t addr, uint64_t npages,
		      const struct iovec *iov, int iovcnt)
{
	size_t total = 0;

	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (npages == 0 || addr % w->page_size || total != npages * w->page_size)
		return -EINVAL;
	for (uint64_t done = 0; done < npages;) {
		uint64_t n = npages - done < w->max_frame_pages ? npages - done : w->max_frame_pages;
		struct iovec part[16];
		int k = iov_slice(iov, iovcnt, done * w->page_size, n * w->page_size, part, 16);
		struct img_frame f = {.type = IMG_FRAME_PAGES,
				      .addr = addr + done * w->page_size,
				      .count = n,
				      .payload_len = n * w->page_size};
		int r = k < 0 ? k : emit(w, &f, part, k);

		if (r < 0)
			return r;
		done += n;
	}
	return 0;
}

int img_writer_reserve(struct img_writer *w, size_t frames)
{
	int r;

	pthread_mutex_lock(&w->lock);
	r = frames > SIZE_MAX - w->nidx ? -ENOMEM : 0;
	if (r >= 0 && w->nidx + frames > w->idx_cap) {
		size_t cap = w->idx_cap ? w->idx_cap : 1024;

		while (cap < w->nidx + frames && cap <= SIZE_MAX / 2)
			cap *= 2;
		r = cap < w->nidx + frames ? -ENOMEM : index_grow(w, cap);
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

int img_writer_pages(struct img_writer *w, uint64_t addr, uint64_t npages, const void *data)
{
	struct iovec iov = {(void *)data, npages * w->page_size};

	return img_writer_pagesv(w, addr, npages, &iov, 1);
}

static int write_extent(struct img_writer *w, uint16_t type, uint64_t addr, uint64_t npages)
{
	struct img_frame f = {.type = type, .addr = addr, .count = npages};

	if (npages == 0 || addr % w->page_size || npages > UINT64_MAX / w->page_size ||
	    addr > UINT64_MAX - npages * w->page_size)
		return -EINVAL;
	return emit(w, &f, NULL, 0);
}

int img_writer_zero(struct img_writer *w, uint64_t addr, uint64_t npages)
{
	return write_extent(w, IMG_FRAME_ZERO, addr, npages);
}

int img_writer_discarded(struct img_writer *w, uint64_t addr, uint64_t npages)
{
	return write_extent(w, IMG_FRAME_DISCARDED, addr, npages);
}

int img_writer_unmapped(struct img_writer *w, uint64_t addr, uint64_t npages)
{
	if (!(w->flags & IMG_HEADER_UNMAPS))
		return -EINVAL;
	return write_extent(w, IMG_FRAME_UNMAPPED, addr, npages);
}

int img_writer_metav(struct img_writer *w, const struct iovec *meta, int n)
{
	size_t len = meta_len(meta, n);
	struct img_frame f = {.type = IMG_FRAME_META, .payload_len = len};
	int r;

	if (len == 0 || !(w->flags & IMG_HEADER_F_REWRITES))
		return -EINVAL;
	f.payload_crc = iov_crc(meta, n);
	pthread_mutex_lock(&w->lock);
	if (!w->begun || w->finished || w->meta_offset) {
		r = -EINVAL;
	} else {
		uint64_t off = w->offset;

		r = emit_locked(w, &f, meta, n);
		if (r >= 0)
			w->meta_offset = off;
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

int img_writer_meta(struct img_writer *w, const char *meta_json, size_t len)
{
	struct iovec meta = {(void *)meta_json, len};

	return img_writer_metav(w, &meta, 1);
}

int img_writer_progress(struct img_writer *w, const struct img_progress *p)
{
	uint8_t buf[IMG_PROGRESS_SIZE];
	struct iovec iov = {buf, sizeof(buf)};
	struct img_frame f = {.type = IMG_FRAME_PROGRESS, .payload_len = sizeof(buf)};

	img_progress_encode(p, buf);
	return emit(w, &f, &iov, 1);
}

int img_writer_event(struct img_writer *w, const char *json, size_t len)
{
	struct iovec iov = {(void *)json, len};
	struct img_frame f = {.type = IMG_FRAME_EVENT,
			      .flags = IMG_FRAME_F_OPTIONAL,
			      .payload_len = len};

	if (len == 0 || len > IMG_MAX_META)
		return -EINVAL;
	return emit(w, &f, &iov, 1);
}

/* Emits the device state as DEVSTATE frames, one run under the lock so nothing comes between. */
static int devstate_locked(struct img_writer *w, const uint8_t *data, size_t len)
{
	for (size_t done = 0; done < len;) {
		size_t n = len - done < DEFAULT_FRAME_BYTES ? len - done : DEFAULT_FRAME_BYTES;
		struct iovec iov = {(void *)(data + done), n};
		struct img_frame f = {.type = IMG_FRAME_DEVSTATE,
				      .flags = IMG_FRAME_F_OPTIONAL,
				      .payload_len = n};
		int r;

		f.payload_crc = iov_crc(&iov, 1);
		r = emit_locked(w, &f, &iov, 1);
		if (r < 0)
			return r;
		done += n;
	}
	return 0;
}

int img_writer_devstate(struct img_writer *w, const void *data, size_t len)
{
	int r;

	if (len == 0)
		return -EINVAL;
	pthread_mutex_lock(&w->lock);
	/* seq 1: only META so far (FORMAT.md: DEVSTATE frames come directly after META). */
	if (!w->begun || w->finished || w->devstate || w->seq != 1) {
		r = -EINVAL;
	} else {
		w->devstate = true;
		r = devstate_locked(w, data, len);
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

/*
 * The index of a pre-copy image: the extents resolved, later wins (FORMAT.md "Pre-copy
 * images"). Replaces w->idx; the pages covered again are counted as superseded.
 */
static int resolve_locked(struct img_writer *w)
{
	struct img_index_entry *eff;
	size_t n;
	int r = img_resolve(w->idx, w->nidx, w->page_size, &eff, &n);

	if (r < 0)
		return r;
	w->stats.superseded_pages = img_index_pages(w->idx, w->nidx) - img_index_pages(eff, n);
	free(w->idx);
	w->idx = eff;
	w->nidx = w->idx_cap = n;
	return 0;
}

/* The index in address order: resolved (pre-copy), or sorted with no page twice. Lock held. */
static int settle_index_locked(struct img_writer *w)
{
	if (w->flags & IMG_HEADER_F_REWRITES)
		return resolve_locked(w);
	img_index_sort(w->idx, w->nidx);
	/* A page saved twice is a bug in the producer: refuse to seal such an image. */
	if (img_index_find_overlap(w->idx, w->nidx, w->page_size) != w->nidx)
		return -ENOTUNIQ;
	return 0;
}

/* Writes the sorted index as one or more INDEX frames. Lock held. */
static int write_index_locked(struct img_writer *w)
{
	const size_t per_frame = IMG_MAX_FRAME_PAYLOAD / IMG_INDEX_ENTRY_SIZE;
	size_t done = 0;
	int r = 0;

	do {
		size_t n = w->nidx - done < per_frame ? w->nidx - done : per_frame;
		uint8_t *buf = malloc(n ? n * IMG_INDEX_ENTRY_SIZE : 1);
		struct iovec iov = {buf, n * IMG_INDEX_ENTRY_SIZE};
		struct img_frame f = {.type = IMG_FRAME_INDEX,
				      .count = n,
				      .payload_len = n * IMG_INDEX_ENTRY_SIZE};

		if (!buf)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++)
			img_index_entry_encode(&w->idx[done + i], buf + i * IMG_INDEX_ENTRY_SIZE);
		f.payload_crc = iov_crc(&iov, 1);
		r = emit_locked(w, &f, &iov, 1);
		free(buf);
		done += n;
	} while (r >= 0 && done < w->nidx);
	return r;
}

static int finish_locked(struct img_writer *w)
{
	struct img_trailer t = {0};
	uint8_t buf[IMG_TRAILER_SIZE];
	struct iovec iov = {buf, sizeof(buf)};
	int r;

	if (w->error)
		return w->error;
	if (!w->begun || w->finished)
		return -EINVAL;
	r = settle_index_locked(w);
	if (r < 0)
		return r;
	t.index_offset = w->offset;
	t.meta_offset = w->meta_offset;
	r = write_index_locked(w);
	if (r < 0)
		return r;
	t.frame_count = w->seq;
	t.image_size = w->offset + IMG_TRAILER_SIZE;
	r = img_digest_final(w->digest, t.digest);
	if (r < 0)
		return r;
	img_trailer_encode(&t, buf);
	r = w->sink->ops->writev(w->sink, &iov, 1);
	if (r >= 0 && w->sink->ops->flush)
		r = w->sink->ops->flush(w->sink);
	if (r < 0)
		return r;
	w->offset += IMG_TRAILER_SIZE;
	w->sink->written = w->offset;
	w->finished = true;
	return 0;
}

int img_writer_finish(struct img_writer *w)
{
	int r;

	pthread_mutex_lock(&w->lock);
	/* No instant without the second META; nothing is written, so it may still come. */
	if ((w->flags & IMG_HEADER_F_REWRITES) && !w->meta_offset && !w->error) {
		pthread_mutex_unlock(&w->lock);
		return -EINVAL;
	}
	r = finish_locked(w);
	if (r < 0 && !w->error)
		w->error = r;
	pthread_mutex_unlock(&w->lock);
	return r;
}

void img_writer_get_stats(struct img_writer *w, struct img_writer_stats *ret)
{
	pthread_mutex_lock(&w->lock);
	*ret = w->stats;
	pthread_mutex_unlock(&w->lock);
}
