/* SPDX-License-Identifier: MIT */
/*
 * The notes of an x86-64 ELF core, laid out as the kernel writes them (fs/binfmt_elf.c
 * write_note_info): the first thread's NT_PRSTATUS, then the process notes (NT_PRPSINFO,
 * NT_AUXV, NT_FILE), then that thread's NT_FPREGSET and NT_X86_XSTATE; then each other thread's
 * NT_PRSTATUS followed by its own register notes. The order matters: bfd files a register note
 * under the thread of the NT_PRSTATUS before it (elfcore_make_note_pseudosection, core->lwpid).
 *
 * No NT_SIGINFO: the kernel writes the signal that killed the process and gdb's gcore the stop
 * signal of its ptrace stop; a snapshot instant is neither, and a made-up siginfo would be read
 * as a signal the program received.
 */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "img-core-int.h"
#include "img-endian.h"

/* struct elf_prstatus on x86-64 (include/linux/elfcore.h): offsets of the fields we fill. */
#define PRSTATUS_SIZE	 336
#define PRSTATUS_SIGPEND 16
#define PRSTATUS_SIGHOLD 24
#define PRSTATUS_PID	 32 /* then ppid, pgrp, sid: four 32-bit words */
#define PRSTATUS_REGS	 112
#define PRSTATUS_FPVALID 328

/* struct elf_prpsinfo on x86-64. */
#define PRPSINFO_SIZE	136
#define PRPSINFO_SNAME	1
#define PRPSINFO_NICE	3
#define PRPSINFO_UID	16 /* then gid */
#define PRPSINFO_PID	24 /* then ppid, pgrp, sid */
#define PRPSINFO_FNAME	40
#define PRPSINFO_PSARGS 56

#define NOTE_HEADER 12
#define NOTE_ALIGN(n) (((n) + 3) & ~(size_t)3)

struct notebuf {
	uint8_t *p;
	size_t len, cap;
	int err; /* why note_add() last returned NULL */
};

/* Appends a note and returns its zeroed descriptor, or NULL with nb->err set. */
static uint8_t *note_add(struct notebuf *nb, const char *name, uint32_t type, size_t desclen)
{
	size_t namesz = strlen(name) + 1;
	size_t need = NOTE_HEADER + NOTE_ALIGN(namesz) + NOTE_ALIGN(desclen);
	uint8_t *h;

	if (desclen > CORE_MAX_NOTES || nb->len + need > CORE_MAX_NOTES)
		return nb->err = -EFBIG, NULL;
	if (nb->len + need > nb->cap) {
		size_t cap = nb->cap ? nb->cap : 4096;
		uint8_t *p;

		while (cap < nb->len + need)
			cap *= 2;
		p = realloc(nb->p, cap);
		if (!p)
			return nb->err = -ENOMEM, NULL;
		nb->p = p;
		nb->cap = cap;
	}
	h = nb->p + nb->len;
	memset(h, 0, need);
	put_le32(h, (uint32_t)namesz);
	put_le32(h + 4, (uint32_t)desclen);
	put_le32(h + 8, type);
	memcpy(h + NOTE_HEADER, name, namesz);
	nb->len += need;
	return h + NOTE_HEADER + NOTE_ALIGN(namesz);
}

static void put_ids(uint8_t *d, int32_t pid, const struct core_proc *p)
{
	put_le32(d, (uint32_t)pid);
	put_le32(d + 4, (uint32_t)p->ppid);
	put_le32(d + 8, (uint32_t)p->pgrp);
	put_le32(d + 12, (uint32_t)p->sid);
}

static int note_prstatus(struct notebuf *nb, const struct core_model *m,
			 const struct core_thread *t)
{
	uint8_t *d = note_add(nb, "CORE", NT_PRSTATUS, PRSTATUS_SIZE);

	if (!d)
		return nb->err;
	/* pr_info and pr_cursig stay zero: no signal is being delivered at the instant. */
	put_le64(d + PRSTATUS_SIGPEND, t->sigpend);
	put_le64(d + PRSTATUS_SIGHOLD, t->sighold);
	put_ids(d + PRSTATUS_PID, t->tid, &m->proc);
	for (int i = 0; i < CORE_NREGS; i++)
		put_le64(d + PRSTATUS_REGS + 8 * i, t->regs[i]);
	put_le32(d + PRSTATUS_FPVALID, t->fp != NULL);
	return 0;
}

