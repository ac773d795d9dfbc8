/* SPDX-License-Identifier: MIT */
/* Helpers shared by the image format's unit tests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "img-test-util.h"
#include "img-internal.h" /* img_digest_*: the raw builder seals its images */

uint64_t imgtest_rand(struct imgtest_rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t imgtest_below(struct imgtest_rng *r, uint64_t n)
{
	return imgtest_rand(r) % n;
}

uint64_t imgtest_seed(const char *test)
{
	const char *env = getenv("UFFSNAP_TEST_SEED");
	struct timespec ts;
	uint64_t seed;

	clock_gettime(CLOCK_REALTIME, &ts);
	seed = env ? strtoull(env, NULL, 0) : (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
	fprintf(stderr, "%s: seed %llu (rerun with UFFSNAP_TEST_SEED=%llu)\n", test,
		(unsigned long long)seed, (unsigned long long)seed);
	return seed;
}

int imgtest_memfd(const void *data, size_t len)
{
	int fd = memfd_create("uffsnap-test", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t n = write(fd, (const uint8_t *)data + done, len - done);

		if (n < 0) {
			int r = -errno;

			close(fd);
			return r;
		}
		done += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int imgtest_slurp(int fd, uint8_t **ret, size_t *ret_len)
{
	struct stat st;
	uint8_t *buf;

	if (fstat(fd, &st) < 0)
		return -errno;
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		return -ENOMEM;
	if (pread(fd, buf, st.st_size, 0) != st.st_size) {
		free(buf);
		return -EIO;
	}
	*ret = buf;
	*ret_len = (size_t)st.st_size;
	return 0;
}

void imgtest_fill(uint64_t seed, uint64_t addr, void *buf, size_t len)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		uint64_t a = addr + i, word = a >> 3;
		struct imgtest_rng r = {seed ^ (word * 0x2545f4914f6cdd1dull)};

		p[i] = (uint8_t)(imgtest_rand(&r) >> (8 * (a & 7)));
	}
}

int imgtest_write_extent(struct img_writer *w, uint64_t seed, uint32_t page_size,
			 const struct imgtest_extent *e)
{
	uint8_t *buf;
	int r;

	if (e->type == IMG_FRAME_ZERO)
		return img_writer_zero(w, e->addr, e->npages);
	if (e->type == IMG_FRAME_DISCARDED)
		return img_writer_discarded(w, e->addr, e->npages);
	buf = malloc(e->npages * page_size);
	if (!buf)
		return -ENOMEM;
	imgtest_fill(seed, e->addr, buf, e->npages * page_size);
	r = img_writer_pages(w, e->addr, e->npages, buf);
	free(buf);
	return r;
}

static int imgtest_write_frames(struct img_writer *w, uint32_t page_size, uint64_t seed,
				const struct imgtest_extent *ext, size_t n)
{
	static const char meta[] = "{\"format\":\"uffsnap\",\"version\":1,\"target\":{\"pid\":7}}";
	static const char event[] = "{\"event\":\"test\"}";
	struct img_progress p = {1, 2, 3};
	int r = img_writer_begin(w, meta, strlen(meta));

	for (size_t i = 0; r >= 0 && i < n; i++) {
		r = imgtest_write_extent(w, seed, page_size, &ext[i]);
		if (r >= 0 && i == n / 2)
			r = img_writer_progress(w, &p);
		if (r >= 0 && i == n / 3)
			r = img_writer_event(w, event, strlen(event));
	}
	return r;
}

int imgtest_write_image(int fd, uint32_t page_size, uint64_t seed, const struct imgtest_extent *ext,
			size_t n, int finish)
{
	struct img_writer_opts opts = {.page_size = page_size};
	struct img_writer *w = NULL;
	struct img_sink *sink = NULL;
	int r;

	r = img_sink_fd_new(fd, &sink);
	if (r >= 0)
		r = img_writer_new(&opts, sink, &w);
	if (r >= 0)
		r = imgtest_write_frames(w, page_size, seed, ext, n);
	if (r >= 0 && finish)
		r = img_writer_finish(w);
	img_writer_free(w);
	img_sink_free(sink);
	return r;
}

/* The extent holding addr, or NULL (ext sorted by address, not overlapping). */
static const struct imgtest_extent *imgtest_find(const struct imgtest_extent *ext, size_t n,
						 uint32_t ps, uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < ext[mid].addr)
			hi = mid;
		else if (addr - ext[mid].addr >= ext[mid].npages * ps)
			lo = mid + 1;
		else
			return &ext[mid];
	}
	return NULL;
}

