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
#include <pthread.h>

/*
 * The crc32 instruction takes 3 cycles and can start one per cycle, so one chain of it runs at
 * a third of what the CPU can do. Long buffers are cut into three lanes computed side by side;
 * the lanes are then joined, which needs the CRC state moved past a lane of zero bytes. That
 * move is linear over GF(2) (the instruction has no conditioning of its own), so it is a 32x32
 * bit matrix, applied a byte at a time from four tables. Three lane lengths keep the speed for
 * short buffers too (a 4 KiB page is one 3 KiB block, two of 384 bytes and a 256-byte tail).
 */
#define CRC32C_LANES 3
static const size_t crc32c_lane_bytes[] = {8192, 1024, 128};
#define CRC32C_LANE_KINDS (sizeof(crc32c_lane_bytes) / sizeof(crc32c_lane_bytes[0]))

static uint32_t crc32c_skip[CRC32C_LANE_KINDS][4][256];
static pthread_once_t crc32c_skip_once = PTHREAD_ONCE_INIT;

__attribute__((target("sse4.2"))) static void crc32c_skip_init(void)
{
	for (size_t l = 0; l < CRC32C_LANE_KINDS; l++) {
		uint32_t bit[32];

		for (int b = 0; b < 32; b++) {
			uint64_t c = 1u << b;

			for (size_t i = 0; i < crc32c_lane_bytes[l]; i += 8)
				c = __builtin_ia32_crc32di(c, 0);
			bit[b] = (uint32_t)c;
		}
		for (int k = 0; k < 4; k++)
			for (uint32_t v = 0; v < 256; v++) {
				uint32_t m = 0;

				for (int b = 0; b < 8; b++)
					if (v & (1u << b))
						m ^= bit[8 * k + b];
				crc32c_skip[l][k][v] = m;
			}
	}
}

/* The state c moved past crc32c_lane_bytes[l] zero bytes. */
static uint32_t crc32c_shift(size_t l, uint32_t c)
{
	return crc32c_skip[l][0][c & 0xff] ^ crc32c_skip[l][1][(c >> 8) & 0xff] ^
	       crc32c_skip[l][2][(c >> 16) & 0xff] ^ crc32c_skip[l][3][c >> 24];
}

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
							      size_t len)
{
	uint64_t c = crc;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	if (len >= CRC32C_LANES * crc32c_lane_bytes[CRC32C_LANE_KINDS - 1])
		pthread_once(&crc32c_skip_once, crc32c_skip_init);
	for (size_t l = 0; l < CRC32C_LANE_KINDS; l++) {
		size_t lane = crc32c_lane_bytes[l];

		for (; len >= CRC32C_LANES * lane;
		     p += CRC32C_LANES * lane, len -= CRC32C_LANES * lane) {
			uint64_t a = c, b = 0, d = 0;

			for (size_t i = 0; i < lane; i += 8) {
				a = __builtin_ia32_crc32di(a, load64(p + i));
				b = __builtin_ia32_crc32di(b, load64(p + lane + i));
				d = __builtin_ia32_crc32di(d, load64(p + 2 * lane + i));
			}
			c = crc32c_shift(l, crc32c_shift(l, (uint32_t)a) ^ (uint32_t)b) ^
			    (uint32_t)d;
		}
	}
	for (; len >= 8; p += 8, len -= 8)
		c = __builtin_ia32_crc32di(c, load64(p));
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
