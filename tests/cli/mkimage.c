/* SPDX-License-Identifier: MIT */
/*
 * mkimage: writes the small, fixed test image the CLI tests run uffsnapctl on, through the real
 * writer (libuffsnap), and prints the bytes the image holds for a range.
 *
 *   mkimage image OUT           a complete image (layout below)
 *   mkimage partial OUT         the same frames without index and trailer (incomplete)
 *   mkimage expect ADDR LEN     the snapshot's bytes of [ADDR, ADDR+LEN) on stdout
 *   mkimage offset IMG ADDR     the file offset of the frame holding ADDR (to corrupt it)
 *   mkimage guest OUT           a QEMU guest's image (format 1.1): a `guest` member, 5000
 *                               bytes of device state, backend ram0 of 64 KiB at 0x7f0000000000
 *   mkimage precopy OUT         a pre-copy image (format 1.2) whose instant holds the same
 *                               bytes as `image`, 0x18000-0x1a000 unmapped (below)
 *   mkimage precopy-cut OUT     the same, cut before its second META (no instant)
 *   mkimage chain DIR           an incremental chain (format 1.2) whose top's instant holds
 *                               the same bytes as `precopy`: DIR/base.img (full), mid.img,
 *                               top.img (pre-copied); and cut.img, an incomplete child of
 *                               mid.img (below)
 *
 * Layout (4 KiB pages), written out of address order:
 *   0x10000  4 pages data      0x14000  2 pages zero      0x16000  2 pages data
 *   0x18000  hole (8 pages)    0x20000  1 page discarded  0x21000  1 page data
 *   0x7ffff7ff0000 3 pages data (a "stack")
 * plus one PROGRESS and one EVENT frame.
 *
 * The pre-copy image: a first round saves 0x10000-0x1a000 with stale bytes (mk_byte() ^ 0x55),
 * a second round saves the layout above up to 0x18000 again and 0x18000-0x1a000 as UNMAPPED;
 * then the second META (mk_meta: the first one has only the target and an earlier time), then
 * the last round: 0x21000, the stack and the discarded page.
 *
 * The chain: base.img has 0x10000-0x1a000 stale, 0x21000, the stack as zero; mid.img (child of
 * base) 0x10000 (4 pages), zero 0x14000 (2, over base's data), the stack; top.img (child of
 * mid, pre-copied) a stale round over 0x10000-0x1a000, mid's frames again, UNMAPPED 0x18000 (2,
 * which base had), discarded 0x20000, the second META, then 0x16000 (2). Each META is mk_meta
 * at its own time (base 09:40, mid 09:43, top mk_meta's) with the parent member. cut.img:
 * 0x21000, no trailer.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uffsnap/image.h"

#define MK_PAGE 4096u

static const char mk_meta[] =
    "{\"format\":\"uffsnap\",\"version\":1,"
    "\"tool\":{\"name\":\"mkimage\",\"version\":\"0.1.0\"},"
    "\"target\":{\"pid\":4242,\"comm\":\"testprog\",\"exe\":\"/usr/bin/testprog\"},"
    "\"kernel\":{\"release\":\"6.18.0-test\",\"machine\":\"x86_64\"},"
    "\"time\":{\"realtime_ns\":1795000000123456789,"
    "\"iso8601\":\"2026-11-18T09:46:40.123456789Z\"},"
    "\"threads\":[{\"tid\":4242,\"regs\":{\"rip\":\"0x401000\"}},{\"tid\":4243,\"regs\":{\"rip\":"
    "\"0x401010\"}}],"
    "\"vmas\":["
    "{\"start\":\"0x10000\",\"end\":\"0x18000\",\"prot\":\"rw-p\",\"offset\":0,"
    "\"dev\":\"00:00\",\"inode\":0,\"path\":\"[heap]\",\"kind\":\"anon\",\"content\":\"tracked\"},"
    "{\"start\":\"0x20000\",\"end\":\"0x22000\",\"prot\":\"rw-s\",\"offset\":8192,"
    "\"dev\":\"fd:01\",\"inode\":1234567,\"path\":\"/tmp/data file\",\"kind\":\"file-shared\","
    "\"content\":\"reference\"},"
    "{\"start\":\"0x400000\",\"end\":\"0x401000\",\"prot\":\"r-xp\",\"path\":\"/usr/bin/testprog\","
    "\"kind\":\"text\",\"content\":\"none\"},"
    "{\"start\":\"0x7ffff7ff0000\",\"end\":\"0x7ffff7ff3000\",\"prot\":\"rw-p\","
    "\"path\":\"[stack]\",\"kind\":\"stack\",\"content\":\"copied\"}]}";

/* The byte the image holds at address a (for data pages): easy to recompute, not constant. */
static uint8_t mk_byte(uint64_t a)
{
	return (uint8_t)(a * 7 + (a >> 12) * 13 + 1);
}

