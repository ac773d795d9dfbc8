/* SPDX-License-Identifier: MIT */
/*
 * engine/dirtylog.c on this process's own memory, with the real kernel: an asynchronous
 * userfaultfd and PAGEMAP_SCAN. The held collection splits the tracked memory among threads
 * (dirtylog_collect_pages()); what it finds must be exactly what one walk finds, pages at the
 * cuts included, and every page found is protected again.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "sys/linux-compat.h"
#include "engine/dirtylog.h"
#include "engine/pages.h"
#include "engine/uffd-ops.h"

#define SIZE (1ull << 30) /* over two threads' minimum: the walk is split */
#define MIB  (1ull << 20)

struct fixture {
	uint8_t *mem;
	int uffd, pagemapfd;
	struct pages_range r[2];
	struct pages p;
};

static int setup(void **state)
{
	static struct fixture f;
	uint64_t features = 0;

	f.mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		     -1, 0);
	f.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	f.pagemapfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (f.mem == MAP_FAILED || f.uffd < 0 || f.pagemapfd < 0 ||
	    uffd_api(f.uffd, UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, &features) < 0 ||
	    uffd_register_wp(f.uffd, (uintptr_t)f.mem, SIZE) < 0 ||
	    uffd_protect(f.uffd, (uintptr_t)f.mem, SIZE, 1) < 0) {
		fprintf(stderr, "SKIP: no asynchronous userfaultfd here: %s\n", strerror(errno));
		*state = NULL;
		return 0;
	}
	/* Two tracked ranges with a hole between them, as a layout has. */
	f.r[0] = (struct pages_range){(uintptr_t)f.mem, (uintptr_t)f.mem + 384 * MIB, 4096};
	f.r[1] = (struct pages_range){(uintptr_t)f.mem + 400 * MIB, (uintptr_t)f.mem + SIZE, 4096};
	f.p = (struct pages){.r = f.r, .n = 2};
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	close(f->uffd);
	close(f->pagemapfd);
	munmap(f->mem, SIZE);
	return 0;
}

/* Writes one byte into each page at the given offsets. */
static void touch(struct fixture *f, const uint64_t *off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		f->mem[off[i]] = (uint8_t)(i + 1);
}

static void expect(const struct span_set *s, const struct fixture *f, const uint64_t *off,
		   size_t n)
{
	struct span_set want = {0};

	for (size_t i = 0; i < n; i++)
		if (off[i] < 384 * MIB || off[i] >= 400 * MIB) /* the hole is not collected */
			assert_int_equal(spans_add(&want, (uintptr_t)f->mem + off[i] / 4096 * 4096,
						   (uintptr_t)f->mem + off[i] / 4096 * 4096 + 4096),
					 0);
	spans_merge(&want);
	assert_int_equal(s->n, want.n);
	for (size_t i = 0; i < want.n; i++) {
		assert_int_equal(s->v[i].start, want.v[i].start);
		assert_int_equal(s->v[i].end, want.v[i].end);
	}
	spans_free(&want);
}

static void test_split_walk(void **state)
{
	struct fixture *f = *state;
	/* Around every place a share could end (multiples of 2 MiB near a half, a third, a
	 * quarter of the 1008 MiB tracked), both ends, and the hole. */
	static const uint64_t off[] = {
	    0,		     4096,	      252 * MIB - 4096, 252 * MIB,	 336 * MIB - 1,
	    336 * MIB,	     384 * MIB - 4096, 390 * MIB,	400 * MIB,	 504 * MIB - 4096,
	    504 * MIB,	     505 * MIB,	       520 * MIB + 8192, 756 * MIB - 4096, 756 * MIB,
	    SIZE - 4096,
	};
	const size_t n = sizeof(off) / sizeof(off[0]);
	struct span_set one = {0}, split = {0}, again = {0};

	if (!f)
		skip(); /* setup said why */

	for (unsigned threads = 1; threads <= 4; threads++) {
		touch(f, off, n);
		assert_int_equal(dirtylog_collect_pages(f->pagemapfd, &f->p, threads, &split), 0);
		spans_merge(&split);
		expect(&split, f, off, n);
		spans_free(&split);
		/* Protected again: nothing more until the next write. */
		assert_int_equal(dirtylog_collect_pages(f->pagemapfd, &f->p, threads, &again), 0);
		assert_int_equal(again.n, 0);
	}
	/* And the same as one walk range by range, as the rounds do. */
	touch(f, off, n);
	for (size_t i = 0; i < f->p.n; i++)
		assert_int_equal(dirtylog_collect(f->pagemapfd, f->r[i].start, f->r[i].end, &one), 0);
	spans_merge(&one);
	expect(&one, f, off, n);
	spans_free(&one);
	spans_free(&again);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_split_walk, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
