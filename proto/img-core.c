/* SPDX-License-Identifier: MIT */
/*
 * An image as an ELF core file (FORMAT.md "ELF core files"): the ELF header, a PT_NOTE, then a
 * PT_LOAD per memory mapping, in address order, as the kernel's elf_core_dump() lays them out.
 *
 * A mapping's content is in the core when the image holds it ("tracked" or "copied"); otherwise
 * the PT_LOAD has no file bytes, which is what the kernel's default coredump_filter (0x33) does
 * for read-only private file mappings, shared file mappings and the like (fs/coredump.c
 * vma_dump_size()): gdb reads those from the files NT_FILE names. The kernel keeps the first
 * page of an ELF file mapping for its build ID; the image does not hold it, and gdb 13 finds
 * the files by name. Where the image lacks pages of a saved mapping (an incomplete image,
 * pages discarded after the instant) the mapping is split, and the part without bytes is a
 * PT_LOAD without file bytes too: gdb then says it cannot access that memory, rather than
 * showing zeros that were never there.
 */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-core-int.h"
#include "img-endian.h"
#include "img-internal.h"
#include "uffsnap/chain.h"

#define EHDR_SIZE  64
#define PHDR_SIZE  56
#define MAX_PHDRS  (PN_XNUM - 1) /* past it, e_phnum needs extended numbering */
#define COPY_CHUNK (1u << 20)

struct core_seg {
	uint64_t vaddr, memsz, filesz, offset;
	uint32_t pflags;
};

struct core_out {
	int fd;
	bool seekable; /* a regular file: zero runs become holes */
	uint64_t pos;  /* bytes of the core so far */
};

/* Where the memory comes from: one image (a reader), or a chain of them. */
typedef int (*core_read_fn)(void *src, uint64_t addr, void *buf, size_t len, struct img_error *err);

struct core_ctx {
	core_read_fn read;
	void *src;
	const struct img_index_entry *idx;
	size_t nidx;
	uint32_t ps;
	struct core_model m;
	struct core_seg *segs;
	size_t nsegs, cap;
	struct img_core_report *rep;
};

/* End of an index entry; the reader has checked that it does not wrap. */
static uint64_t ext_end(const struct img_index_entry *e, uint32_t ps)
{
	return e->addr + e->npages * ps;
}

