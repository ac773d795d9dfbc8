/* SPDX-License-Identifier: MIT */
/* engine/vmas.c: how each kind of VMA in /proc/PID/smaps is classified and planned. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>

#include "engine/ustr.h"
#include "engine/vmas.h"

/* One smaps entry: the header line, then optional attribute lines. */
#define ENTRY(hdr, ...) hdr "\n"                                                            \
	"Size:                  8 kB\n"                                                     \
	"Rss:                   4 kB\n" __VA_ARGS__

static int parse(const char *text, struct vma_list *ret)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int r;

	assert_non_null(f);
	r = vma_parse(f, ret);
	fclose(f);
	return r;
}

struct kcase {
	const char *smaps;
	enum vma_kind kind;
	enum vma_plan plan;
	const char *what;
};

static const struct kcase kinds[] = {
    {ENTRY("7f0000000000-7f0000100000 rw-p 00000000 00:00 0",
	   "VmFlags: rd wr mr mw me ac\n"),
     VMA_ANON, VMA_PLAN_TRACK, "private anonymous"},
    {ENTRY("55d000000000-55d000021000 rw-p 00000000 00:00 0                          [heap]",
	   "VmFlags: rd wr mr mw me ac\n"),
     VMA_ANON, VMA_PLAN_TRACK, "heap"},
    {ENTRY("7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]",
	   "VmFlags: rd wr mr mw me gd ac\n"),
     VMA_ANON, VMA_PLAN_TRACK, "main stack"},
    {ENTRY("7f0000000000-7f0000100000 rw-s 00000000 00:01 1234                       /dev/zero (deleted)",
	   "VmFlags: rd wr sh mr mw me ms\n"),
     VMA_SHM, VMA_PLAN_TRACK, "shared anonymous"},
    {ENTRY("7f0000000000-7f0000100000 rw-s 00000000 00:01 1234                       /memfd:buf (deleted)",
	   "VmFlags: rd wr sh mr mw me ms\n"),
     VMA_SHM, VMA_PLAN_TRACK, "memfd"},
    {ENTRY("7f0000000000-7f0000100000 rw-s 00000000 00:19 77                         /dev/shm/seg",
	   "VmFlags: rd wr sh mr mw me ms\n"),
     VMA_SHM, VMA_PLAN_TRACK, "tmpfs"},
    {ENTRY("7f0000000000-7f0000100000 rw-s 00000000 00:01 32768                      /SYSV00000000 (deleted)",
	   "VmFlags: rd wr sh mr mw me ms\n"),
     VMA_SHM, VMA_PLAN_TRACK, "SysV shm"},
    {ENTRY("7f0000000000-7f0000400000 rw-p 00000000 00:10 99                         /anon_hugepage (deleted)",
	   "KernelPageSize:     2048 kB\n" "VmFlags: rd wr mr mw me de ht\n"),
     VMA_HUGETLB, VMA_PLAN_TRACK, "private hugetlb"},
    {ENTRY("7f0000000000-7f0040000000 rw-s 00000000 00:10 99                         /dev/hugepages/f",
	   "KernelPageSize:  1048576 kB\n" "VmFlags: rd wr sh mr mw me ms de ht\n"),
     VMA_HUGETLB, VMA_PLAN_TRACK, "shared hugetlb"},
    {ENTRY("7f0000000000-7f0000002000 rw-p 00021000 08:01 4242                       /usr/lib/libc.so.6",
	   "Anonymous:             4 kB\n" "VmFlags: rd wr mr mw me ac\n"),
     VMA_FILE_PRIVATE, VMA_PLAN_COPY, "writable private file (.data)"},
    {ENTRY("7f0000000000-7f0000002000 r--p 00020000 08:01 4242                       /usr/lib/libc.so.6",
	   "Anonymous:             8 kB\n" "VmFlags: rd mr mw me ac\n"),
     VMA_FILE_PRIVATE, VMA_PLAN_COPY, "read-only private file with private pages (RELRO)"},
    {ENTRY("7f0000000000-7f0000100000 rw-s 00000000 08:01 4243                       /var/data/file",
	   "VmFlags: rd wr sh mr mw me ms\n"),
     VMA_FILE_SHARED, VMA_PLAN_REFERENCE, "shared file"},
    {ENTRY("7f0000000000-7f0000100000 r--s 00000000 08:01 4243                       /var/data/file",
	   "VmFlags: rd sh mr me ms\n"),
     VMA_FILE_SHARED, VMA_PLAN_REFERENCE, "read-only shared file"},
    {ENTRY("55d000000000-55d000010000 r-xp 00002000 08:01 4244                       /usr/bin/cat",
	   "Anonymous:             0 kB\n" "VmFlags: rd ex mr mw me\n"),
     VMA_TEXT, VMA_PLAN_NONE, "read-only text"},
    {ENTRY("7ffc00100000-7ffc00102000 r-xp 00000000 00:00 0                          [vdso]",
	   "VmFlags: rd ex mr mw me de\n"),
     VMA_VDSO, VMA_PLAN_COPY, "vdso"},
    {ENTRY("7ffc000fc000-7ffc00100000 r--p 00000000 00:00 0                          [vvar]",
	   "VmFlags: rd mr pf io de dd\n"),
     VMA_VVAR, VMA_PLAN_NONE, "vvar"},
    {ENTRY("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
	   "VmFlags: ex\n"),
     VMA_VSYSCALL, VMA_PLAN_NONE, "vsyscall"},
    {ENTRY("7f0000000000-7f0000100000 rw-s 00000000 00:05 12                         /dev/mem",
	   "VmFlags: rd wr sh mr mw me ms io dc de dd\n"),
     VMA_IO, VMA_PLAN_NONE, "VM_IO"},
    {ENTRY("7f0000000000-7f0000100000 rw-s 00000000 00:05 13                         /dev/dri/card0",
	   "VmFlags: rd wr sh mr mw me ms pf\n"),
     VMA_IO, VMA_PLAN_NONE, "VM_PFNMAP"},
    {ENTRY("7f0000000000-7f0000100000 rw-p 00000000 00:00 0",
	   "VmFlags: rd wr mr mw me dd ac\n"),
     VMA_OTHER, VMA_PLAN_NONE, "VM_DONTDUMP anonymous"},
    {ENTRY("7f0000000000-7f0000100000 ---p 00000000 00:00 0",
	   "VmFlags: mr mw me\n"),
     VMA_OTHER, VMA_PLAN_NONE, "PROT_NONE (guard)"},
    {ENTRY("7f0000000000-7f0000100000 -w-p 00000000 00:00 0",
	   "VmFlags: wr mr mw me\n"),
     VMA_OTHER, VMA_PLAN_NONE, "write-only"},
    {ENTRY("7f0000000000-7f0000100000 r--p 00000000 00:00 0",
	   "VmFlags: rd mr mw me\n"),
     VMA_ANON, VMA_PLAN_TRACK, "read-only anonymous (may be mprotect()ed)"},
};

