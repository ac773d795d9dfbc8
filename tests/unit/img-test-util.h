/* SPDX-License-Identifier: MIT */
/* Helpers shared by the image format's unit tests: seeded randomness, memfds, page content. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "uffsnap/image.h"

/* splitmix64: small, fast, and the same sequence for the same seed on every machine. */
struct imgtest_rng {
	uint64_t state;
};

uint64_t imgtest_rand(struct imgtest_rng *r);
/* Uniform-enough in [0, n), n > 0. */
uint64_t imgtest_below(struct imgtest_rng *r, uint64_t n);

/* UFFSNAP_TEST_SEED from the environment, else a fresh one; printed so a failure can be rerun. */
uint64_t imgtest_seed(const char *test);

/* A memfd (O_CLOEXEC) holding len bytes of data (may be NULL/0); -errno on failure. */
int imgtest_memfd(const void *data, size_t len);

/* Reads the whole content of fd (from offset 0) into a malloc'd buffer. */
int imgtest_slurp(int fd, uint8_t **ret, size_t *ret_len);

/* The content every test writes for the page bytes at address addr: a function of seed and
 * address only, so expected bytes can be recomputed for any range. */
void imgtest_fill(uint64_t seed, uint64_t addr, void *buf, size_t len);

/* An extent of a test image. */
struct imgtest_extent {
	uint64_t addr;
	uint64_t npages;
	uint16_t type; /* IMG_FRAME_PAGES, _ZERO or _DISCARDED */
};

/* Writes one extent through the writer (PAGES content from imgtest_fill). */
int imgtest_write_extent(struct img_writer *w, uint64_t seed, uint32_t page_size,
			 const struct imgtest_extent *e);

/*
 * Writes a complete image of the given extents (in the given order) plus one PROGRESS and one
 * EVENT frame to fd with one thread. Returns 0 or -errno.
 */
int imgtest_write_image(int fd, uint32_t page_size, uint64_t seed, const struct imgtest_extent *ext,
			size_t n, int finish);

/*
 * What the image should hold for [addr, addr + len): 0 and the bytes in buf (may be NULL), or
 * -ENOENT / -ESTALE for the first byte that is missing / discarded. ext sorted by address.
 */
int imgtest_expect(const struct imgtest_extent *ext, size_t n, uint32_t page_size, uint64_t seed,
		   uint64_t addr, uint8_t *buf, size_t len);

/*
 * Hand-built images, every checksum and the digest right, for the rules the writer never
 * breaks (a second META without the flag, an index that does not match, ...). Frames get
 * consecutive seq numbers; the caller gives the header flags and each frame.
 */
struct imgtest_raw {
	uint8_t *p;
	size_t len, cap;
	uint32_t page_size;
	uint64_t seq;
	uint64_t index_offset; /* the first INDEX frame, once written */
	struct img_digest *digest;
};

void imgtest_raw_begin(struct imgtest_raw *r, uint32_t page_size, uint32_t flags);
/* Appends a frame (its payload: len bytes, or count pages of 0x5a for PAGES with data NULL);
 * returns its offset. */
uint64_t imgtest_raw_frame(struct imgtest_raw *r, uint16_t type, uint16_t flags, uint64_t addr,
			   uint64_t count, const void *data, uint32_t len);
void imgtest_raw_index(struct imgtest_raw *r, const struct img_index_entry *e, size_t n);
/* The trailer (meta_offset as given), then a memfd of the image; r is freed. */
int imgtest_raw_finish(struct imgtest_raw *r, uint64_t meta_offset);
/* A memfd of the image so far, without a trailer; r is freed. */
int imgtest_raw_cut(struct imgtest_raw *r);
