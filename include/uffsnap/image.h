/* SPDX-License-Identifier: MIT */
/*
 * libuffsnap: the uffsnap image/stream format (proto/FORMAT.md is the specification).
 *
 * All functions return >= 0 on success and a negative errno on failure; none of them logs.
 * Corruption is reported as -EBADMSG, an image that ends early as -ENODATA, an unsupported
 * version or frame type as -EPROTONOSUPPORT. Where a struct img_error is passed, it receives
 * a one-line human description and the file offset of the problem.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMG_VERSION_MAJOR 1
#define IMG_VERSION_MINOR 2

/*
 * Header flags (since 1.2). A reader refuses an image with a flag it does not know: each
 * changes what the frames mean, so ignoring one would misread the image.
 */
#define IMG_HEADER_F_REWRITES	 0x1 /* pre-copy: extents may rewrite pages; the last wins */
#define IMG_HEADER_F_INCREMENTAL 0x2 /* a chain's child: what changed since its parent */

/* Frame types, as written on disk (never derived from an enum's order). */
enum img_frame_type {
	IMG_FRAME_META = 1,	 /* JSON metadata; always the first frame */
	IMG_FRAME_PAGES = 2,	 /* page data: count pages at addr */
	IMG_FRAME_ZERO = 3,	 /* count all-zero pages at addr */
	IMG_FRAME_DISCARDED = 4, /* count pages at addr discarded after the snapshot instant */
	IMG_FRAME_PROGRESS = 5,	 /* progress mark */
	IMG_FRAME_EVENT = 6,	 /* JSON note of something that happened during the snapshot */
	IMG_FRAME_INDEX = 7,	 /* the index; always the last frame */
	IMG_FRAME_DEVSTATE = 8,	 /* since 1.1: a piece of a guest's device state, after META */
	IMG_FRAME_UNMAPPED = 9,	 /* since 1.2: count pages at addr not mapped at the instant */
};

/* Frame flag: a reader that does not know this frame's type may skip it. */
#define IMG_FRAME_F_OPTIONAL 0x0001

/* Sizes of the fixed on-disk structures (see FORMAT.md). */
#define IMG_HEADER_SIZE	       64
#define IMG_FRAME_HEADER_SIZE  48
#define IMG_INDEX_ENTRY_SIZE   32
#define IMG_PROGRESS_SIZE      32
#define IMG_TRAILER_SIZE       80
#define IMG_DIGEST_SIZE	       32
#define IMG_MAX_FRAME_PAYLOAD  (64u << 20)
#define IMG_MAX_META	       (16u << 20)

struct img_error {
	uint64_t offset; /* file offset where the problem was found */
	char msg[200];
};

/* Decoded fixed-size structures. */
struct img_header {
	uint16_t version_major;
	uint16_t version_minor;
	uint32_t page_size;
	uint32_t flags;
};

struct img_frame {
	uint16_t type;
	uint16_t flags;
	uint64_t seq;	   /* 0 for META, then +1 per frame */
	uint64_t addr;	   /* extent frames (PAGES .. UNMAPPED): first page's address */
	uint64_t count;	   /* pages for extent frames, entries for INDEX, else 0 */
	uint32_t payload_len;
	uint32_t payload_crc;
	uint64_t offset;   /* file offset of the frame header (filled in by readers) */
};

/*
 * An effective extent. In a pre-copy image (IMG_HEADER_F_REWRITES) it may be part of its frame:
 * [addr, addr + npages pages) lies inside the frame at offset, whose data for addr is at
 * payload + (addr - frame's addr).
 */
struct img_index_entry {
	uint64_t addr;
	uint64_t npages;
	uint64_t offset; /* file offset of the frame header */
	uint16_t type;	 /* IMG_FRAME_PAGES, _ZERO, _DISCARDED or (1.2) _UNMAPPED */
};

struct img_progress {
	uint64_t pages_done;
	uint64_t pages_total;
	uint64_t elapsed_ns;
};

