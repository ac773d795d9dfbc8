/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wl-privs.h"

#if defined(__x86_64__)
#define WL_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define WL_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "wl-privs.c: unknown audit arch"
#endif

int wl_privs_deny_userfaultfd(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		/* Another ABI (e.g. 32-bit) numbers syscalls differently: leave it alone. */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, WL_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
	long fd;

	/* Without CAP_SYS_ADMIN a filter needs no_new_privs; set it always, so --as-user works. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -errno;
	fd = syscall(__NR_userfaultfd, O_CLOEXEC);
	if (fd >= 0) {
		close((int)fd);
		return -ENOTRECOVERABLE;
	}
	return errno == EPERM ? 0 : -errno;
}

int wl_privs_lookup(const char *user, uid_t *ret_uid, gid_t *ret_gid)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(user);
	if (!pw)
		return errno ? -errno : -ESRCH;
	*ret_uid = pw->pw_uid;
	*ret_gid = pw->pw_gid;
	return 0;
}

int wl_privs_drop(uid_t uid, gid_t gid)
{
	int deathsig = 0;

	if (prctl(PR_GET_PDEATHSIG, &deathsig) < 0)
		return -errno;
	if (setgroups(0, NULL) < 0)
		return -errno;
	if (setresgid(gid, gid, gid) < 0)
		return -errno;
	if (setresuid(uid, uid, uid) < 0)
		return -errno;
	/* Changing uid makes the process non-dumpable, which would hide it from its own user's
	 * ptrace and make /proc/PID root's: undo that, the tests want a plain user process. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		return -errno;
	/* A credential change clears the parent-death signal too: keep what the spawner asked. */
	if (deathsig && prctl(PR_SET_PDEATHSIG, deathsig, 0, 0, 0) < 0)
		return -errno;
	return 0;
}