static void mk_fill(uint64_t addr, uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = mk_byte(addr + i);
}

static int mk_data(struct img_writer *w, uint64_t addr, uint64_t npages)
{
	uint8_t *buf = malloc(npages * MK_PAGE);
	int r;

	if (!buf)
		return -ENOMEM;
	mk_fill(addr, buf, npages * MK_PAGE);
	r = img_writer_pages(w, addr, npages, buf);
	free(buf);
	return r;
}

static int mk_frames(struct img_writer *w)
{
	static const char event[] = "{\"event\":\"munmap\",\"start\":\"0x20000\",\"pages\":1}";
	struct img_progress p = {.pages_done = 6, .pages_total = 13, .elapsed_ns = 1000};
	int r = img_writer_begin(w, mk_meta, strlen(mk_meta));

	if (r >= 0)
		r = mk_data(w, 0x21000, 1);
	if (r >= 0)
		r = img_writer_zero(w, 0x14000, 2);
	if (r >= 0)
		r = mk_data(w, 0x7ffff7ff0000, 3);
	if (r >= 0)
		r = img_writer_progress(w, &p);
	if (r >= 0)
		r = mk_data(w, 0x10000, 4);
	if (r >= 0)
		r = img_writer_discarded(w, 0x20000, 1);
	if (r >= 0)
		r = img_writer_event(w, event, strlen(event));
	if (r >= 0)
		r = mk_data(w, 0x16000, 2);
	return r;
}

static const char mk_guest_meta[] =
    "{\"format\":\"uffsnap\",\"version\":1,"
    "\"target\":{\"pid\":4343,\"comm\":\"qemu-system-x86\",\"exe\":\"/usr/bin/qemu-system-x86_64\"},"
    "\"threads\":[{\"tid\":4343}],"
    "\"guest\":{\"hypervisor\":\"qemu\",\"qemu_version\":\"7.2.22\",\"machine\":\"pc-i440fx-7.2\","
    "\"binary\":\"/usr/bin/qemu-system-x86_64\",\"argv\":[\"qemu-system-x86_64\",\"-machine\","
    "\"pc-i440fx-7.2,memory-backend=ram0\",\"-object\","
    "\"memory-backend-memfd,id=ram0,size=65536,share=on\",\"-incoming\",\"defer\"],"
    "\"backends\":[{\"id\":\"ram0\",\"type\":\"memory-backend-memfd\",\"size\":65536,"
    "\"addr\":\"0x7f0000000000\",\"share\":true}],"
    "\"devstate\":{\"size\":5000,\"crc32c\":%u}},"
    "\"vmas\":[{\"start\":\"0x7f0000000000\",\"end\":\"0x7f0000010000\",\"prot\":\"rw-s\","
    "\"path\":\"/memfd:memory-backend-memfd (deleted)\",\"kind\":\"shm\",\"content\":\"tracked\"}]}";

static int mk_guest_frames(struct img_writer *w)
{
	char meta[sizeof(mk_guest_meta) + 16];
	uint8_t state[5000];
	int r;

	mk_fill(0, state, sizeof(state));
	snprintf(meta, sizeof(meta), mk_guest_meta, img_crc32c(0, state, sizeof(state)));
	r = img_writer_begin(w, meta, strlen(meta));
	if (r >= 0)
		r = img_writer_devstate(w, state, sizeof(state));
	if (r >= 0)
		r = mk_data(w, 0x7f0000000000, 4);
	if (r >= 0)
		r = img_writer_zero(w, 0x7f0000004000, 12);
	return r;
}

static const char mk_start_meta[] =
    "{\"format\":\"uffsnap\",\"version\":1,\"target\":{\"pid\":4242,\"comm\":\"testprog\"},"
    "\"time\":{\"iso8601\":\"2026-11-18T09:46:39.000000000Z\"}}";

/* Round 0 of the pre-copy image: 10 pages of stale bytes. */
static int mk_stale(struct img_writer *w)
{
	uint8_t *buf = malloc(10 * MK_PAGE);
	int r;

	if (!buf)
		return -ENOMEM;
	mk_fill(0x10000, buf, 10 * MK_PAGE);
	for (size_t i = 0; i < 10 * MK_PAGE; i++)
		buf[i] ^= 0x55;
	r = img_writer_pages(w, 0x10000, 10, buf);
	free(buf);
	return r;
}

