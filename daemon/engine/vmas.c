/* SPDX-License-Identifier: MIT */
/*
 * Reads /proc/PID/smaps and decides, per VMA, how the snapshot saves it (DESIGN.md "Memory
 * kinds"). smaps rather than maps because of VmFlags: "ht" (hugetlb), "sh" (shared), "io"/"pf"
 * (VM_IO/VM_PFNMAP), "dd" (VM_DONTDUMP), and KernelPageSize.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/ustr.h"
#include "engine/vmas.h"

/* Thread stacks larger than this stay tracked (and exits of such threads may stall). */
/* A thread's stack VMA up to this size is copied whole while held; a larger one (stacks merge
 * with neighbouring anonymous mappings) is tracked, and only its hot pages pre-saved. */
#define VMA_STACK_MAX (1ull << 20)

static const char *const kind_names[] = {
	[VMA_ANON] = "anon",	 [VMA_SHM] = "shm",	    [VMA_HUGETLB] = "hugetlb",
	[VMA_FILE_PRIVATE] = "file-private", [VMA_FILE_SHARED] = "file-shared",
	[VMA_TEXT] = "text",	 [VMA_VDSO] = "vdso",	    [VMA_VVAR] = "vvar",
	[VMA_VSYSCALL] = "vsyscall", [VMA_IO] = "io",	    [VMA_OTHER] = "other",
};

static const char *const plan_names[] = {
	[VMA_PLAN_TRACK] = "tracked",
	[VMA_PLAN_COPY] = "copied",
	[VMA_PLAN_REFERENCE] = "reference",
	[VMA_PLAN_NONE] = "none",
};

const char *vma_kind_name(enum vma_kind k)
{
	return kind_names[k];
}

const char *vma_plan_name(enum vma_plan p)
{
	return plan_names[p];
}

struct vmflags {
	bool hugetlb, shared, io, dontdump;
	bool anon; /* "Anonymous:" > 0: private pages (copy-on-write) in a file mapping */
};

static void parse_vmflags(const char *s, struct vmflags *f)
{
	for (; s[0] && s[1]; s += 3) {
		if (!strncmp(s, "ht", 2))
			f->hugetlb = true;
		else if (!strncmp(s, "sh", 2))
			f->shared = true;
		else if (!strncmp(s, "io", 2) || !strncmp(s, "pf", 2))
			f->io = true;
		else if (!strncmp(s, "dd", 2))
			f->dontdump = true;
		if (!s[2])
			break;
	}
}

/* A shared mapping whose backing is shmem: SysV shm, MAP_SHARED|MAP_ANONYMOUS, memfd, tmpfs. */
static bool path_is_shmem(const char *path)
{
	return !strncmp(path, "/dev/zero", 9) || !strncmp(path, "/SYSV", 5) ||
	       !strncmp(path, "/memfd:", 7) || !strncmp(path, "/dev/shm/", 9);
}

static void classify(struct vma *v, const struct vmflags *f)
{
	bool readable = v->prot[0] == 'r', writable = v->prot[1] == 'w';
	const char *p = v->path;

	v->plan = VMA_PLAN_NONE;
	if (p && !strcmp(p, "[vdso]"))
		/* Two pages, copied while held: a core needs them (the kernel's always has them,
		 * fs/coredump.c always_dump_vma()) for gdb to unwind through the vdso. */
		v->kind = VMA_VDSO, v->plan = VMA_PLAN_COPY;
	else if (p && !strcmp(p, "[vvar]"))
		v->kind = VMA_VVAR;
	else if (p && !strcmp(p, "[vsyscall]"))
		v->kind = VMA_VSYSCALL;
	else if (f->io)
		v->kind = VMA_IO;
	else if (!readable || f->dontdump)
		v->kind = VMA_OTHER;
	else if (f->hugetlb)
		v->kind = VMA_HUGETLB, v->plan = VMA_PLAN_TRACK;
	else if (!p || p[0] == '[')
		v->kind = f->shared ? VMA_SHM : VMA_ANON, v->plan = VMA_PLAN_TRACK;
	else if (path_is_shmem(p))
		v->kind = VMA_SHM, v->plan = VMA_PLAN_TRACK;
	else if (f->shared)
		v->kind = VMA_FILE_SHARED, v->plan = VMA_PLAN_REFERENCE;
	else if (writable || f->anon)
		/* A read-only one with private pages was written before it was protected: RELRO
		 * (.got, .dynamic with DT_DEBUG, which gdb follows to the libraries). Its file no
		 * longer holds its content; the kernel's core has it too (vma->anon_vma). */
		v->kind = VMA_FILE_PRIVATE, v->plan = VMA_PLAN_COPY;
	else
		v->kind = VMA_TEXT;
	/* A read-only anonymous or shmem VMA cannot be written without an mprotect; it still
	 * might be, so it is tracked like any other. */
}

