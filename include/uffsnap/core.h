/* SPDX-License-Identifier: MIT */
/*
 * libuffsnap: ELF core files from images (proto/FORMAT.md "ELF core files"). Pure format code:
 * an open image in, the bytes of a core file such as the kernel writes out. It never logs;
 * what the image lacks is reported in struct img_core_report for the program to say.
 */
#pragma once

#include <stdint.h>

#include "uffsnap/chain.h"
#include "uffsnap/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the core lacks because the image does not have it (img_core_report.missing). */
enum img_core_missing {
	IMG_CORE_NO_THREADS = 1u << 0,	   /* no thread registers: no NT_PRSTATUS at all */
	IMG_CORE_NO_FPSTATE = 1u << 1,	   /* a thread without FP state: no NT_FPREGSET for it */
	IMG_CORE_NO_AUXV = 1u << 2,	   /* no NT_AUXV (gdb cannot find the vdso by it) */
	IMG_CORE_NO_SIGNALS = 1u << 3,	   /* pending and blocked signals read as none */
	IMG_CORE_NO_PROCESS = 1u << 4,	   /* parent, group, session, ids, arguments read as 0 */
	IMG_CORE_RESUME_REGS = 1u << 5,	   /* threads in interrupted syscalls: resume registers */
	IMG_CORE_PAGES_MISSING = 1u << 6,  /* pages of saved mappings are not in the image */
	IMG_CORE_PAGES_DISCARDED = 1u << 7, /* pages discarded after the instant, before saved */
	IMG_CORE_INCOMPLETE = 1u << 8,	   /* the image has no trailer (the writer stopped) */
};
#define IMG_CORE_MISSING_ALL 0x1ffu

struct img_core_report {
	uint32_t missing;	  /* enum img_core_missing bits */
	uint32_t threads;	  /* NT_PRSTATUS notes written */
	uint64_t segments;	  /* PT_LOAD program headers */
	uint64_t data_bytes;	  /* bytes of memory content (holes included) */
	uint64_t pages_missing;	  /* pages of saved mappings the image lacks */
	uint64_t pages_discarded; /* of which discarded after the instant */
	uint64_t size;		  /* bytes of the core file */
};

/* A short phrase for one missing bit, e.g. "the auxiliary vector (NT_AUXV)". */
const char *img_core_missing_name(uint32_t bit);

/*
 * Writes the core file of the image r to fd, from its current position: a regular file (zero
 * pages become holes) or a pipe. -EPROTONOSUPPORT for an image that is not of an x86-64 process
 * (err says what it is), -EBADMSG for metadata that does not describe a process, -EFBIG when
 * the core would need more than 65534 program headers; -errno from reading or writing.
 */
int img_core_write(struct img_reader *r, int fd, struct img_core_report *ret,
		   struct img_error *err);
/* The same for a chain (uffsnap/chain.h): the memory of its instant, the top's metadata. */
int img_core_write_chain(struct img_chain *c, int fd, struct img_core_report *ret,
			 struct img_error *err);

#ifdef __cplusplus
}
#endif
