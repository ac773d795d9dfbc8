/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the image readers: the input is an image file. It runs the sequential
 * verifier and the random-access reader on it, and cross-checks them: an image the verifier
 * calls COMPLETE must open for random access with the same (last) META, every page in its
 * index must read back (a discarded or, 1.2, unmapped one never does), and so must its device
 * state (DEVSTATE frames). Such an image (unless incremental: its parents are not there) must
 * also open as a chain of one that reads the same bytes, and flatten into a complete image
 * with the same pages.
 * Checksums stop almost every mutation at the first CRC, so each input is also run a second
 * time with every CRC and the digest recomputed ("repaired"): that lets the fuzzer reach the
 * structural rules behind the checksums (sequence, order, index, extents, sizes).
 * Built with clang -fsanitize=fuzzer (UFFSNAP_FUZZ) or with fuzz-replay.c for the corpus tests.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "uffsnap/chain.h"
#include "uffsnap/image.h"

/* Offsets of the checksummed fields (FORMAT.md). */
#define FUZZ_HDR_CRC	60
#define FUZZ_FRAME_LEN	32
#define FUZZ_FRAME_PCRC 36
#define FUZZ_FRAME_HCRC 44
#define FUZZ_TR_DIGEST	32
#define FUZZ_TR_CRC	76

/* Bytes copied per read: bounds memory whatever page size and extent length the input claims. */
#define FUZZ_READ_MAX (256u << 10)

static int fuzz_memfd(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-img", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0)
		return -errno;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);

		if (n <= 0) {
			close(fd);
			return -EIO;
		}
		done += (size_t)n;
	}
	return lseek(fd, 0, SEEK_SET) == 0 ? fd : (close(fd), -EIO);
}

/* Something the two readers disagree on: a bug, reported as a crash so the fuzzer keeps it. */
static void fuzz_bug(const char *what, uint64_t addr, int r, const struct img_error *err)
{
	fprintf(stderr, "fuzz-img-reader: %s (addr 0x%llx: %d %s)\n", what,
		(unsigned long long)addr, r, err ? err->msg : "");
	abort();
}

/* Reads every index entry (its start, and its whole length up to FUZZ_READ_MAX) and the
 * bytes just around it. */
static void fuzz_reads(struct img_reader *r, uint8_t *buf, int complete)
{
	const struct img_index_entry *idx;
	size_t n = img_reader_index(r, &idx);
	uint64_t ps = img_reader_page_size(r);
	struct img_error err;

	for (size_t i = 0; i < n && i < 4096; i++) {
		const struct img_index_entry *e = &idx[i];
		uint64_t len = e->npages > FUZZ_READ_MAX / ps ? FUZZ_READ_MAX : e->npages * ps;
		int k = img_reader_read(r, e->addr, buf, len, &err);

		bool absent = e->type == IMG_FRAME_DISCARDED || e->type == IMG_FRAME_UNMAPPED;

		if (complete && !absent && k != 0)
			fuzz_bug("a verified extent does not read back", e->addr, k, &err);
		if (k == 0 && absent)
			fuzz_bug("a discarded or unmapped extent reads as data", e->addr, k, &err);
		img_reader_read(r, e->addr - 1, buf, 2, &err);
		img_reader_read(r, e->addr + len - 1, buf, 2, &err);
	}
	img_reader_read(r, UINT64_MAX - 1, buf, 2, &err);
	img_reader_read(r, 0, buf, 1, &err);
}

/* The device state (1.1) of a verified image reads whole; with no DEVSTATE frame, -ENOENT. */
static void fuzz_devstate(struct img_reader *r, const struct img_summary *s, int complete)
{
	void *ds = NULL;
	size_t len = 0;
	int k = img_reader_devstate(r, &ds, &len);

	if (complete && s->devstate_frames && (k != 0 || len != s->devstate_bytes))
		fuzz_bug("a verified device state does not read back", 0, k, NULL);
	if (complete && !s->devstate_frames && k != -ENOENT)
		fuzz_bug("a device state where the verifier saw none", 0, k, NULL);
	free(ds);
}

/* The chain's extents read the same from the chain and from the flattened image. */
static void fuzz_flat_reads(struct img_chain *c, int flat, uint8_t *a, uint8_t *b)
{
	const struct img_chain_extent *e;
	size_t n = img_chain_extents(c, &e);
	uint64_t ps = img_chain_page_size(c);
	struct img_reader *r;
	struct img_error err;
	int k = img_reader_open(flat, &r, &err);

	if (k < 0)
		fuzz_bug("a flattened image does not open", 0, k, &err);
	for (size_t i = 0; i < n && i < 4096; i++) {
		uint64_t len = e[i].npages > FUZZ_READ_MAX / ps ? FUZZ_READ_MAX : e[i].npages * ps;
		int x = img_chain_read(c, e[i].addr, a, len, &err);
		int y = img_reader_read(r, e[i].addr, b, len, &err);

		if (x != y || (x == 0 && memcmp(a, b, len)))
			fuzz_bug("the flattened image reads otherwise", e[i].addr, y, &err);
	}
	img_reader_free(r);
}