static void test_kinds(void **state)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct vma_list l = {0};

		print_message("%s\n", kinds[i].what);
		assert_int_equal(parse(kinds[i].smaps, &l), 0);
		assert_int_equal(l.n, 1);
		assert_string_equal(vma_kind_name(l.v[0].kind), vma_kind_name(kinds[i].kind));
		assert_string_equal(vma_plan_name(l.v[0].plan), vma_plan_name(kinds[i].plan));
		assert_false(l.v[0].thread_stack);
		vma_list_free(&l);
	}
}

static void test_fields(void **state)
{
	static const char text[] =
	    ENTRY("7f0000000000-7f0000400000 rw-p 00000000 00:10 99                         /anon_hugepage (deleted)",
		  "KernelPageSize:     2048 kB\n" "VmFlags: rd wr mr mw me de ht\n")
	    ENTRY("7f1000000000-7f1000001000 rw-p 0001f000 fd:01 123456                     /tmp/a b c",
		  "VmFlags: rd wr mr mw me ac\n")
	    ENTRY("7f2000000000-7f2000001000 rw-p 00000000 00:00 0");
	struct vma_list l = {0};

	assert_int_equal(parse(text, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.v[0].start, 0x7f0000000000);
	assert_int_equal(l.v[0].end, 0x7f0000400000);
	assert_int_equal(l.v[0].granule, 2u << 20);
	assert_string_equal(l.v[1].prot, "rw-p");
	assert_int_equal(l.v[1].offset, 0x1f000);
	assert_int_equal(l.v[1].dev_major, 0xfd);
	assert_int_equal(l.v[1].dev_minor, 1);
	assert_int_equal(l.v[1].inode, 123456);
	assert_string_equal(l.v[1].path, "/tmp/a b c"); /* spaces kept */
	assert_int_equal(l.v[1].granule, sysconf(_SC_PAGESIZE));
	assert_null(l.v[2].path); /* anonymous; no VmFlags line: private anonymous */
	assert_int_equal(l.v[2].kind, VMA_ANON);
	assert_int_equal(l.v[2].plan, VMA_PLAN_TRACK);
	assert_int_equal(vma_find(&l, 0x7f0000000000), 0);
	assert_int_equal(vma_find(&l, 0x7f00003fffff), 0);
	assert_int_equal(vma_find(&l, 0x7f0000400000), -1);
	assert_int_equal(vma_find(&l, 0x7f1000000fff), 1);
	assert_int_equal(vma_find(&l, 0x7f2000000000), 2);
	assert_int_equal(vma_find(&l, 0x1000), -1);
	vma_list_free(&l);
	vma_list_free(&l); /* twice, and NULL */
	vma_list_free(NULL);
}

static void test_bad_and_empty(void **state)
{
	struct vma_list l = {.n = 42};

	assert_int_equal(parse("", &l), 0);
	assert_int_equal(l.n, 0);
	l.n = 42;
	assert_int_equal(parse("7f0000000000-7f0000001000 rw-p\n", &l), -EBADMSG);
	assert_int_equal(l.n, 42); /* untouched on failure */
	assert_int_equal(parse(ENTRY("7f0000000000-7f0000001000 rw-p 00000000 00:00 0")
			       "7f0000001000-zzzz rw-p 00000000 00:00 0\n", &l), -EBADMSG);
	assert_int_equal(l.n, 42);
}

/* Small thread stacks are copied while held (a thread's exit writes there); big ones tracked. */
static void test_thread_stacks(void **state)
{
	static const char text[] =
	    ENTRY("7f0000000000-7f0000001000 ---p 00000000 00:00 0", "VmFlags: mr mw me\n")
	    ENTRY("7f0000001000-7f0000101000 rw-p 00000000 00:00 0", "VmFlags: rd wr mr mw me ac\n")
	    ENTRY("7f0000101000-7f0000302000 rw-p 00000000 00:00 0", "VmFlags: rd wr mr mw me ac\n")
	    ENTRY("7f0000400000-7f0000402000 rw-p 00000000 08:01 4242 /usr/lib/libc.so.6",
		  "VmFlags: rd wr mr mw me ac\n")
	    ENTRY("7f0000500000-7f0000600000 rw-s 00000000 00:01 1 /memfd:x (deleted)",
		  "VmFlags: rd wr sh mr mw me ms\n");
	const uint64_t addrs[] = {
	    0x7f0000100ff0, /* the 1 MiB stack: copied */
	    0x7f0000200000, /* the 2 MiB merged one: stays tracked */
	    0x7f0000000800, /* the guard page: not anonymous-tracked, untouched */
	    0x7f0000401000, /* a file mapping: untouched */
	    0x7f0000580000, /* shmem: untouched */
	    0x7f0000700000, /* in no VMA */
	};
	struct vma_list l = {0};

	assert_int_equal(parse(text, &l), 0);
	assert_int_equal(l.n, 5);
	vma_mark_thread_stacks(&l, addrs, sizeof(addrs) / sizeof(addrs[0]));
	assert_true(l.v[1].thread_stack);
	assert_int_equal(l.v[1].plan, VMA_PLAN_COPY);
	assert_string_equal(l.v[1].note, "thread stack/TLS");
	assert_false(l.v[2].thread_stack);
	assert_int_equal(l.v[2].plan, VMA_PLAN_TRACK);
	assert_int_equal(l.v[0].plan, VMA_PLAN_NONE);
	assert_int_equal(l.v[3].plan, VMA_PLAN_COPY);
	assert_false(l.v[3].thread_stack);
	assert_int_equal(l.v[4].plan, VMA_PLAN_TRACK);
	assert_false(l.v[4].thread_stack);
	vma_mark_thread_stacks(&l, addrs, 1); /* idempotent */
	assert_int_equal(l.v[1].plan, VMA_PLAN_COPY);
	vma_list_free(&l);
}

/*
 * vma_list_refresh() on this process: a scoped snapshot's layout kept up to date from maps
 * when only anonymous private VMAs outside the scope came, smaps (-ESTALE) otherwise.
 */
static void test_refresh(void **state)
{
	const size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	int fd = memfd_create("guest-ram", MFD_CLOEXEC);
	uint8_t *ram, *anon, *file;
	struct snap_span keep;
	struct vma_list l = {0};
	ssize_t i;

	assert_true(fd >= 0 && ftruncate(fd, 16 * ps) == 0);
	ram = mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(ram != MAP_FAILED);
	keep = (struct snap_span){(uintptr_t)ram, (uintptr_t)ram + 16 * ps};
	assert_int_equal(vma_scan(getpid(), &l), 0);
	assert_int_equal(vma_list_refresh(getpid(), &l, &keep, 1), 0); /* unchanged */

	/* A thread's stack, say: anonymous, private, outside the scope. */
	anon = mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(anon != MAP_FAILED && mprotect(anon, ps, PROT_NONE) == 0);
	assert_int_equal(vma_list_refresh(getpid(), &l, NULL, 0), -ESTALE); /* no scope */
	assert_int_equal(vma_list_refresh(getpid(), &l, &keep, 1), 0);
	i = vma_find(&l, (uintptr_t)anon + ps);
	assert_true(i >= 0);
	assert_int_equal(l.v[i].kind, VMA_ANON);
	assert_int_equal(l.v[i].plan, VMA_PLAN_NONE);
	assert_string_equal(l.v[i].note, "outside the snapshot's scope");
	i = vma_find(&l, (uintptr_t)anon);
	assert_true(i >= 0);
	assert_int_equal(l.v[i].kind, VMA_OTHER); /* the guard page */
	i = vma_find(&l, (uintptr_t)ram);
	assert_true(i >= 0);
	assert_int_equal(l.v[i].kind, VMA_SHM); /* as smaps said */
	assert_int_equal(l.v[i].plan, VMA_PLAN_TRACK);
	assert_int_equal(munmap(anon, 3 * ps), 0); /* gone, outside the scope */
	assert_int_equal(vma_list_refresh(getpid(), &l, &keep, 1), 0);
	assert_int_equal(vma_find(&l, (uintptr_t)anon + ps), -1);

	/* A mapping with a path (what is it? only smaps says), and a change inside the scope. */
	file = mmap(NULL, ps, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(file != MAP_FAILED);
	assert_int_equal(vma_list_refresh(getpid(), &l, &keep, 1), -ESTALE);
	assert_int_equal(munmap(file, ps), 0);
	assert_int_equal(vma_list_refresh(getpid(), &l, &keep, 1), 0);
	assert_int_equal(mprotect(ram + 4 * ps, ps, PROT_READ), 0);
	assert_int_equal(vma_list_refresh(getpid(), &l, &keep, 1), -ESTALE);
	assert_int_equal(mprotect(ram + 4 * ps, ps, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(munmap(ram + 8 * ps, 8 * ps), 0);
	assert_int_equal(vma_list_refresh(getpid(), &l, &keep, 1), -ESTALE);
	assert_int_equal(vma_list_refresh(-1, &l, &keep, 1), -ENOENT);
	vma_list_free(&l);
	munmap(ram, 8 * ps);
	close(fd);
}

/* What the image's "vmas" member was built with before vma_list_json_text(): jansson. */
static char *jansson_text(const struct vma_list *l)
{
	json_t *a = json_array();
	char *text;

	for (size_t i = 0; i < l->n; i++) {
		const struct vma *v = &l->v[i];
		char start[24], end[24], dev[24];
		json_t *o;

		snprintf(start, sizeof(start), "0x%" PRIx64, v->start);
		snprintf(end, sizeof(end), "0x%" PRIx64, v->end);
		snprintf(dev, sizeof(dev), "%02x:%02x", v->dev_major, v->dev_minor);
		o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:o, s:s, s:s, s:I}", "start", start,
			      "end", end, "prot", v->prot, "offset", (json_int_t)v->offset, "dev",
			      dev, "inode", (json_int_t)v->inode, "path",
			      ustr_json(v->path ? v->path : ""), "kind", vma_kind_name(v->kind),
			      "content", vma_plan_name(v->plan), "granule", (json_int_t)v->granule);
		assert_non_null(o);
		if (v->note[0])
			json_object_set_new(o, "note", json_string(v->note));
		json_array_append_new(a, o);
	}
	text = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return text;
}

/*
 * The layout's JSON text, written by hand while the target is held, is byte for byte what
 * jansson writes: every escape (quotes, backslashes, control characters, DEL, slashes), UTF-8
 * of every length kept, bytes that are not UTF-8 as \xNN, notes, big numbers, no path.
 */
static void test_json_text(void **state)
{
	static const char *const paths[] = {
	    "/usr/lib/x86_64-linux-gnu/libc.so.6",
	    "[heap]",
	    "/tmp/a \"quoted\" \\back\\slash",
	    "/tmp/ctl\x01\x02\b\f\n\r\t\x1f\x7f end",
	    "/tmp/caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e",
	    "/tmp/bad\xff\xfe\xc0\x80\xed\xa0\x80\xe2\x82",
	    "/memfd:guest-ram (deleted)",
	    NULL,
	};
	const size_t n = sizeof(paths) / sizeof(paths[0]);
	struct vma_list l = {calloc(n, sizeof(struct vma)), n};
	char *mine, *want;
	size_t len = 0;

	(void)state;
	assert_non_null(l.v);
	for (size_t i = 0; i < n; i++) {
		struct vma *v = &l.v[i];

		v->start = 0x7f0000000000ull + i * 0x200000;
		v->end = v->start + 0x1000 * (i + 1);
		snprintf(v->prot, sizeof(v->prot), "%s", i % 2 ? "rw-s" : "r-xp");
		v->offset = i == 2 ? 0x7ffffffffffff000ull : i * 4096;
		v->dev_major = i == 3 ? 0x103 : 8;
		v->dev_minor = (unsigned)i;
		v->inode = i == 4 ? 18446744073709ull : 1000 + i;
		v->path = paths[i] ? strdup(paths[i]) : NULL;
		v->kind = i % 2 ? VMA_FILE_SHARED : VMA_ANON;
		v->plan = i % 3 ? VMA_PLAN_TRACK : VMA_PLAN_COPY;
		v->granule = i == 5 ? 2u << 20 : 4096;
		if (i == 1 || i == 6)
			snprintf(v->note, sizeof(v->note), "EBUSY: \"pinned\" / locked");
	}
	mine = vma_list_json_text(&l, &len);
	want = jansson_text(&l);
	assert_non_null(mine);
	assert_non_null(want);
	assert_string_equal(mine, want);
	assert_int_equal(len, strlen(want));
	free(mine);
	free(want);

	l.n = 0; /* no VMAs: an empty array */
	mine = vma_list_json_text(&l, NULL);
	assert_string_equal(mine, "[]");
	free(mine);
	l.n = n;
	vma_list_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kinds),
	    cmocka_unit_test(test_fields),
	    cmocka_unit_test(test_bad_and_empty),
	    cmocka_unit_test(test_thread_stacks),
	    cmocka_unit_test(test_refresh),
	    cmocka_unit_test(test_json_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
