/* SPDX-License-Identifier: MIT */
#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "sys/linux-compat.h"
#include "target/inject.h"
#include "target/regs.h"
#include "target/sigstate.h"

/* The XSAVE area is at most a few pages even with AMX tiles (~11 KiB); a larger answer from
 * the kernel would be a bug, not a reason to allocate without bound. */
#define XSTATE_MAX_LEN	  (256u * 1024)
#define FXSAVE_LEN	  sizeof(struct user_fpregs_struct)
#define CPUID_LEAF_XSTATE 0xd

int target_regs_get(pid_t tid, struct user_regs_struct *ret)
{
	struct user_regs_struct regs;
	struct iovec iov = {.iov_base = &regs, .iov_len = sizeof(regs)};

	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &iov) < 0)
		return -errno;
	/* A 32-bit (ia32) tracee answers with the 68-byte compat layout. */
	if (iov.iov_len != sizeof(regs))
		return -EOPNOTSUPP;
	*ret = regs;
	return 0;
}

int target_regs_set(pid_t tid, const struct user_regs_struct *regs)
{
	struct iovec iov = {.iov_base = (void *)regs, .iov_len = sizeof(*regs)};

	if (ptrace(PTRACE_SETREGSET, tid, (void *)NT_PRSTATUS, &iov) < 0)
		return -errno;
	return 0;
}

int target_regs_restore(const struct target_thread *th)
{
	return target_regs_set(th->tid, &th->resume_regs);
}

/*
 * A thread interrupted inside a blocking syscall stops with rax = -ERESTART* and orig_rax = the
 * syscall. The kernel rewrites that into "run the syscall again" (ip -= 2, rax = orig_rax, or
 * restart_syscall for a restart block) only on the signal path, arch_do_signal_or_restart();
 * a thread resumed from a syscall-exit-stop without a pending signal returns to user mode with
 * -ERESTART* in rax. So the registers a thread continues with after an injection are the
 * rewritten ones (as CRIU's compel does, arch/x86 get_task_regs). Applying the rewrite twice is
 * harmless: afterwards rax holds a syscall number, not an -ERESTART* code.
 */
static void regs_compute_resume(struct target_thread *th)
{
	long rax = (long)th->regs.rax;

	th->resume_regs = th->regs;
	th->in_syscall = (long)th->regs.orig_rax >= 0;
	th->restart = false;
	if (!th->in_syscall)
		return;
	switch (rax) {
	case -ERESTARTSYS:
	case -ERESTARTNOINTR:
	case -ERESTARTNOHAND:
		th->resume_regs.rax = th->regs.orig_rax;
		break;
	case -ERESTART_RESTARTBLOCK:
		th->resume_regs.rax = SYS_restart_syscall;
		break;
	default:
		return;
	}
	th->resume_regs.rip -= 2; /* length of `syscall` (0f 05) */
	th->restart = true;
}

static size_t xstate_len_hint(void)
{
	unsigned int eax, ebx, ecx, edx;

	/* CPUID.(EAX=0DH,ECX=0):ECX is the XSAVE area size for every feature XCR0 can enable. */
	if (!__get_cpuid_count(CPUID_LEAF_XSTATE, 0, &eax, &ebx, &ecx, &edx) || ecx < FXSAVE_LEN)
		return 4096;
	return ecx;
}

static int regs_read_regset(pid_t tid, unsigned int type, size_t len, struct target_fpstate *fp)
{
	struct iovec iov;
	uint8_t *buf = malloc(len);
	int r;

	if (!buf)
		return -ENOMEM;
	iov = (struct iovec){.iov_base = buf, .iov_len = len};
	if (ptrace(PTRACE_GETREGSET, tid, (void *)(uintptr_t)type, &iov) < 0) {
		r = -errno;
		free(buf);
		return r;
	}
	free(fp->data);
	fp->data = buf;
	fp->len = iov.iov_len;
	fp->xstate = type == NT_X86_XSTATE;
	return 0;
}