/* The pre-copy image's frames; without its instant (cut) the rounds stop before the META. */
static int mk_precopy_frames(struct img_writer *w, bool cut)
{
	int r = img_writer_begin(w, mk_start_meta, strlen(mk_start_meta));

	if (r >= 0)
		r = mk_stale(w);
	if (r >= 0)
		r = mk_data(w, 0x10000, 4);
	if (r >= 0)
		r = img_writer_zero(w, 0x14000, 2);
	if (r >= 0)
		r = mk_data(w, 0x16000, 2);
	if (r >= 0)
		r = img_writer_unmapped(w, 0x18000, 2);
	if (r >= 0 && !cut)
		r = img_writer_meta(w, mk_meta, strlen(mk_meta));
	if (r >= 0)
		r = mk_data(w, 0x21000, 1);
	if (r >= 0)
		r = mk_data(w, 0x7ffff7ff0000, 3);
	if (r >= 0)
		r = img_writer_discarded(w, 0x20000, 1);
	return r;
}

/* mk_meta at another instant (iso replaces its time), naming parent (a path) if not NULL. */
static char *mk_chain_meta(const char *iso, const char *parent)
{
	static const char at[] = "2026-11-18T09:46:40.123456789Z";
	char member[200 + PATH_MAX] = "", hex[2 * IMG_DIGEST_SIZE + 1], *out = NULL;
	const char *t = strstr(mk_meta, at);
	uint8_t d[IMG_DIGEST_SIZE];
	struct img_reader *r = NULL;
	int fd = parent ? open(parent, O_RDONLY | O_CLOEXEC) : -1;

	if (parent && (fd < 0 || img_reader_open(fd, &r, NULL) < 0 || img_reader_digest(r, d) < 0))
		goto out;
	for (int i = 0; parent && i < IMG_DIGEST_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	if (parent) /* the time is the parent's: what mk_chain() gave it */
		snprintf(member, sizeof(member),
			 ",\"parent\":{\"digest\":\"%s\",\"time\":\"%s\",\"file\":\"%s\"}", hex,
			 strstr(parent, "base") ? "2026-11-18T09:40:00Z" : "2026-11-18T09:43:00Z",
			 strrchr(parent, '/') ? strrchr(parent, '/') + 1 : parent);
	if (asprintf(&out, "%.*s%s%.*s%s}", (int)(t - mk_meta), mk_meta, iso,
		     (int)(strlen(t + strlen(at)) - 1), t + strlen(at), member) < 0)
		out = NULL;
out:
	img_reader_free(r);
	if (fd >= 0)
		close(fd);
	return out;
}

/* Writes path: flags, META meta, then the frames fn writes; finished unless cut. */
static int mk_file(const char *path, uint32_t flags, const char *meta,
		   int (*fn)(struct img_writer *w, const char *meta), bool cut)
{
	struct img_writer_opts opts = {.page_size = MK_PAGE, .flags = flags};
	struct img_writer *w = NULL;
	struct img_sink *sink = NULL;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), r;

	if (fd < 0 || !meta)
		return fd < 0 ? -errno : -ENOMEM;
	r = img_sink_fd_new(fd, &sink);
	if (r >= 0)
		r = img_writer_new(&opts, sink, &w);
	if (r >= 0)
		r = img_writer_begin(w, meta, strlen(meta));
	if (r >= 0)
		r = fn(w, meta);
	if (r >= 0 && !cut)
		r = img_writer_finish(w);
	img_writer_free(w);
	img_sink_free(sink);
	close(fd);
	return r;
}

static int mk_base(struct img_writer *w, const char *meta)
{
	int r = mk_stale(w);

	if (r >= 0)
		r = mk_data(w, 0x21000, 1);
	return r >= 0 ? img_writer_zero(w, 0x7ffff7ff0000, 3) : r;
}

static int mk_mid(struct img_writer *w, const char *meta)
{
	int r = mk_data(w, 0x10000, 4);

	if (r >= 0)
		r = img_writer_zero(w, 0x14000, 2);
	return r >= 0 ? mk_data(w, 0x7ffff7ff0000, 3) : r;
}

static int mk_top(struct img_writer *w, const char *meta)
{
	int r = mk_stale(w); /* 10 stale pages from 0x10000, most rewritten below */

	if (r >= 0)
		r = mk_mid(w, meta); /* the same as the parent's, saved again: harmless */
	if (r >= 0)
		r = img_writer_unmapped(w, 0x18000, 2);
	if (r >= 0)
		r = img_writer_discarded(w, 0x20000, 1);
	if (r >= 0)
		r = img_writer_meta(w, meta, strlen(meta));
	if (r >= 0)
		r = mk_data(w, 0x16000, 2);
	return r;
}

static int mk_cut(struct img_writer *w, const char *meta)
{
	return mk_data(w, 0x21000, 1);
}

