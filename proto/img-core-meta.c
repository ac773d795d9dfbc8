/* SPDX-License-Identifier: MIT */
/*
 * The process an image's metadata describes (FORMAT.md "Metadata"), read for the core writer.
 * Every member is optional for a reader, so what is absent becomes a missing bit, not an error;
 * what is present but malformed (an address that is no number, a VMA that ends before it
 * starts, overlapping VMAs) is -EBADMSG: a core built on it would mislead its reader.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "img-core-int.h"
#include "img-internal.h"

/* struct user_regs_struct's order, which is elf_gregset_t's (arch/x86/include/asm/user_64.h). */
static const char *const reg_names[CORE_NREGS] = {
    "r15", "r14", "r13", "r12", "rbp", "rbx",	  "r11",     "r10", "r9",
    "r8",  "rax", "rcx", "rdx", "rsi", "rdi",	  "orig_rax", "rip", "cs",
    "eflags", "rsp", "ss", "fs_base", "gs_base", "ds",	     "es",  "fs", "gs",
};

/* v as a JSON integer >= 0 or a string in hex or decimal: -ENOENT absent, -EINVAL bad. */
static int jval_u64(const json_t *v, uint64_t *ret)
{
	const char *s;
	char *end;

	if (!v || json_is_null(v))
		return -ENOENT;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -EINVAL;
		*ret = (uint64_t)json_integer_value(v);
		return 0;
	}
	s = json_string_value(v);
	if (!s || !(s[0] >= '0' && s[0] <= '9'))
		return -EINVAL;
	errno = 0;
	*ret = strtoull(s, &end, 0);
	return errno || *end ? -EINVAL : 0;
}

static int jget_u64(const json_t *obj, const char *key, uint64_t *ret)
{
	return jval_u64(json_is_object(obj) ? json_object_get(obj, key) : NULL, ret);
}

