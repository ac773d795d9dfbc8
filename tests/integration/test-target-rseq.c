/* SPDX-License-Identifier: MIT */
/*
 * Injecting on a thread caught inside an rseq critical section must not cancel the abort the
 * kernel owes it: the thread was preempted there, so it has to leave through the abort handler.
 * The child's critical section is an endless `jmp .` that only an abort ends; each abort
 * increments a counter, so a thread that lost its abort spins in the section forever.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target/attach.h"
#include "target/inject.h"
#include "test-check.h"

#define TIMEOUT_MS 20000
#define MAX_TRIES  1000
#define JMP_SELF   0xfeeb /* `jmp .` is eb fe; little-endian */


static void rseq_spin(long *aborts)
{
	uint64_t *rseq_cs = (uint64_t *)((char *)__builtin_thread_pointer() + __rseq_offset +
					 offsetof(struct rseq, rseq_cs));

	for (;;) {
		/* The section starts at .Lstart and never commits; RSEQ_SIG precedes abort_ip. */
		asm volatile(".pushsection __rseq_cs, \"aw\"\n\t"
			     ".balign 32\n\t"
			     ".Lcs%=:\n\t"
			     ".long 0, 0\n\t"
			     ".quad .Lstart%=, .Lcommit%= - .Lstart%=, .Labort%=\n\t"
			     ".popsection\n\t"
			     "leaq .Lcs%=(%%rip), %%rax\n\t"
			     "movq %%rax, %[cs]\n\t"
			     ".Lstart%=:\n\t"
			     "jmp .Lstart%=\n\t"
			     ".Lcommit%=:\n\t"
			     "jmp .Labort%=\n\t"
			     ".long 0x53053053\n\t"
			     ".Labort%=:\n\t"
			     : [cs] "=m"(*rseq_cs)
			     :
			     : "rax", "memory");
		__atomic_add_fetch(aborts, 1, __ATOMIC_RELAXED);
	}
}

static long aborts_now(long *aborts)
{
	return __atomic_load_n(aborts, __ATOMIC_SEQ_CST);
}

static int aborts_continue(long *aborts)
{
	long before = aborts_now(aborts);

	for (int i = 0; i < TIMEOUT_MS; i++) {
		if (aborts_now(aborts) > before + 2)
			return 0;
		usleep(1000);
	}
	return -1;
}

/* Attach until the thread is caught on the `jmp .` inside its critical section. */
static int attach_in_section(pid_t pid, struct target **ret)
{
	struct target_error err;

	for (int i = 0; i < MAX_TRIES; i++) {
		struct target *t = NULL;
		uint16_t insn = 0;

		if (target_attach(pid, &t, &err) < 0) {
			printf("FAIL: attach: %s\n", err.msg);
			return -1;
		}
		if (target_mem_read(t, t->threads[0].regs.rip, &insn, sizeof(insn)) == 0 &&
		    insn == JMP_SELF) {
			*ret = t;
			return 0;
		}
		target_free(t);
	}
	printf("FAIL: never caught inside the critical section\n");
	return -1;
}

int main(void)
{
	const long args[6] = {0};
	struct target *t = NULL;
	long *aborts, result;
	pid_t pid = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("SKIP: needs root (CAP_SYS_PTRACE)\n");
		return 77;
	}
	if (__rseq_size == 0) {
		printf("SKIP: glibc did not register rseq (glibc.pthread.rseq=0?)\n");
		return 77;
	}
	aborts =
	    mmap(NULL, sizeof(*aborts), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(aborts != MAP_FAILED, "mmap");
	pid = fork();
	if (pid == 0)
		rseq_spin(aborts);
	CHECK(pid > 0 && aborts_continue(aborts) == 0, "the child's section never aborts");
	CHECK(attach_in_section(pid, &t) == 0, "attach");
	CHECK(t->threads[0].rseq_abort && t->threads[0].resume_regs.rip != t->threads[0].regs.rip,
	      "stopped in the section, but no abort planned");
	CHECK(target_inject_syscall(t, SYS_getpid, args, &result) == 0 && result == pid,
	      "getpid: %ld", result);
	CHECK(target_detach(t) == 0, "detach");
	target_free(t);
	t = NULL;
	CHECK(aborts_continue(aborts) == 0, "the thread lost its abort and spins in its section");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	printf("PASS rseq-abort: injected inside a critical section, the thread still aborted\n");
	return 0;
fail:
	target_free(t);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return 1;
}