int imgtest_expect(const struct imgtest_extent *ext, size_t n, uint32_t page_size, uint64_t seed,
		   uint64_t addr, uint8_t *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		const struct imgtest_extent *e = imgtest_find(ext, n, page_size, addr + done);
		uint64_t end, take;

		if (!e)
			return -ENOENT;
		if (e->type == IMG_FRAME_DISCARDED)
			return -ESTALE;
		end = e->addr + e->npages * page_size;
		take = end - (addr + done) < len - done ? end - (addr + done) : len - done;
		if (buf && e->type == IMG_FRAME_ZERO)
			memset(buf + done, 0, take);
		else if (buf)
			imgtest_fill(seed, addr + done, buf + done, take);
		done += take;
	}
	return 0;
}

static void raw_append(struct imgtest_raw *r, const void *data, size_t len)
{
	if (r->len + len > r->cap) {
		r->cap = 2 * (r->len + len);
		r->p = realloc(r->p, r->cap);
		if (!r->p)
			abort();
	}
	memcpy(r->p + r->len, data, len);
	r->len += len;
}

void imgtest_raw_begin(struct imgtest_raw *r, uint32_t page_size, uint32_t flags)
{
	struct img_header h = {IMG_VERSION_MAJOR, IMG_VERSION_MINOR, page_size, flags};
	uint8_t hdr[IMG_HEADER_SIZE];

	memset(r, 0, sizeof(*r));
	r->page_size = page_size;
	if (img_digest_new(&r->digest) < 0)
		abort();
	img_header_encode(&h, hdr);
	raw_append(r, hdr, sizeof(hdr));
	img_digest_update(r->digest, hdr, sizeof(hdr));
}

uint64_t imgtest_raw_frame(struct imgtest_raw *r, uint16_t type, uint16_t flags, uint64_t addr,
			   uint64_t count, const void *data, uint32_t len)
{
	uint8_t hdr[IMG_FRAME_HEADER_SIZE], *fill = NULL;
	uint64_t off = r->len;
	struct img_frame f;

	if (type == IMG_FRAME_PAGES && !data) {
		len = (uint32_t)(count * r->page_size);
		fill = malloc(len);
		if (!fill)
			abort();
		memset(fill, 0x5a, len);
		data = fill;
	}
	f = (struct img_frame){.type = type,
			       .flags = flags,
			       .seq = r->seq++,
			       .addr = addr,
			       .count = count,
			       .payload_len = len,
			       .payload_crc = len ? img_crc32c(0, data, len) : 0};
	img_frame_encode(&f, hdr);
	raw_append(r, hdr, sizeof(hdr));
	if (len)
		raw_append(r, data, len);
	img_digest_update(r->digest, hdr, sizeof(hdr));
	if (type == IMG_FRAME_INDEX && !r->index_offset)
		r->index_offset = off;
	free(fill);
	return off;
}

void imgtest_raw_index(struct imgtest_raw *r, const struct img_index_entry *e, size_t n)
{
	uint8_t *buf = calloc(n ? n : 1, IMG_INDEX_ENTRY_SIZE);

	if (!buf)
		abort();
	for (size_t i = 0; i < n; i++)
		img_index_entry_encode(&e[i], buf + i * IMG_INDEX_ENTRY_SIZE);
	imgtest_raw_frame(r, IMG_FRAME_INDEX, 0, 0, n, buf, (uint32_t)(n * IMG_INDEX_ENTRY_SIZE));
	free(buf);
}

int imgtest_raw_cut(struct imgtest_raw *r)
{
	int fd = imgtest_memfd(r->p, r->len);

	img_digest_free(r->digest);
	free(r->p);
	memset(r, 0, sizeof(*r));
	return fd;
}

int imgtest_raw_finish(struct imgtest_raw *r, uint64_t meta_offset)
{
	struct img_trailer t = {.index_offset = r->index_offset,
				.frame_count = r->seq,
				.image_size = r->len + IMG_TRAILER_SIZE,
				.meta_offset = meta_offset};
	uint8_t buf[IMG_TRAILER_SIZE];

	if (img_digest_final(r->digest, t.digest) < 0)
		abort();
	img_trailer_encode(&t, buf);
	raw_append(r, buf, sizeof(buf));
	return imgtest_raw_cut(r);
}