static const char *jget_str(const json_t *obj, const char *key)
{
	return json_string_value(json_is_object(obj) ? json_object_get(obj, key) : NULL);
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 with '=' padding (RFC 4648 section 4), as the daemon writes "fpstate". */
static int b64_decode(const char *s, uint8_t **ret, size_t *ret_len)
{
	size_t n = strlen(s), len = 0;
	uint8_t *out;

	if (n % 4 || n / 4 * 3 > CORE_MAX_FPSTATE)
		return -EBADMSG;
	out = malloc(n / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;

		for (int k = 0; k < 4; k++) {
			bool last = i + 4 == n, is_pad = last && k >= 2 && s[i + k] == '=';

			v[k] = is_pad ? 0 : b64_value(s[i + k]);
			pad += is_pad;
			if (v[k] < 0 || (pad && !is_pad))
				return free(out), -EBADMSG;
		}
		out[len++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[len++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		if (pad < 1)
			out[len++] = (uint8_t)(v[2] << 6 | v[3]);
	}
	*ret = out;
	*ret_len = len;
	return 0;
}

static void load_fp(const json_t *o, struct core_thread *t, uint32_t *missing)
{
	const char *fp = jget_str(o, "fpstate"), *format = jget_str(o, "fpstate_format");

	if (fp && b64_decode(fp, &t->fp, &t->fplen) >= 0 && t->fplen >= CORE_FXSAVE_LEN) {
		t->xsave = format && !strcmp(format, "xsave");
		return;
	}
	free(t->fp);
	t->fp = NULL;
	t->fplen = 0;
	*missing |= IMG_CORE_NO_FPSTATE;
}

static void load_signals(const json_t *o, struct core_thread *t, uint32_t *missing)
{
	const json_t *sig = json_object_get(o, "signals");

	if (jget_u64(sig, "pending", &t->sigpend) < 0 || jget_u64(sig, "blocked", &t->sighold) < 0)
		*missing |= IMG_CORE_NO_SIGNALS, t->sigpend = t->sighold = 0;
}

/*
 * "regs" are the registers a thread resumes with; a thread stopped inside an interrupted
 * syscall or an rseq section resumes elsewhere than where it stopped, and "stop_regs" (when
 * present) are where it stopped, which is what the kernel's and gdb's cores hold.
 */
static int load_thread(const json_t *o, struct core_thread *t, uint32_t *missing)
{
	const json_t *regs = json_object_get(o, "stop_regs");
	uint64_t v;

	if (jget_u64(o, "tid", &v) < 0 || v == 0 || v > INT32_MAX)
		return -EBADMSG;
	t->tid = (int32_t)v;
	if (!json_is_object(regs)) {
		regs = json_object_get(o, "regs");
		if (json_is_true(json_object_get(o, "restart")) ||
		    json_is_true(json_object_get(o, "rseq_abort")))
			*missing |= IMG_CORE_RESUME_REGS;
	}
	if (!json_is_object(regs))
		return -EBADMSG;
	for (int i = 0; i < CORE_NREGS; i++)
		if (jget_u64(regs, reg_names[i], &t->regs[i]) == -EINVAL)
			return -EBADMSG;
	load_fp(o, t, missing);
	load_signals(o, t, missing);
	return 0;
}

static int load_threads(struct core_model *m, struct img_error *err)
{
	const json_t *a = json_object_get(m->meta, "threads");
	size_t n = json_array_size(a), main_at = 0;

	if (!n)
		return m->missing |= IMG_CORE_NO_THREADS, 0;
	if (n > CORE_MAX_THREADS)
		return img_fail(err, 0, -EBADMSG, "the metadata lists %zu threads", n);
	m->threads = calloc(n, sizeof(*m->threads));
	if (!m->threads)
		return -ENOMEM;
	for (; m->nthreads < n; m->nthreads++) {
		struct core_thread *t = &m->threads[m->nthreads];

		if (load_thread(json_array_get(a, m->nthreads), t, &m->missing) < 0)
			return img_fail(err, 0, -EBADMSG, "thread %zu of the metadata is malformed",
					m->nthreads);
		if (t->tid == m->proc.pid)
			main_at = m->nthreads;
	}
	/* The first NT_PRSTATUS is the thread gdb selects; the kernel puts the dumping one there. */
	if (main_at) {
		struct core_thread t = m->threads[main_at];

		memmove(&m->threads[1], &m->threads[0], main_at * sizeof(t));
		m->threads[0] = t;
	}
	return 0;
}

static int load_vma(const json_t *o, uint32_t page_size, struct core_vma *v)
{
	const char *prot = jget_str(o, "prot"), *content = jget_str(o, "content");
	const char *path = jget_str(o, "path");

	if (jget_u64(o, "start", &v->start) < 0 || jget_u64(o, "end", &v->end) < 0 ||
	    v->start >= v->end || (v->start | v->end) % page_size)
		return -EBADMSG;
	if (jget_u64(o, "offset", &v->offset) == -EINVAL)
		return -EBADMSG;
	if (prot && strlen(prot) >= 3)
		v->pflags = (prot[0] == 'r' ? PF_R : 0) | (prot[1] == 'w' ? PF_W : 0) |
			    (prot[2] == 'x' ? PF_X : 0);
	v->saved = content && (!strcmp(content, "tracked") || !strcmp(content, "copied"));
	v->path = path && path[0] == '/' ? path : NULL; /* "[heap]" and the like are no files */
	return 0;
}

static int cmp_vma(const void *a, const void *b)
{
	const struct core_vma *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static int load_vmas(struct core_model *m, struct img_error *err)
{
	const json_t *a = json_object_get(m->meta, "vmas");
	size_t n = json_array_size(a);

	if (n > CORE_MAX_VMAS)
		return img_fail(err, 0, -EBADMSG, "the metadata lists %zu memory mappings", n);
	m->vmas = calloc(n + 1, sizeof(*m->vmas));
	if (!m->vmas)
		return -ENOMEM;
	for (; m->nvmas < n; m->nvmas++)
		if (load_vma(json_array_get(a, m->nvmas), m->page_size, &m->vmas[m->nvmas]) < 0)
			return img_fail(err, 0, -EBADMSG,
					"memory mapping %zu of the metadata is malformed",
					m->nvmas);
	qsort(m->vmas, n, sizeof(*m->vmas), cmp_vma);
	for (size_t i = 1; i < n; i++)
		if (m->vmas[i].start < m->vmas[i - 1].end)
			return img_fail(err, 0, -EBADMSG, "memory mappings at 0x%llx overlap",
					(unsigned long long)m->vmas[i].start);
	return 0;
}

/* "auxv": [[type, value], ...], each a number or a hex string. */
static void load_auxv(struct core_model *m, const json_t *a)
{
	size_t n = json_array_size(a);
	struct core_proc *p = &m->proc;

	if (!n || n > CORE_MAX_AUXV || !(p->auxv = calloc(n, 2 * sizeof(uint64_t)))) {
		m->missing |= IMG_CORE_NO_AUXV;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(a, i);

		if (json_array_size(e) != 2 || jval_u64(json_array_get(e, 0), &p->auxv[2 * i]) < 0 ||
		    jval_u64(json_array_get(e, 1), &p->auxv[2 * i + 1]) < 0) {
			free(p->auxv);
			p->auxv = NULL;
			m->missing |= IMG_CORE_NO_AUXV;
			return;
		}
	}
	p->auxv_pairs = n;
}

static int32_t jget_i32(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int32_t)json_integer_value(v) : 0;
}

static void load_process(struct core_model *m)
{
	const json_t *target = json_object_get(m->meta, "target");
	const json_t *proc = json_object_get(m->meta, "process");
	const char *comm = jget_str(target, "comm"), *args = jget_str(proc, "cmdline");
	struct core_proc *p = &m->proc;

	p->pid = jget_i32(target, "pid");
	snprintf(p->fname, sizeof(p->fname), "%s", comm ? comm : "");
	if (!json_is_object(proc)) {
		m->missing |= IMG_CORE_NO_PROCESS | IMG_CORE_NO_AUXV;
		return;
	}
	p->ppid = jget_i32(proc, "ppid");
	p->pgrp = jget_i32(proc, "pgrp");
	p->sid = jget_i32(proc, "sid");
	p->uid = (uint32_t)jget_i32(proc, "uid");
	p->gid = (uint32_t)jget_i32(proc, "gid");
	p->nice = jget_i32(proc, "nice");
	snprintf(p->psargs, sizeof(p->psargs), "%s", args ? args : "");
	load_auxv(m, json_object_get(proc, "auxv"));
}

/* "cpu": {"xsave_layout": [[component, offset, size], ...]} */
static void load_xlayout(struct core_model *m)
{
	const json_t *a = json_object_get(json_object_get(m->meta, "cpu"), "xsave_layout");
	struct core_xlayout *l = &m->xlayout;

	for (size_t i = 0; i < json_array_size(a); i++) {
		const json_t *e = json_array_get(a, i);
		uint64_t c, off, size;

		if (json_array_size(e) != 3 || jval_u64(json_array_get(e, 0), &c) < 0 ||
		    jval_u64(json_array_get(e, 1), &off) < 0 ||
		    jval_u64(json_array_get(e, 2), &size) < 0 || c >= CORE_XSTATE_COMPONENTS ||
		    off > CORE_MAX_FPSTATE || size > CORE_MAX_FPSTATE) {
			*l = (struct core_xlayout){0};
			return;
		}
		l->offset[c] = (uint32_t)off;
		l->size[c] = (uint32_t)size;
		l->known = true;
	}
}

/*
 * Chains may have other kinds (none exists yet); an image without one is a process. A QEMU
 * guest's image (a `guest` member, FORMAT.md 1.1) holds guest RAM, and its threads are QEMU's.
 */
static int check_kind(const struct core_model *m, struct img_error *err)
{
	const char *kind = jget_str(m->meta, "kind");
	const char *machine = jget_str(json_object_get(m->meta, "kernel"), "machine");

	if (json_object_get(m->meta, "guest"))
		return img_fail(err, 0, -EPROTONOSUPPORT,
				"an image of a QEMU guest: its memory is guest RAM, not a "
				"process");
	if (kind && strcmp(kind, "process"))
		return img_fail(err, 0, -EPROTONOSUPPORT,
				"an image of a %s, not of a process, has no core form", kind);
	if (machine && strcmp(machine, "x86_64"))
		return img_fail(err, 0, -EPROTONOSUPPORT,
				"an image of an %s process: only x86_64 cores are written",
				machine);
	return 0;
}

int core_model_load(const char *meta, uint32_t page_size, struct core_model *m,
		    struct img_error *err)
{
	int k;

	*m = (struct core_model){.page_size = page_size};
	m->meta = json_loads(meta, 0, NULL);
	if (!json_is_object(m->meta))
		return img_fail(err, 0, -EBADMSG, "the metadata is not a JSON object");
	k = check_kind(m, err);
	if (k >= 0) {
		load_process(m);
		load_xlayout(m);
		k = load_threads(m, err);
	}
	if (k >= 0)
		k = load_vmas(m, err);
	return k;
}

void core_model_free(struct core_model *m)
{
	for (size_t i = 0; i < m->nthreads; i++)
		free(m->threads[i].fp);
	free(m->threads);
	free(m->vmas);
	free(m->proc.auxv);
	json_decref(m->meta);
	*m = (struct core_model){0};
}