static int regs_capture_fp(struct target_thread *th)
{
	/* One element more than the CPU's size: the kernel's regset is exactly that size (2432
	 * bytes here), and a buffer it fills to the end would be read again, twice as large. A
	 * length that is not a multiple of the regset's 8-byte elements is refused (EINVAL:
	 * kernel/ptrace.c ptrace_regset()). */
	size_t len = xstate_len_hint() + sizeof(uint64_t);
	int r;

	for (;;) {
		r = regs_read_regset(th->tid, NT_X86_XSTATE, len, &th->fp);
		if (r < 0)
			break;
		/* The kernel fills min(iov_len, regset size): a full buffer may be truncated. */
		if (th->fp.len < len || len >= XSTATE_MAX_LEN)
			return 0;
		len *= 2;
	}
	if (r != -EINVAL && r != -ENODEV && r != -EIO)
		return r;
	/* No XSAVE on this CPU or kernel: the legacy FXSAVE image. */
	return regs_read_regset(th->tid, NT_PRFPREG, FXSAVE_LEN, &th->fp);
}

int target_regs_capture(struct target_thread *th)
{
	int r = target_regs_get(th->tid, &th->regs);

	if (r < 0)
		return r;
	regs_compute_resume(th);
	return 0;
}

static bool thread_listed(const struct target_thread *th)
{
	return !th->gone && !th->foreign;
}

/* On the second thread: only the sig_* members, which nothing else touches meanwhile. */
static void *read_signals(void *arg)
{
	struct target *t = arg;

	for (size_t i = 0; i < t->nthreads; i++) {
		struct target_thread *th = &t->threads[i];

		th->sig_read =
		    thread_listed(th) &&
		    target_sigstate_read(t->pid, th->tid, &th->sig_pending, &th->sig_blocked) == 0;
	}
	return NULL;
}

int target_regs_capture_state(struct target *t, bool may_thread)
{
	pthread_t reader;
	bool apart = may_thread && pthread_create(&reader, NULL, read_signals, t) == 0;
	int r = 0;

	for (size_t i = 0; i < t->nthreads && r >= 0; i++) {
		r = thread_listed(&t->threads[i]) ? regs_capture_fp(&t->threads[i]) : 0;
		if (r == -ESRCH) /* killed while held: it is not listed either */
			r = 0;
	}
	if (apart)
		pthread_join(reader, NULL);
	else
		read_signals(t);
	return r;
}

/*
 * A thread interrupted inside an rseq critical section was preempted there, so the kernel owes
 * it an abort, done when it next returns to user mode (kernel/rseq.c: rseq_ip_fixup() moves ip
 * to abort_ip). An injected syscall is such a return, from outside the section: the kernel then
 * only clears rseq_cs, and the thread, put back in its section, would carry on as if never
 * preempted. So the resume registers take the abort now, as the kernel would have.
 */
int target_regs_rseq_fixup(const struct target *t, struct target_thread *th)
{
	struct __ptrace_rseq_configuration conf;
	struct rseq_cs cs;
	uint64_t cs_addr;

	if (th->in_syscall)
		return 0;
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, th->tid, (void *)sizeof(conf), &conf) < 0)
		return errno == EIO ? 0 : -errno; /* EIO: a kernel before 5.13 */
	if (!conf.rseq_abi_pointer ||
	    conf.rseq_abi_size < offsetof(struct rseq, rseq_cs) + sizeof(cs_addr))
		return 0;
	if (target_mem_read(t, conf.rseq_abi_pointer + offsetof(struct rseq, rseq_cs), &cs_addr,
			    sizeof(cs_addr)) < 0 ||
	    !cs_addr)
		return 0;
	/* An unreadable descriptor gets the thread a SIGSEGV from the kernel, not from us. */
	if (target_mem_read(t, cs_addr, &cs,
			    offsetof(struct rseq_cs, abort_ip) + sizeof(cs.abort_ip)) < 0)
		return 0;
	if (th->resume_regs.rip - cs.start_ip < cs.post_commit_offset) {
		th->resume_regs.rip = cs.abort_ip;
		th->rseq_abort = true;
	}
	return 0;
}

#define REG(name)                                                                                  \
	{                                                                                          \
#name, offsetof(struct user_regs_struct, name)                                     \
	}
static const struct {
	const char *name;
	size_t offset;
} regs_table[] = {
    REG(rip), REG(rsp), REG(rbp), REG(rax),	 REG(rbx),     REG(rcx),     REG(rdx),
    REG(rsi), REG(rdi), REG(r8),  REG(r9),	 REG(r10),     REG(r11),     REG(r12),
    REG(r13), REG(r14), REG(r15), REG(orig_rax), REG(eflags),  REG(cs),	     REG(ss),
    REG(ds),  REG(es),	REG(fs),  REG(gs),	 REG(fs_base), REG(gs_base),
};
#undef REG