struct img_trailer {
	uint64_t index_offset;
	uint64_t frame_count;
	uint64_t image_size; /* including the trailer */
	uint8_t digest[IMG_DIGEST_SIZE];
	uint64_t meta_offset; /* since 1.2, pre-copy images: the second META frame; else 0 */
};

/* CRC32C (Castagnoli); uses the SSE4.2 instruction when the CPU has it. */
uint32_t img_crc32c(uint32_t crc, const void *buf, size_t len);

/* Encoders/decoders for the fixed structures: explicit little-endian, reserved bytes zero. */
void img_header_encode(const struct img_header *h, uint8_t out[IMG_HEADER_SIZE]);
int img_header_decode(const uint8_t in[IMG_HEADER_SIZE], struct img_header *ret,
		      struct img_error *err);
void img_frame_encode(const struct img_frame *f, uint8_t out[IMG_FRAME_HEADER_SIZE]);
int img_frame_decode(const uint8_t in[IMG_FRAME_HEADER_SIZE], struct img_frame *ret,
		     struct img_error *err);
void img_index_entry_encode(const struct img_index_entry *e, uint8_t out[IMG_INDEX_ENTRY_SIZE]);
void img_index_entry_decode(const uint8_t in[IMG_INDEX_ENTRY_SIZE], struct img_index_entry *ret);
void img_progress_encode(const struct img_progress *p, uint8_t out[IMG_PROGRESS_SIZE]);
void img_progress_decode(const uint8_t in[IMG_PROGRESS_SIZE], struct img_progress *ret);
void img_trailer_encode(const struct img_trailer *t, uint8_t out[IMG_TRAILER_SIZE]);
/*
 * Decodes meta_offset whatever the header flags: the caller, which knows them, requires it to
 * be 0 in an image without IMG_HEADER_F_REWRITES (FORMAT.md "Trailer").
 */
int img_trailer_decode(const uint8_t in[IMG_TRAILER_SIZE], struct img_trailer *ret,
		       struct img_error *err);
const char *img_frame_type_name(uint16_t type);

/*
 * Sinks: where a writer's bytes go. The writer calls writev() with the writer's lock held,
 * so a sink sees one frame at a time, in order. writev must write everything or fail.
 */
struct img_sink;
struct img_sink_ops {
	int (*writev)(struct img_sink *s, const struct iovec *iov, int iovcnt);
	int (*flush)(struct img_sink *s); /* optional: make everything written durable */
	void (*free)(struct img_sink *s); /* optional */
};
struct img_sink {
	const struct img_sink_ops *ops;
	uint64_t written; /* bytes accepted so far (maintained by the writer) */
};

/*
 * A sink writing to an fd it does not own (file, pipe, socket). On a regular file it starts
 * writeback every 32 MiB as it goes, and fsyncs on flush.
 */
int img_sink_fd_new(int fd, struct img_sink **ret);
/*
 * Makes the fd sink's writes to a pipe or socket give up with -ECANCELED once cancel_fd (an
 * eventfd, say) is readable, instead of blocking until a reader takes the bytes; the sink
 * never reads it. Regular files are written as before. cancel_fd stays the caller's.
 */
int img_sink_fd_set_cancel(struct img_sink *s, int cancel_fd);
void img_sink_free(struct img_sink *s);

/*
 * Writer. Thread-safe: pages may be added from several threads in any address order. Each
 * page address must be added at most once (readers reject overlapping extents), unless the
 * image is a pre-copy one (IMG_HEADER_F_REWRITES): then a page may be added again, and the
 * frame that reached the writer last (the highest seq) holds its content at the instant.
 */
struct img_writer;

struct img_writer_opts {
	uint32_t page_size;	/* 0: the system page size */
	uint32_t max_frame_pages; /* split larger runs; 0: 1 MiB worth of pages */
	uint32_t flags;		  /* header flags (IMG_HEADER_F_*); 0: a plain image */
};