/* The chain in dir (see the top of this file). */
static int mk_chain(const char *dir)
{
	static const struct {
		const char *name, *parent, *iso;
		uint32_t flags;
		int (*fn)(struct img_writer *w, const char *meta);
	} links[] = {
	    {"base.img", NULL, "2026-11-18T09:40:00Z", 0, mk_base},
	    {"mid.img", "base.img", "2026-11-18T09:43:00Z", IMG_HEADER_F_INCREMENTAL, mk_mid},
	    {"top.img", "mid.img", "2026-11-18T09:46:40.123456789Z",
	     IMG_HEADER_F_INCREMENTAL | IMG_HEADER_F_REWRITES, mk_top},
	    {"cut.img", "mid.img", "2026-11-18T09:50:00Z", IMG_HEADER_F_INCREMENTAL, mk_cut},
	};
	int r = 0;

	for (size_t i = 0; r >= 0 && i < sizeof(links) / sizeof(links[0]); i++) {
		char path[4096], parent[4096], *meta;

		snprintf(path, sizeof(path), "%s/%s", dir, links[i].name);
		snprintf(parent, sizeof(parent), "%s/%s", dir,
			 links[i].parent ? links[i].parent : "");
		meta = mk_chain_meta(links[i].iso, links[i].parent ? parent : NULL);
		r = mk_file(path, links[i].flags, meta, links[i].fn, i == 3);
		free(meta);
		if (r < 0)
			fprintf(stderr, "mkimage: writing %s: %s\n", path, strerror(-r));
	}
	return r < 0;
}

/*
 * finish: 0 leaves the image without index and trailer, 1 finishes it, 2 a finished guest's,
 * 3 a finished pre-copy image, 4 a pre-copy image cut before its instant.
 */
static int mk_image(const char *path, int finish)
{
	struct img_writer_opts opts = {.page_size = MK_PAGE,
				       .flags = finish >= 3 ? IMG_HEADER_F_REWRITES : 0};
	struct img_writer *w = NULL;
	struct img_sink *sink = NULL;
	int fd, r;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "mkimage: %s: %s\n", path, strerror(errno));
		return 1;
	}
	r = img_sink_fd_new(fd, &sink);
	if (r >= 0)
		r = img_writer_new(&opts, sink, &w);
	if (r >= 0)
		r = finish == 2	  ? mk_guest_frames(w)
		    : finish >= 3 ? mk_precopy_frames(w, finish == 4)
				  : mk_frames(w);
	if (r >= 0 && finish && finish != 4)
		r = img_writer_finish(w);
	img_writer_free(w);
	img_sink_free(sink);
	close(fd);
	if (r < 0)
		fprintf(stderr, "mkimage: writing %s: %s\n", path, strerror(-r));
	return r < 0;
}

static int mk_expect(const char *addr_s, const char *len_s)
{
	uint64_t addr = strtoull(addr_s, NULL, 0), len = strtoull(len_s, NULL, 0);

	for (uint64_t i = 0; i < len; i++) {
		uint64_t a = addr + i;

		putchar(a >= 0x14000 && a < 0x16000 ? 0 : mk_byte(a));
	}
	return fflush(stdout) != 0;
}

static int mk_offset(const char *path, const char *addr_s)
{
	uint64_t addr = strtoull(addr_s, NULL, 0);
	const struct img_index_entry *e;
	struct img_reader *r = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 1;
	size_t n;

	if (fd < 0 || img_reader_open(fd, &r, NULL) < 0) {
		fprintf(stderr, "mkimage: cannot open %s as an image\n", path);
		goto out;
	}
	n = img_reader_index(r, &e);
	for (size_t i = 0; i < n; i++)
		if (addr >= e[i].addr && addr - e[i].addr < e[i].npages * MK_PAGE) {
			printf("%llu\n", (unsigned long long)e[i].offset);
			ret = 0;
		}
out:
	img_reader_free(r);
	if (fd >= 0)
		close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "image"))
		return mk_image(argv[2], 1);
	if (argc == 3 && !strcmp(argv[1], "partial"))
		return mk_image(argv[2], 0);
	if (argc == 3 && !strcmp(argv[1], "guest"))
		return mk_image(argv[2], 2);
	if (argc == 3 && !strcmp(argv[1], "precopy"))
		return mk_image(argv[2], 3);
	if (argc == 3 && !strcmp(argv[1], "precopy-cut"))
		return mk_image(argv[2], 4);
	if (argc == 3 && !strcmp(argv[1], "chain"))
		return mk_chain(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "expect"))
		return mk_expect(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "offset"))
		return mk_offset(argv[2], argv[3]);
	fprintf(stderr, "usage: mkimage image|partial|guest|precopy|precopy-cut OUT | chain DIR | "
			"expect ADDR LEN | offset IMG ADDR\n");
	return 2;
}
