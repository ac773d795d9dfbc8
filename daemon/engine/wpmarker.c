/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sys/linux-compat.h"
#include "engine/wpmarker.h"

/* Documentation/admin-guide/mm/pagemap.rst: one 64-bit entry per page. */
#define PM_ENTRY_BYTES 8
#define PM_FRAME_MASK  ((1ull << 55) - 1) /* PFN, or swap type (bits 0-4) and offset */
#define PM_SWAP	       (1ull << 62)
#define PM_PRESENT     (1ull << 63)
/* Entries read at once: a 2 MiB chunk of 4 KiB pages. */
#define PM_BATCH 512

/* The frame bits of a marked-but-unpopulated entry, or 0. */
static uint64_t marker_bits(uint64_t e)
{
	return (e & (PM_PRESENT | PM_SWAP)) == PM_SWAP ? e & PM_FRAME_MASK : 0;
}

static uint64_t probe_page(int uffd, int pagemapfd, uint8_t *page, size_t ps)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_WP_UNPOPULATED};
	struct uffdio_register reg = {.range = {(uintptr_t)page, ps},
				      .mode = UFFDIO_REGISTER_MODE_WP};
	struct uffdio_writeprotect wp = {.range = {(uintptr_t)page, ps},
					 .mode = UFFDIO_WRITEPROTECT_MODE_WP};
	uint64_t e = 0;

	if (ioctl(uffd, UFFDIO_API, &api) < 0 || ioctl(uffd, UFFDIO_REGISTER, &reg) < 0 ||
	    ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
		return 0;
	if (pread(pagemapfd, &e, sizeof(e), (uintptr_t)page / ps * PM_ENTRY_BYTES) != sizeof(e))
		return 0;
	return marker_bits(e); /* 0 when the swap fields are hidden from us */
}

uint64_t wpmarker_probe(void)
{
	size_t ps = sysconf(_SC_PAGESIZE);
	/* User-mode faults only: allowed whatever vm.unprivileged_userfaultfd says. */
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	int pagemapfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint8_t *page = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t marker = 0;

	if (uffd >= 0 && pagemapfd >= 0 && page != MAP_FAILED)
		marker = probe_page(uffd, pagemapfd, page, ps);
	if (page != MAP_FAILED)
		munmap(page, ps);
	if (pagemapfd >= 0)
		close(pagemapfd);
	if (uffd >= 0)
		close(uffd);
	return marker;
}

uint64_t wpmarker_bytes(int pagemapfd, uint64_t marker, uint64_t start, uint64_t end)
{
	size_t ps = sysconf(_SC_PAGESIZE);
	uint64_t e[PM_BATCH], bytes = 0;

	for (uint64_t a = start; marker && a < end;) {
		size_t n = (end - a) / ps < PM_BATCH ? (end - a) / ps : PM_BATCH;
		ssize_t got = pread(pagemapfd, e, n * sizeof(e[0]), a / ps * PM_ENTRY_BYTES);

		if (got < (ssize_t)sizeof(e[0]))
			return 0;
		n = (size_t)got / sizeof(e[0]);
		for (size_t i = 0; i < n; i++)
			bytes += marker_bits(e[i]) == marker ? ps : 0;
		a += n * ps;
	}
	return bytes;
}

void wpmarker_clear(int pagemapfd, uint64_t marker, uint64_t start, uint64_t end, uint32_t granule,
		    uint8_t *present)
{
	size_t ps = sysconf(_SC_PAGESIZE), per = granule / ps;
	uint64_t e[PM_BATCH];

	if (!marker || per == 0 || per > PM_BATCH)
		return;
	for (uint64_t a = start; a < end;) {
		size_t n = (end - a) / ps < PM_BATCH ? (end - a) / ps : PM_BATCH / per * per;
		ssize_t got = pread(pagemapfd, e, n * sizeof(e[0]), a / ps * PM_ENTRY_BYTES);

		if (got < (ssize_t)(per * sizeof(e[0])))
			return; /* cannot check: read them */
		n = (size_t)got / sizeof(e[0]) / per * per;
		for (size_t i = 0; i < n; i += per) {
			bool all = true;

			for (size_t j = i; j < i + per && all; j++)
				all = marker_bits(e[j]) == marker;
			if (all)
				present[(a - start) / granule + i / per] = 0;
		}
		a += n * ps;
	}
}