int img_writer_new(const struct img_writer_opts *opts, struct img_sink *sink,
		   struct img_writer **ret);
/* Write the header and the META frame. meta_json must be a JSON object (not validated). */
int img_writer_begin(struct img_writer *w, const char *meta_json, size_t len);
/* At most this many pieces for img_writer_beginv() and img_writer_metav(). */
#define IMG_META_PIECES_MAX 16
/*
 * Same, the JSON given in n pieces written back to back (a large member spliced in without
 * copying it into one buffer).
 */
int img_writer_beginv(struct img_writer *w, const struct iovec *meta, int n);
int img_writer_pages(struct img_writer *w, uint64_t addr, uint64_t npages, const void *data);
/*
 * Makes room for `frames` more frames in the writer's index now, so that writing them later
 * (while a target is held) neither reallocates nor faults in fresh memory. 0 or -ENOMEM.
 */
int img_writer_reserve(struct img_writer *w, size_t frames);
/* Same, data given as an iovec array whose lengths add up to npages * page_size. */
int img_writer_pagesv(struct img_writer *w, uint64_t addr, uint64_t npages,
		      const struct iovec *iov, int iovcnt);
int img_writer_zero(struct img_writer *w, uint64_t addr, uint64_t npages);
int img_writer_discarded(struct img_writer *w, uint64_t addr, uint64_t npages);
/*
 * Since 1.2: pages not mapped at the image's instant (an earlier round saved them, then the
 * target unmapped them; or the parent of an incremental image had them). -EINVAL unless the
 * image is a pre-copy or incremental one.
 */
int img_writer_unmapped(struct img_writer *w, uint64_t addr, uint64_t npages);
/*
 * Since 1.2, pre-copy images only: the metadata of the instant (layout, threads, time), known
 * once the target is frozen, as a second META frame. Once, after img_writer_begin() and
 * before img_writer_finish(); -EINVAL otherwise. Readers take it as the image's metadata.
 */
int img_writer_meta(struct img_writer *w, const char *meta_json, size_t len);
/* Same, in n pieces (img_writer_beginv()). */
int img_writer_metav(struct img_writer *w, const struct iovec *meta, int n);
int img_writer_progress(struct img_writer *w, const struct img_progress *p);
int img_writer_event(struct img_writer *w, const char *json, size_t len);
/*
 * Since 1.1: a QEMU guest's device state (its migration stream taken with x-ignore-shared),
 * written as DEVSTATE frames of at most 1 MiB each. Only once, right after img_writer_begin()
 * and before any other frame; else -EINVAL (also for len 0).
 */
int img_writer_devstate(struct img_writer *w, const void *data, size_t len);
/*
 * Write the INDEX frame(s) and the trailer, then flush the sink. After this, only free.
 * -ENOTUNIQ if some page was added twice in an image without IMG_HEADER_F_REWRITES (the image
 * is then left without a trailer). -EINVAL for a pre-copy image without its second META
 * (img_writer_meta()): nothing is written, the META may still be given and finish retried. A
 * pre-copy image's index lists the extents after resolution (the last frame of each page), and
 * its trailer points at the second META.
 */
int img_writer_finish(struct img_writer *w);
/* Counters so far: pages as written (a page written twice counts twice). */
struct img_writer_stats {
	uint64_t frames;
	uint64_t data_pages;
	uint64_t zero_pages;
	uint64_t discarded_pages;
	uint64_t bytes;
	uint64_t unmapped_pages;   /* since 1.2 */
	uint64_t superseded_pages; /* pages written and later covered by another frame; set by
				      img_writer_finish() (resolving sooner would cost too much) */
};
void img_writer_get_stats(struct img_writer *w, struct img_writer_stats *ret);
void img_writer_free(struct img_writer *w);

/*
 * Reader.
 */