/* The first index entry that ends after addr (entries are sorted and disjoint). */
static size_t idx_first(const struct core_ctx *c, uint64_t addr)
{
	size_t lo = 0, hi = c->nidx;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ext_end(&c->idx[mid], c->ps) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Appends [start, end) as a segment, or extends the last one when merge allows (same mapping). */
static int seg_add(struct core_ctx *c, uint64_t start, uint64_t end, bool bytes, bool merge,
		   uint32_t pflags)
{
	struct core_seg *s = c->nsegs ? &c->segs[c->nsegs - 1] : NULL;

	if (merge && s && !s->filesz == !bytes && s->vaddr + s->memsz == start) {
		s->memsz += end - start;
		s->filesz += bytes ? end - start : 0;
		return 0;
	}
	if (c->nsegs == MAX_PHDRS - 1)
		return -EFBIG;
	if (c->nsegs == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;

		s = realloc(c->segs, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		c->segs = s;
		c->cap = cap;
	}
	c->segs[c->nsegs++] = (struct core_seg){
	    .vaddr = start, .memsz = end - start, .filesz = bytes ? end - start : 0,
	    .pflags = pflags};
	return 0;
}

/* A piece of a saved mapping the image lacks: counted, and a segment without bytes. */
static int seg_absent(struct core_ctx *c, uint64_t start, uint64_t end, bool discarded,
		      const struct core_vma *v)
{
	uint64_t pages = (end - start) / c->ps;

	c->rep->pages_missing += pages;
	c->rep->missing |= IMG_CORE_PAGES_MISSING;
	if (discarded) {
		c->rep->pages_discarded += pages;
		c->rep->missing |= IMG_CORE_PAGES_DISCARDED;
	}
	return seg_add(c, start, end, false, start > v->start, v->pflags);
}

static int vma_segments(struct core_ctx *c, const struct core_vma *v)
{
	uint64_t cur = v->start;
	int k = 0;

	if (!v->saved)
		return seg_add(c, v->start, v->end, false, false, v->pflags);
	for (size_t i = idx_first(c, v->start); k >= 0 && i < c->nidx && c->idx[i].addr < v->end;
	     i++) {
		const struct img_index_entry *e = &c->idx[i];
		uint64_t a = e->addr > v->start ? e->addr : v->start;
		uint64_t b = ext_end(e, c->ps) < v->end ? ext_end(e, c->ps) : v->end;

		if (a > cur)
			k = seg_absent(c, cur, a, false, v);
		if (k >= 0 && e->type == IMG_FRAME_DISCARDED)
			k = seg_absent(c, a, b, true, v);
		else if (k >= 0 && e->type == IMG_FRAME_UNMAPPED) /* 1.2: gone at the instant */
			k = seg_absent(c, a, b, false, v);
		else if (k >= 0)
			k = seg_add(c, a, b, true, a > v->start, v->pflags);
		cur = b;
	}
	if (k >= 0 && cur < v->end)
		k = seg_absent(c, cur, v->end, false, v);
	return k;
}

static int out_write(struct core_out *o, const void *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = write(o->fd, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
		o->pos += (size_t)n;
	}
	return 0;
}

/* len zero bytes: a hole in a regular file (fs/coredump.c dump_skip() does the same). */
static int out_skip(struct core_out *o, uint64_t len)
{
	static const uint8_t zeros[65536];

	if (o->seekable) {
		if (lseek(o->fd, (off_t)len, SEEK_CUR) < 0)
			return -errno;
		o->pos += len;
		return 0;
	}
	while (len) {
		size_t n = len < sizeof(zeros) ? len : sizeof(zeros);
		int k = out_write(o, zeros, n);

		if (k < 0)
			return k;
		len -= n;
	}
	return 0;
}

static void put_phdr(uint8_t *p, uint32_t type, uint32_t flags, uint64_t off, uint64_t vaddr,
		     uint64_t filesz, uint64_t memsz, uint64_t align)
{
	put_le32(p, type);
	put_le32(p + 4, flags);
	put_le64(p + 8, off);
	put_le64(p + 16, vaddr);
	put_le64(p + 24, 0); /* p_paddr */
	put_le64(p + 32, filesz);
	put_le64(p + 40, memsz);
	put_le64(p + 48, align);
}

static void put_ehdr(uint8_t *p, uint16_t phnum)
{
	static const uint8_t ident[EI_NIDENT] = {ELFMAG0, ELFMAG1,    ELFMAG2,	  ELFMAG3,
						 ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_NONE};

	memset(p, 0, EHDR_SIZE);
	memcpy(p, ident, sizeof(ident));
	put_le16(p + 16, ET_CORE);
	put_le16(p + 18, EM_X86_64);
	put_le32(p + 20, EV_CURRENT);
	put_le64(p + 32, EHDR_SIZE); /* e_phoff */
	put_le16(p + 52, EHDR_SIZE);
	put_le16(p + 54, PHDR_SIZE);
	put_le16(p + 56, phnum);
}

/* ELF header, program headers and notes; assigns every segment its file offset. */
static int write_headers(struct core_ctx *c, struct core_out *o, const uint8_t *notes,
			 size_t notes_len)
{
	size_t phnum = c->nsegs + 1, hlen = EHDR_SIZE + PHDR_SIZE * phnum;
	uint64_t off = (hlen + notes_len + c->ps - 1) / c->ps * c->ps;
	uint8_t *h = malloc(hlen);
	int k;

	if (!h)
		return -ENOMEM;
	put_ehdr(h, (uint16_t)phnum);
	put_phdr(h + EHDR_SIZE, PT_NOTE, 0, hlen, 0, notes_len, 0, 4);
	for (size_t i = 0; i < c->nsegs; i++) {
		struct core_seg *s = &c->segs[i];

		s->offset = off;
		off += s->filesz;
		put_phdr(h + EHDR_SIZE + PHDR_SIZE * (i + 1), PT_LOAD, s->pflags, s->offset,
			 s->vaddr, s->filesz, s->memsz, c->ps);
	}
	k = out_write(o, h, hlen);
	free(h);
	if (k >= 0)
		k = out_write(o, notes, notes_len);
	if (k >= 0)
		k = out_skip(o, (hlen + notes_len + c->ps - 1) / c->ps * c->ps - o->pos);
	return k;
}

/* A segment's bytes: page frames copied, zero extents skipped. */
static int write_segment(struct core_ctx *c, struct core_out *o, const struct core_seg *s,
			 uint8_t *buf, struct img_error *err)
{
	uint64_t end = s->vaddr + s->filesz;
	int k = 0;

	for (size_t i = idx_first(c, s->vaddr); k >= 0 && i < c->nidx && c->idx[i].addr < end;
	     i++) {
		const struct img_index_entry *e = &c->idx[i];
		uint64_t a = e->addr > s->vaddr ? e->addr : s->vaddr;
		uint64_t b = ext_end(e, c->ps) < end ? ext_end(e, c->ps) : end;

		if (e->type == IMG_FRAME_ZERO) {
			k = out_skip(o, b - a);
			continue;
		}
		for (; k >= 0 && a < b; a += COPY_CHUNK < b - a ? COPY_CHUNK : b - a) {
			size_t n = COPY_CHUNK < b - a ? COPY_CHUNK : b - a;

			k = c->read(c->src, a, buf, n, err);
			if (k >= 0)
				k = out_write(o, buf, n);
		}
	}
	return k;
}

static int write_core(struct core_ctx *c, int fd, struct img_error *err)
{
	struct core_out o = {.fd = fd};
	uint8_t *notes = NULL, *buf = NULL;
	size_t notes_len = 0;
	struct stat st;
	int k = core_notes_build(&c->m, &notes, &notes_len);

	o.seekable = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && lseek(fd, 0, SEEK_CUR) == 0;
	if (k >= 0)
		k = write_headers(c, &o, notes, notes_len);
	if (k >= 0 && !(buf = malloc(COPY_CHUNK)))
		k = -ENOMEM;
	for (size_t i = 0; k >= 0 && i < c->nsegs; i++) {
		if (c->segs[i].filesz)
			k = write_segment(c, &o, &c->segs[i], buf, err);
		c->rep->data_bytes += c->segs[i].filesz;
	}
	if (k >= 0 && o.seekable && ftruncate(fd, (off_t)o.pos) < 0) /* a hole at the end */
		k = -errno;
	c->rep->size = o.pos;
	free(buf);
	free(notes);
	return k;
}

/* The core of c's source (read, idx, ps set), whose metadata is meta. */
static int core_run(struct core_ctx *c, const char *meta, bool complete, int fd,
		    struct img_core_report *ret, struct img_error *err)
{
	struct img_core_report rep = {0};
	int k = core_model_load(meta, c->ps, &c->m, err);

	c->rep = &rep;
	for (size_t i = 0; k >= 0 && i < c->m.nvmas; i++)
		k = vma_segments(c, &c->m.vmas[i]);
	if (k == -EFBIG)
		k = img_fail(err, 0, -EFBIG, "the core would need more than %d program headers",
			     MAX_PHDRS);
	if (k >= 0)
		k = write_core(c, fd, err);
	rep.missing |= c->m.missing | (complete ? 0 : IMG_CORE_INCOMPLETE);
	rep.threads = (uint32_t)c->m.nthreads;
	rep.segments = c->nsegs;
	core_model_free(&c->m);
	free(c->segs);
	if (ret)
		*ret = rep;
	return k;
}

static int reader_read(void *src, uint64_t addr, void *buf, size_t len, struct img_error *err)
{
	return img_reader_read(src, addr, buf, len, err);
}

int img_core_write(struct img_reader *r, int fd, struct img_core_report *ret, struct img_error *err)
{
	struct core_ctx c = {.read = reader_read, .src = r, .ps = img_reader_page_size(r)};

	c.nidx = img_reader_index(r, &c.idx);
	return core_run(&c, img_reader_meta(r), img_reader_complete(r), fd, ret, err);
}

static int chain_read(void *src, uint64_t addr, void *buf, size_t len, struct img_error *err)
{
	return img_chain_read(src, addr, buf, len, err);
}

int img_core_write_chain(struct img_chain *ch, int fd, struct img_core_report *ret,
			 struct img_error *err)
{
	struct core_ctx c = {.read = chain_read, .src = ch, .ps = img_chain_page_size(ch)};
	const struct img_chain_extent *e;
	struct img_index_entry *idx;
	size_t n = img_chain_extents(ch, &e);
	int k;

	/* The chain's extents as an index: where in the chain they are is the reader's business. */
	idx = malloc((n ? n : 1) * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		idx[i] = (struct img_index_entry){e[i].addr, e[i].npages, 0, e[i].type};
	c.idx = idx;
	c.nidx = n;
	k = core_run(&c, img_chain_meta(ch), img_chain_link(ch, 0)->complete, fd, ret, err);
	free(idx);
	return k;
}

const char *img_core_missing_name(uint32_t bit)
{
	switch (bit) {
	case IMG_CORE_NO_THREADS:
		return "the threads' registers (no NT_PRSTATUS)";
	case IMG_CORE_NO_FPSTATE:
		return "floating-point state of some threads (no NT_FPREGSET for them)";
	case IMG_CORE_NO_AUXV:
		return "the auxiliary vector (no NT_AUXV)";
	case IMG_CORE_NO_SIGNALS:
		return "the threads' pending and blocked signals";
	case IMG_CORE_NO_PROCESS:
		return "the parent, session, ids and command line (NT_PRPSINFO has only pid and name)";
	case IMG_CORE_RESUME_REGS:
		return "where threads in interrupted system calls stopped (their resume registers)";
	case IMG_CORE_PAGES_MISSING:
		return "pages of saved mappings (unreadable in the core)";
	case IMG_CORE_PAGES_DISCARDED:
		return "pages discarded after the snapshot instant";
	case IMG_CORE_INCOMPLETE:
		return "the end of the image (it is incomplete)";
	}
	return "something";
}