static int parse_header(const char *line, struct vma *v)
{
	char path[4096] = "";
	int n = 0;

	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n", &v->start,
		   &v->end, v->prot, &v->offset, &v->dev_major, &v->dev_minor, &v->inode, &n) < 7)
		return -EBADMSG;
	if (sscanf(line + n, "%4095[^\n]", path) == 1 && path[0]) {
		v->path = strdup(path);
		if (!v->path)
			return -ENOMEM;
	}
	return 0;
}

static int list_add(struct vma_list *l, size_t *cap, const struct vma *v)
{
	if (l->n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct vma *n = realloc(l->v, c * sizeof(*n));

		if (!n)
			return -ENOMEM;
		l->v = n;
		*cap = c;
	}
	l->v[l->n++] = *v;
	return 0;
}

/* A header line starts with a hex address; attribute lines start with a capitalised name. */
static bool is_header(const char *line)
{
	return (line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f');
}

static int finish_vma(struct vma_list *l, size_t *cap, struct vma *cur, const struct vmflags *f,
		      uint32_t kpage)
{
	int r;

	cur->granule = kpage ? kpage : (uint32_t)sysconf(_SC_PAGESIZE);
	classify(cur, f);
	r = list_add(l, cap, cur);
	if (r < 0) { /* the list did not take it over */
		free(cur->path);
		cur->path = NULL;
	}
	return r;
}

int vma_parse(FILE *fp, struct vma_list *ret)
{
	char *line = NULL;
	struct vma_list l = {0};
	struct vma cur = {0};
	struct vmflags f = {0};
	size_t cap = 0, len = 0;
	bool have = false;
	uint32_t kpage = 0;
	int r = 0;

	while (r >= 0 && getline(&line, &len, fp) > 0) {
		if (is_header(line)) {
			if (have)
				r = finish_vma(&l, &cap, &cur, &f, kpage);
			memset(&cur, 0, sizeof(cur));
			memset(&f, 0, sizeof(f));
			kpage = 0;
			have = r >= 0 && (r = parse_header(line, &cur)) >= 0;
		} else if (!strncmp(line, "VmFlags:", 8)) {
			parse_vmflags(line + 9, &f);
		} else if (!strncmp(line, "Anonymous:", 10)) {
			f.anon = strtoul(line + 10, NULL, 10) > 0;
		} else if (!strncmp(line, "KernelPageSize:", 15)) {
			kpage = strtoul(line + 15, NULL, 10) * 1024;
		}
	}
	if (r >= 0 && have)
		r = finish_vma(&l, &cap, &cur, &f, kpage);
	else if (r < 0)
		free(cur.path);
	free(line);
	if (r < 0) {
		vma_list_free(&l);
		return r;
	}
	*ret = l;
	return 0;
}

int vma_scan(pid_t pid, struct vma_list *ret)
{
	char path[64];
	FILE *fp;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	fp = fopen(path, "re");
	if (!fp)
		return -errno;
	r = vma_parse(fp, ret);
	fclose(fp);
	return r;
}

static bool same_vma(const struct vma *a, const struct vma *b)
{
	return a->start == b->start && a->end == b->end && !strcmp(a->prot, b->prot) &&
	       a->offset == b->offset && a->inode == b->inode &&
	       !strcmp(a->path ? a->path : "", b->path ? b->path : "");
}

static bool overlaps(uint64_t a, uint64_t b, const struct snap_span *keep, size_t nkeep)
{
	for (size_t i = 0; i < nkeep; i++)
		if (keep[i].start < b && a < keep[i].end)
			return true;
	return false;
}

/* v, new in maps: classified as vma_list_refresh() says, or -ESTALE. */
static int refresh_new(struct vma *v, const struct snap_span *keep, size_t nkeep)
{
	static const struct vmflags none;

	if (v->path || v->prot[3] != 'p' || overlaps(v->start, v->end, keep, nkeep))
		return -ESTALE;
	v->granule = (uint32_t)sysconf(_SC_PAGESIZE);
	classify(v, &none);
	v->plan = VMA_PLAN_NONE;
	snprintf(v->note, sizeof(v->note), "outside the snapshot's scope");
	return 0;
}

int vma_list_refresh(pid_t pid, struct vma_list *l, const struct snap_span *keep, size_t nkeep)
{
	char path[64], *line = NULL;
	size_t len = 0, cap = 0, i = 0, kept_in = 0, old_in = 0;
	struct vma_list n = {0};
	bool same = true;
	int r = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	fp = fopen(path, "re");
	if (!fp)
		return -errno;
	while (r >= 0 && getline(&line, &len, fp) > 0) {
		struct vma v = {0};

		r = parse_header(line, &v);
		if (r < 0)
			break;
		while (i < l->n && l->v[i].end <= v.start) { /* gone, or replaced */
			same = false;
			i++;
		}
		if (i < l->n && same_vma(&v, &l->v[i])) {
			char *p = v.path;

			v = l->v[i++];
			v.path = p;
			kept_in += overlaps(v.start, v.end, keep, nkeep);
		} else {
			same = false;
			r = nkeep ? refresh_new(&v, keep, nkeep) : -ESTALE;
		}
		if (r >= 0)
			r = list_add(&n, &cap, &v);
		if (r < 0)
			free(v.path);
	}
	same = same && i == l->n;
	free(line);
	fclose(fp);
	for (size_t j = 0; j < l->n; j++)
		old_in += overlaps(l->v[j].start, l->v[j].end, keep, nkeep);
	if (r >= 0 && !same && kept_in != old_in) /* a VMA in keep went */
		r = -ESTALE;
	if (r < 0 || same) {
		vma_list_free(&n);
		return r;
	}
	vma_list_free(l);
	*l = n;
	return 0;
}

void vma_list_free(struct vma_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

ssize_t vma_find(const struct vma_list *l, uint64_t addr)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < l->v[mid].start)
			hi = mid;
		else if (addr >= l->v[mid].end)
			lo = mid + 1;
		else
			return mid;
	}
	return -1;
}

