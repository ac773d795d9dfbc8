/* SPDX-License-Identifier: MIT */
/* The ELF core writer's internals: the process as the metadata describes it, and its notes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "uffsnap/core.h"

/* x86-64 elf_gregset_t: the 27 words of struct user_regs_struct, in its order. */
#define CORE_NREGS 27
/* The legacy FXSAVE image (NT_FPREGSET); an XSAVE area starts with one. */
#define CORE_FXSAVE_LEN 512
/* Bounds on what metadata may claim, so a crafted image cannot make us allocate without end. */
#define CORE_MAX_THREADS (1u << 20)
#define CORE_MAX_VMAS	 (1u << 20)
#define CORE_MAX_FPSTATE (256u << 10)
#define CORE_MAX_AUXV	 1024 /* pairs; the kernel keeps fewer than 64 (AT_VECTOR_SIZE) */
#define CORE_MAX_NOTES	 (256u << 20)

struct core_vma {
	uint64_t start, end;
	uint64_t offset;  /* file offset in bytes */
	uint32_t pflags;  /* PF_R | PF_W | PF_X */
	bool saved;	  /* content "tracked" or "copied": the image holds its pages */
	const char *path; /* a file's path (into the metadata), for NT_FILE; else NULL */
};

struct core_thread {
	int32_t tid;
	uint64_t regs[CORE_NREGS];
	uint8_t *fp; /* the XSAVE area (xsave) or the FXSAVE image; NULL if not recorded */
	size_t fplen;
	bool xsave;
	uint64_t sigpend, sighold;
};

struct core_proc {
	int32_t pid, ppid, pgrp, sid;
	uint32_t uid, gid;
	int32_t nice;
	char fname[16];	 /* comm, NUL-ended */
	char psargs[80]; /* the command line, NUL-ended, as the kernel truncates it */
	uint64_t *auxv;	 /* type, value pairs; NULL if not recorded */
	size_t auxv_pairs;
};

/* Where the CPU that took the snapshot puts each XSAVE component (CPUID leaf 0xd). */
#define CORE_XSTATE_COMPONENTS 64
struct core_xlayout {
	bool known;
	uint32_t offset[CORE_XSTATE_COMPONENTS], size[CORE_XSTATE_COMPONENTS];
};

struct core_model {
	json_t *meta;
	uint32_t page_size;
	struct core_vma *vmas; /* sorted, disjoint */
	size_t nvmas;
	struct core_thread *threads; /* the main thread first */
	size_t nthreads;
	struct core_proc proc;
	struct core_xlayout xlayout;
	uint32_t missing; /* enum img_core_missing */
};

/* Parses the META text into m; -EBADMSG / -EPROTONOSUPPORT with err filled. */
int core_model_load(const char *meta, uint32_t page_size, struct core_model *m,
		    struct img_error *err);
void core_model_free(struct core_model *m);

/*
 * The NT_X86_XSTATE content for an XSAVE area: as captured, or moved into the layout gdb
 * assumes when the capturing CPU's differs (img-core-xsave.c). *ret is malloc'd.
 */
int core_xstate_note(const struct core_xlayout *l, const uint8_t *fp, size_t len, uint8_t **ret,
		     size_t *ret_len);

/* The PT_NOTE segment's content, as the kernel orders it (fs/binfmt_elf.c write_note_info). */
int core_notes_build(const struct core_model *m, uint8_t **ret, size_t *ret_len);