enum img_status {
	IMG_COMPLETE = 0,   /* every frame, the index and the digest check out */
	IMG_INCOMPLETE = 1, /* valid up to its last frame; no trailer (the writer stopped early) */
	IMG_CORRUPT = 2,    /* something does not check out; see the error */
};

/*
 * The page counts are of the pages the image holds at its instant: in a pre-copy image, the
 * effective extents after resolution (a page written in three rounds counts once, as what its
 * last frame says); the pages covered again later are superseded_pages.
 */
struct img_summary {
	enum img_status status;
	struct img_header header;
	uint64_t frames;
	uint64_t data_pages;
	uint64_t zero_pages;
	uint64_t discarded_pages;
	uint64_t progress_marks;
	uint64_t events;
	uint64_t valid_bytes; /* bytes up to the end of the last valid frame (or the trailer) */
	struct img_error error; /* for INCOMPLETE and CORRUPT: where and what */
	uint64_t devstate_frames; /* since 1.1: DEVSTATE frames and their payloads' total */
	uint64_t devstate_bytes;
	uint64_t unmapped_pages;   /* since 1.2: effective UNMAPPED pages */
	uint64_t superseded_pages; /* since 1.2: pages written, then covered by a later frame */
	uint64_t metas;		   /* since 1.2: META frames seen (a pre-copy image: 2) */
};

/*
 * Sequential verification from the start using read() only, so it works on pipes and sockets.
 * Checks every checksum, the frame sequence, overlapping extents (in a pre-copy image: the
 * index against the resolved frames), the index against the frames seen and the digest.
 * Returns 0 when it could classify the image (see ret->status), -errno on an I/O error. If
 * ret_meta is not NULL it receives the last META frame's JSON text (malloc'd, NUL-ended): the
 * metadata of the image's instant. A pre-copy image cut before its second META is INCOMPLETE
 * with an error saying it has no instant.
 */
int img_verify_fd(int fd, struct img_summary *ret, char **ret_meta);

/*
 * Random access. Opening reads the header, META frame, trailer and index (pread only). A
 * pre-copy image cut before its second META is refused (-ENODATA): its pages are from
 * different moments.
 */
struct img_reader;
int img_reader_open(int fd, struct img_reader **ret, struct img_error *err);
void img_reader_free(struct img_reader *r);
/* The metadata of the image's instant (the last META frame), NUL-ended JSON. */
const char *img_reader_meta(const struct img_reader *r);
/* The header's flags (IMG_HEADER_F_*). */
uint32_t img_reader_flags(const struct img_reader *r);
/*
 * The trailer's digest, which names the image (an incremental image names its parent by it).
 * -ENODATA for an image without a valid trailer.
 */
int img_reader_digest(const struct img_reader *r, uint8_t ret[IMG_DIGEST_SIZE]);
/* False when the image had no valid trailer and was indexed by walking its frames. */
bool img_reader_complete(const struct img_reader *r);
uint32_t img_reader_page_size(const struct img_reader *r);
/* The effective extents, sorted by address, not overlapping (UNMAPPED ones included). */
size_t img_reader_index(const struct img_reader *r, const struct img_index_entry **ret);
/*
 * Copy the snapshot's bytes of [addr, addr + len) into buf. Zero extents read as zero bytes.
 * -ENOENT if part of the range is not in the image or was not mapped at the instant (an
 * UNMAPPED extent), -ESTALE if part was discarded after the snapshot instant (err says where),
 * -EBADMSG if a page frame fails its checksum.
 */
int img_reader_read(struct img_reader *r, uint64_t addr, void *buf, size_t len,
		    struct img_error *err);
/*
 * The device state (the DEVSTATE frames' payloads concatenated, each checksummed) in a
 * malloc'd buffer. -ENOENT if the image has none; -ENODATA if the image ends (incomplete)
 * before a frame that follows the device state, so it may be cut short; -EBADMSG if corrupt.
 */
int img_reader_devstate(struct img_reader *r, void **ret, size_t *ret_len);

#ifdef __cplusplus
}
#endif