/*
 * At exit the kernel clears the thread's clear_child_tid word (in glibc, inside the thread's
 * stack mapping) with a put_user() that cannot wait for a fault handler (fs/userfaultfd.c:
 * handle_userfault() refuses PF_EXITING tasks), so a protected page there would leave
 * pthread_join() waiting forever. Such VMAs are copied while the target is held instead, if
 * small; in a larger one (a stack merged with its anonymous neighbours) the engine pre-saves
 * the pages around the address while held (snap_plan()).
 */
void vma_mark_thread_stacks(struct vma_list *l, const uint64_t *addrs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ssize_t k = vma_find(l, addrs[i]);

		if (k >= 0 && l->v[k].plan == VMA_PLAN_TRACK && l->v[k].kind == VMA_ANON &&
		    l->v[k].end - l->v[k].start <= VMA_STACK_MAX) {
			l->v[k].thread_stack = true;
			l->v[k].plan = VMA_PLAN_COPY;
			snprintf(l->v[k].note, sizeof(l->v[k].note), "thread stack/TLS");
		}
	}
}

/* The most text one VMA's object takes, but its path and note. */
#define VMA_JSON_FIXED 320

char *vma_list_json_text(const struct vma_list *l, size_t *ret_len)
{
	size_t cap = 3, n;
	char *text, *o;

	for (size_t i = 0; i < l->n; i++)
		cap += VMA_JSON_FIXED + USTR_JSON_MAX(l->v[i].path ? strlen(l->v[i].path) : 0) +
		       USTR_JSON_MAX(strlen(l->v[i].note));
	o = text = malloc(cap);
	if (!text)
		return NULL;
	*o++ = '[';
	for (size_t i = 0; i < l->n; i++) {
		const struct vma *v = &l->v[i];

		o +=
		    sprintf(o, "%s{\"start\":\"0x%" PRIx64 "\",\"end\":\"0x%" PRIx64 "\",\"prot\":",
			    i ? "," : "", v->start, v->end);
		o = ustr_put_json(o, v->prot);
		o += sprintf(o,
			     ",\"offset\":%" PRId64 ",\"dev\":\"%02x:%02x\",\"inode\":%" PRId64
			     ",\"path\":",
			     (int64_t)v->offset, v->dev_major, v->dev_minor, (int64_t)v->inode);
		o = ustr_put_json(o, v->path ? v->path : "");
		o += sprintf(o, ",\"kind\":\"%s\",\"content\":\"%s\",\"granule\":%" PRIu32,
			     vma_kind_name(v->kind), vma_plan_name(v->plan), v->granule);
		if (v->note[0]) {
			o += sprintf(o, ",\"note\":");
			o = ustr_put_json(o, v->note);
		}
		*o++ = '}';
	}
	*o++ = ']';
	*o = 0;
	n = (size_t)(o - text);
	if (ret_len)
		*ret_len = n;
	return text;
}
