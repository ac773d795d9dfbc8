/* SPDX-License-Identifier: MIT */
/*
 * The XSAVE area of an NT_X86_XSTATE note. ptrace gives it in the CPU's standard format, where
 * each component's offset is the CPU's (CPUID leaf 0xd): Intel's and AMD's differ from
 * component 5 on (AMD Zen 4 has no MPX and puts the AVX-512 state at 832, Intel at 1088).
 * gdb up to 13 assumes Intel's offsets and rejects a note of another size ("Section
 * `.reg-xstate/TID' in core file too small"); gdb 14 guesses the layout from the size, and
 * Intel's sizes mean Intel's layout to it too. So when the capturing CPU's layout differs, the
 * components are moved to Intel's offsets, which every gdb reads (gdb's own gcore writes the
 * note that way: i387_collect_xsave). Anything else is written as captured.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "img-core-int.h"
#include "img-endian.h"

/* XSAVE header: the legacy area (512 bytes), then XSTATE_BV ...; components from byte 576. */
#define XSAVE_EXT_START 576
/* sw_reserved bytes of the legacy area where Linux stores XCR0 (arch/x86 xstate_fx_sw_bytes). */
#define XSAVE_XCR0_AT 464

/* Intel's standard offsets (SDM vol. 1, 13.4.3; gdb's i387-tdep.c xsave_*_offset tables). */
static const struct {
	uint32_t comp, offset, size;
} intel[] = {
    {2, 576, 256},   /* AVX: upper halves of ymm0-15 */
    {3, 960, 64},    /* MPX bounds */
    {4, 1024, 64},   /* MPX config */
    {5, 1088, 64},   /* AVX-512 opmask */
    {6, 1152, 512},  /* AVX-512 upper halves of zmm0-15 */
    {7, 1664, 1024}, /* AVX-512 zmm16-31 */
    {9, 2688, 8},    /* PKRU */
};

static int intel_at(uint32_t comp)
{
	for (size_t i = 0; i < sizeof(intel) / sizeof(intel[0]); i++)
		if (intel[i].comp == comp)
			return (int)i;
	return -1;
}

/* Size of Intel's layout for xcr0, 0 if it has a component we have no offset for. */
static size_t intel_size(const struct core_xlayout *l, uint64_t xcr0, bool *ret_differs)
{
	size_t size = XSAVE_EXT_START;

	*ret_differs = false;
	for (uint32_t c = 2; c < CORE_XSTATE_COMPONENTS; c++) {
		int i;

		if (!(xcr0 >> c & 1))
			continue;
		i = intel_at(c);
		if (i < 0 || l->size[c] != intel[i].size)
			return *ret_differs = false, 0; /* unknown to gdb too: leave it as it is */
		*ret_differs |= l->offset[c] != intel[i].offset;
		if (intel[i].offset + intel[i].size > size)
			size = intel[i].offset + intel[i].size;
	}
	return size;
}

int core_xstate_note(const struct core_xlayout *l, const uint8_t *fp, size_t len, uint8_t **ret,
		     size_t *ret_len)
{
	uint64_t xcr0 = len >= XSAVE_EXT_START ? get_le64(fp + XSAVE_XCR0_AT) : 0;
	bool differs = false;
	size_t size = l->known ? intel_size(l, xcr0, &differs) : 0;
	uint8_t *out;

	if (!differs)
		size = len;
	out = calloc(1, size ? size : 1);
	if (!out)
		return -ENOMEM;
	if (!differs) {
		memcpy(out, fp, len);
	} else {
		memcpy(out, fp, XSAVE_EXT_START);
		for (uint32_t c = 2; c < CORE_XSTATE_COMPONENTS; c++) {
			int i = xcr0 >> c & 1 ? intel_at(c) : -1;

			/* A component the capture did not reach stays zero, its init state. */
			if (i >= 0 && (uint64_t)l->offset[c] + l->size[c] <= len)
				memcpy(out + intel[i].offset, fp + l->offset[c], l->size[c]);
		}
	}
	*ret = out;
	*ret_len = size;
	return 0;
}