static int note_prpsinfo(struct notebuf *nb, const struct core_proc *p)
{
	uint8_t *d = note_add(nb, "CORE", NT_PRPSINFO, PRPSINFO_SIZE);

	if (!d)
		return nb->err;
	/* pr_state 0 is "R": the threads ran until the instant (the kernel's fill_psinfo). */
	d[PRPSINFO_SNAME] = 'R';
	d[PRPSINFO_NICE] = (uint8_t)(int8_t)p->nice;
	put_le32(d + PRPSINFO_UID, p->uid);
	put_le32(d + PRPSINFO_UID + 4, p->gid);
	put_ids(d + PRPSINFO_PID, p->pid, p);
	memcpy(d + PRPSINFO_FNAME, p->fname, strnlen(p->fname, 15));
	memcpy(d + PRPSINFO_PSARGS, p->psargs, strnlen(p->psargs, 79));
	return 0;
}

static int note_auxv(struct notebuf *nb, const struct core_proc *p)
{
	uint8_t *d;

	if (!p->auxv)
		return 0;
	d = note_add(nb, "CORE", NT_AUXV, p->auxv_pairs * 16);
	if (!d)
		return nb->err;
	for (size_t i = 0; i < 2 * p->auxv_pairs; i++)
		put_le64(d + 8 * i, p->auxv[i]);
	return 0;
}

/* NT_FILE (fs/binfmt_elf.c fill_files_note): count, page size, {start, end, pgoff}[], names. */
static int note_file(struct notebuf *nb, const struct core_model *m)
{
	size_t count = 0, names = 0, off;
	uint8_t *d;

	for (size_t i = 0; i < m->nvmas; i++)
		if (m->vmas[i].path)
			count++, names += strlen(m->vmas[i].path) + 1;
	if (!count)
		return 0;
	d = note_add(nb, "CORE", NT_FILE, 16 + 24 * count + names);
	if (!d)
		return nb->err;
	put_le64(d, count);
	put_le64(d + 8, m->page_size);
	off = 16 + 24 * count;
	for (size_t i = 0, k = 0; i < m->nvmas; i++) {
		const struct core_vma *v = &m->vmas[i];

		if (!v->path)
			continue;
		put_le64(d + 16 + 24 * k, v->start);
		put_le64(d + 24 + 24 * k, v->end);
		put_le64(d + 32 + 24 * k, v->offset / m->page_size);
		k++;
		memcpy(d + off, v->path, strlen(v->path) + 1);
		off += strlen(v->path) + 1;
	}
	return 0;
}

static int notes_fp(struct notebuf *nb, const struct core_model *m, const struct core_thread *t)
{
	uint8_t *d, *x;
	size_t xlen;
	int k;

	if (!t->fp)
		return 0;
	/* The FXSAVE image is the first 512 bytes of an XSAVE area too. */
	d = note_add(nb, "CORE", NT_FPREGSET, CORE_FXSAVE_LEN);
	if (!d)
		return nb->err;
	memcpy(d, t->fp, CORE_FXSAVE_LEN);
	if (!t->xsave)
		return 0;
	k = core_xstate_note(&m->xlayout, t->fp, t->fplen, &x, &xlen);
	if (k < 0)
		return k;
	d = note_add(nb, "LINUX", NT_X86_XSTATE, xlen);
	if (d)
		memcpy(d, x, xlen);
	free(x);
	return d ? 0 : nb->err;
}

static int notes_fill(struct notebuf *nb, const struct core_model *m)
{
	int k = 0;

	for (size_t i = 0; k >= 0 && i < m->nthreads; i++) {
		k = note_prstatus(nb, m, &m->threads[i]);
		if (k >= 0 && i == 0)
			k = note_prpsinfo(nb, &m->proc);
		if (k >= 0 && i == 0)
			k = note_auxv(nb, &m->proc);
		if (k >= 0 && i == 0)
			k = note_file(nb, m);
		if (k >= 0)
			k = notes_fp(nb, m, &m->threads[i]);
	}
	if (k >= 0 && !m->nthreads) { /* no thread: the process notes still say what it was */
		k = note_prpsinfo(nb, &m->proc);
		if (k >= 0)
			k = note_auxv(nb, &m->proc);
		if (k >= 0)
			k = note_file(nb, m);
	}
	return k;
}

int core_notes_build(const struct core_model *m, uint8_t **ret, size_t *ret_len)
{
	struct notebuf nb = {0};
	int k = notes_fill(&nb, m);

	if (k < 0) {
		free(nb.p);
		return k;
	}
	*ret = nb.p;
	*ret_len = nb.len;
	return 0;
}
