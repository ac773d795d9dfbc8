/* SPDX-License-Identifier: MIT */
/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI, ext4 and btrfs.
 * The SSE4.2 crc32 instruction computes exactly this; where the CPU lacks it a table is used.
 * The function follows the usual convention: pass 0 to start, feed the result back to continue.
 */
#include <stdint.h>
#include <string.h>

#include "uffsnap/image.h"

#define CRC32C_POLY_REFLECTED 0x82F63B78u

static uint32_t crc32c_table_byte(uint32_t v)
{
	for (int k = 0; k < 8; k++)
		v = (v >> 1) ^ (CRC32C_POLY_REFLECTED & (0u - (v & 1)));
	return v;
}

/* Bytewise fallback; the table is computed on the stack once per call of a long buffer. */
static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint32_t table[256];

	for (uint32_t i = 0; i < 256; i++)
		table[i] = crc32c_table_byte(i);
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
							      size_t len)
{
	uint64_t c = crc;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, sizeof(v));
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}
#define HAVE_CRC32C_HW 1
#endif

uint32_t img_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
#ifdef HAVE_CRC32C_HW
	if (__builtin_cpu_supports("sse4.2"))
		return ~crc32c_hw(crc, p, len);
#endif
	crc = crc32c_sw(crc, p, len);
	return ~crc;
}