/* Flattened: a complete image, of the same effective pages, reading the same. */
static void fuzz_flatten(struct img_chain *c, const struct img_summary *s, uint8_t *a, uint8_t *b)
{
	struct img_summary fs;
	struct img_sink *sink = NULL;
	struct img_error err;
	int flat = fuzz_memfd(NULL, 0), k;

	if (flat < 0 || img_sink_fd_new(flat, &sink) < 0)
		abort();
	k = img_chain_flatten(c, sink, NULL, &err);
	img_sink_free(sink);
	if (k < 0)
		fuzz_bug("a verified image does not flatten", 0, k, &err);
	if (lseek(flat, 0, SEEK_SET) != 0 || img_verify_fd(flat, &fs, NULL) < 0 ||
	    fs.status != IMG_COMPLETE || fs.header.flags || fs.data_pages != s->data_pages ||
	    fs.zero_pages != s->zero_pages || fs.discarded_pages != s->discarded_pages)
		fuzz_bug("a flattened image does not verify as its source", 0, 0, &fs.error);
	fuzz_flat_reads(c, flat, a, b);
	close(flat);
}

/* A complete full image as a chain of one (an incremental one's parents are not here). */
static void fuzz_chain(int fd, const struct img_summary *s)
{
	struct img_chain *c = NULL;
	struct img_error err;
	uint8_t *a, *b;
	char path[64];
	int k;

	if (s->status != IMG_COMPLETE || (s->header.flags & IMG_HEADER_F_INCREMENTAL))
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	k = img_chain_open(path, NULL, &c, &err);
	if (k < 0)
		fuzz_bug("a verified image does not open as a chain", 0, k, &err);
	a = malloc(FUZZ_READ_MAX);
	b = malloc(FUZZ_READ_MAX);
	if (a && b)
		fuzz_flatten(c, s, a, b);
	free(a);
	free(b);
	img_chain_free(c);
}

static void fuzz_reader(int fd, const struct img_summary *s, char *meta)
{
	struct img_reader *r = NULL;
	struct img_error err = {0};
	uint8_t *buf;
	int k = img_reader_open(fd, &r, &err);
	int complete = s->status == IMG_COMPLETE;

	if (complete && k < 0)
		fuzz_bug("a verified image does not open", 0, k, &err);
	if (k < 0)
		return;
	if (complete && (!img_reader_complete(r) || strcmp(img_reader_meta(r), meta) ||
			 img_reader_page_size(r) != s->header.page_size))
		fuzz_bug("the reader disagrees with the verifier", 0, 0, NULL);
	fuzz_devstate(r, s, complete);
	buf = malloc(FUZZ_READ_MAX);
	if (buf)
		fuzz_reads(r, buf, complete);
	free(buf);
	img_reader_free(r);
	fuzz_chain(fd, s);
}

static void fuzz_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t fuzz_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Recomputes the header CRC, each frame's payload and header CRCs, and the trailer's digest
 * and CRC, walking frames as long as they fit in the input. */
static void fuzz_repair(uint8_t *p, size_t size)
{
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	unsigned int dlen;
	size_t off = IMG_HEADER_SIZE;

	if (!sha || size < IMG_HEADER_SIZE || !EVP_DigestInit_ex(sha, EVP_sha256(), NULL))
		goto out;
	fuzz_put32(p + FUZZ_HDR_CRC, img_crc32c(0, p, FUZZ_HDR_CRC));
	EVP_DigestUpdate(sha, p, IMG_HEADER_SIZE);
	while (off + IMG_FRAME_HEADER_SIZE <= size && !memcmp(p + off, "UFRM", 4)) {
		uint8_t *h = p + off;
		uint32_t len = fuzz_get32(h + FUZZ_FRAME_LEN);

		if (len > size - off - IMG_FRAME_HEADER_SIZE)
			break;
		fuzz_put32(h + FUZZ_FRAME_PCRC,
			   len ? img_crc32c(0, h + IMG_FRAME_HEADER_SIZE, len) : 0);
		fuzz_put32(h + FUZZ_FRAME_HCRC, img_crc32c(0, h, FUZZ_FRAME_HCRC));
		EVP_DigestUpdate(sha, h, IMG_FRAME_HEADER_SIZE);
		off += IMG_FRAME_HEADER_SIZE + len;
	}
	if (off + IMG_TRAILER_SIZE <= size &&
	    EVP_DigestFinal_ex(sha, p + off + FUZZ_TR_DIGEST, &dlen))
		fuzz_put32(p + off + FUZZ_TR_CRC, img_crc32c(0, p + off, FUZZ_TR_CRC));
out:
	EVP_MD_CTX_free(sha);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
	struct img_summary s;
	char *meta = NULL;
	int fd = fuzz_memfd(data, size);

	if (fd < 0)
		return;
	if (img_verify_fd(fd, &s, &meta) == 0)
		fuzz_reader(fd, &s, meta);
	free(meta);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	fuzz_one(data, size);
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	fuzz_repair(copy, size);
	if (memcmp(copy, data, size))
		fuzz_one(copy, size);
	free(copy);
	return 0;
}