/*
 * The registers' JSON is formatted by hand into one buffer sized beforehand
 * (target_regs_json_size()): for 512 threads (2.2 MB) stdio took ~20 ms and jansson 45-75 ms
 * here, the buffer's growth and its first-touch page faults included, all of it in the hold.
 */
#define REG_TEXT_MAX (1 + 2 + 8 + 3 + 2 + 16 + 1)   /* ,"orig_rax":"0x<16 hex digits>" */
#define THREAD_TEXT_FIXED 512			/* tid, the flags, the formats, signals, keys */

static char *put_str(char *o, const char *s)
{
	size_t n = strlen(s);

	memcpy(o, s, n);
	return o + n;
}

static char *put_hex(char *o, unsigned long long v)
{
	char digits[16];
	int n = 0;

	do
		digits[n++] = "0123456789abcdef"[v & 15];
	while ((v >>= 4));
	*o++ = '0';
	*o++ = 'x';
	while (n)
		*o++ = digits[--n];
	return o;
}

static char *put_base64(char *o, const uint8_t *in, size_t len)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*o++ = alphabet[(v >> 18) & 63];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? alphabet[v & 63] : '=';
	}
	return o;
}

static char *put_regs(char *o, const struct user_regs_struct *regs)
{
	for (size_t i = 0; i < sizeof(regs_table) / sizeof(regs_table[0]); i++) {
		unsigned long long v;

		memcpy(&v, (const char *)regs + regs_table[i].offset, sizeof(v));
		*o++ = i ? ',' : '{';
		*o++ = '"';
		o = put_str(o, regs_table[i].name);
		o = put_str(o, "\":\"");
		o = put_hex(o, v);
		*o++ = '"';
	}
	*o++ = '}';
	return o;
}

#define JSON_BOOL(b) ((b) ? "true" : "false")

/*
 * One thread. Besides the resume registers: where it stopped, when that differs (an
 * interrupted syscall, an rseq abort), and its signal state. An ELF core holds those (the
 * kernel's and gdb's both show a thread in a syscall with rax = -ERESTART* and rip past the
 * `syscall`).
 */
static char *put_thread(char *o, const struct target_thread *th)
{
	o += sprintf(o, "{\"tid\":%d,\"regs\":", (int)th->tid);
	o = put_regs(o, &th->resume_regs);
	o += sprintf(o,
		     ",\"in_syscall\":%s,\"restart\":%s,\"rseq_abort\":%s,\"group_stop\":%s,"
		     "\"fpstate_format\":\"%s\",\"fpstate\":\"",
		     JSON_BOOL(th->in_syscall), JSON_BOOL(th->restart), JSON_BOOL(th->rseq_abort),
		     JSON_BOOL(th->group_stop), th->fp.xstate ? "xsave" : "fxsave");
	o = put_base64(o, th->fp.data, th->fp.len);
	*o++ = '"';
	if (th->sig_read) {
		o = put_str(o, ",\"signals\":{\"pending\":\"");
		o = put_hex(o, th->sig_pending);
		o = put_str(o, "\",\"blocked\":\"");
		o = put_hex(o, th->sig_blocked);
		o = put_str(o, "\"}");
	}
	if (th->restart || th->rseq_abort) {
		o = put_str(o, ",\"stop_regs\":");
		o = put_regs(o, &th->regs);
	}
	*o++ = '}';
	return o;
}

size_t target_regs_json_size(const struct target *t)
{
	const size_t nregs = sizeof(regs_table) / sizeof(regs_table[0]);
	size_t n = 2 + 1; /* [ ] and the NUL */

	for (size_t i = 0; i < t->nthreads; i++)
		if (thread_listed(&t->threads[i]))
			n += 1 + THREAD_TEXT_FIXED + 2 * (nregs * REG_TEXT_MAX + 2) +
			     (t->threads[i].fp.len + 2) / 3 * 4;
	return n;
}

char *target_regs_json_put(const struct target *t, char *out)
{
	bool first = true;

	*out++ = '[';
	for (size_t i = 0; i < t->nthreads; i++) {
		if (!thread_listed(&t->threads[i]))
			continue;
		if (!first)
			*out++ = ',';
		first = false;
		out = put_thread(out, &t->threads[i]);
	}
	*out++ = ']';
	*out = 0;
	return out;
}
