/* SPDX-License-Identifier: MIT */
/*
 * Least privilege for service mode. What a snapshot needs once /dev/userfaultfd and the
 * control and connector sockets are open, found by running the engine as an unprivileged
 * user against targets of other users (root and nobody) with one capability removed at a time
 * (tests/system/test-svc-caps.c keeps it true):
 *
 * - CAP_SYS_PTRACE: PTRACE_SEIZE of another user's threads, pidfd_getfd() of the target's new
 *   userfaultfd, process_vm_readv/writev(), /proc/PID/mem's mm_access() and the /proc/PID/exe
 *   link all go through kernel/ptrace.c __ptrace_may_access(), which requires it when the
 *   uids differ or the target is not dumpable, and security/commoncap.c
 *   cap_ptrace_access_check(), which requires it when the target holds capabilities we lack.
 * - CAP_DAC_READ_SEARCH: /proc/PID/mem is mode 0600 and /proc/PID/pagemap 0400, owned by the
 *   target's euid (fs/proc/base.c tgid_base_stuff, task_dump_owner()), and the VFS checks
 *   that mode (fs/namei.c generic_permission()) before proc_mem_open() ever asks ptrace.
 *   Reading is all the engine does through them, so read-search suffices, not
 *   CAP_DAC_OVERRIDE.
 * - CAP_KILL: signals a held thread dequeued are given back with tgkill() or
 *   rt_tgsigqueueinfo(), and a target's liveness is checked with kill(pid, 0); for another
 *   user's process kernel/signal.c check_kill_permission() (kill_ok_by_cred()) requires it.
 *   Being its tracer does not exempt us.
 * - CAP_CHOWN: a --file image is given to the client who asked for it (fchown() of the file
 *   the daemon just created, fs/attr.c chown_ok()), so that user can read it and no one
 *   else can; it is used on nothing else.
 *
 * Not kept: CAP_NET_ADMIN (needed only to subscribe to the process events connector, done
 * before the drop; the subscribed socket keeps receiving), CAP_SETUID/CAP_SETGID (the switch
 * to the service user), CAP_SETPCAP (dropping the bounding set), and nothing at all for
 * /dev/userfaultfd, opened before the drop and only passed on (snap_opts.devuffd_fd).
 * PR_SET_NO_NEW_PRIVS is set too: the engine never executes anything, and ptrace and fork
 * (the holder process) are unaffected by it.
 */
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "sys/caps.h"

static const cap_value_t svc_kept[] = {CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH, CAP_KILL,
					CAP_CHOWN};
#define SVC_NKEPT ((int)(sizeof(svc_kept) / sizeof(svc_kept[0])))

/* Returns -err with the message set: the pattern of every failure here. */
static int fail(struct svc_caps_error *err, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct svc_caps_error *err, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return r;
}

struct cap_name {
	char s[32];
};

/* "cap_sys_ptrace", by value: libcap's cap_to_name() allocates. */
static struct cap_name cap_name(cap_value_t c)
{
	struct cap_name n;
	char *s = cap_to_name(c);

	snprintf(n.s, sizeof(n.s), "%s", s ? s : "?");
	cap_free(s);
	return n;
}

static bool is_kept(cap_value_t c)
{
	for (int i = 0; i < SVC_NKEPT; i++)
		if (svc_kept[i] == c)
			return true;
	return false;
}

/* Every kept capability must be permitted now, or a snapshot would fail later, obscurely. */
static int check_permitted(struct svc_caps_error *err)
{
	cap_t now = cap_get_proc();
	int r = 0;

	if (!now)
		return fail(err, -errno, "cannot read the process capabilities: %m");
	for (int i = 0; i < SVC_NKEPT && r == 0; i++) {
		cap_flag_value_t v = CAP_CLEAR;

		cap_get_flag(now, svc_kept[i], CAP_PERMITTED, &v);
		if (v != CAP_SET)
			r = fail(err, -EPERM,
				 "service mode needs %s (kept for snapshots: %s); start it as root "
				 "or allow it in the unit's CapabilityBoundingSet=",
				 cap_name(svc_kept[i]).s, svc_caps_kept());
	}
	cap_free(now);
	return r;
}

/* Removes every other capability from the bounding set, for good (needs CAP_SETPCAP). */
static int drop_bounding(struct svc_caps_error *err)
{
	for (cap_value_t c = 0; c < (cap_value_t)cap_max_bits(); c++) {
		if (is_kept(c) || cap_get_bound(c) != 1)
			continue;
		if (cap_drop_bound(c) < 0)
			return fail(err, -errno,
				    "cannot drop %s from the bounding set: %m (needs CAP_SETPCAP)",
				    cap_name(c).s);
	}
	return 0;
}

/* setgroups + setresgid + setresuid to NAME's ids; the permitted set survives (KEEPCAPS). */
static int switch_user(const char *user, struct svc_caps_error *err)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int k = getpwnam_r(user, &pw, buf, sizeof(buf), &res);

	if (!res)
		return fail(err, k ? -k : -ESRCH,
			    "no user '%s' (create it: systemd-sysusers, or useradd --system %s)",
			    user, user);
	if (prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) < 0)
		return fail(err, -errno, "prctl(PR_SET_KEEPCAPS): %m");
	if (initgroups(user, pw.pw_gid) < 0)
		return fail(err, -errno, "cannot set the groups of user '%s': %m", user);
	if (setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid) < 0)
		return fail(err, -errno, "cannot switch to group %u of user '%s': %m",
			    (unsigned)pw.pw_gid, user);
	if (setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) < 0)
		return fail(err, -errno, "cannot switch to user '%s' (uid %u): %m", user,
			    (unsigned)pw.pw_uid);
	prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L);
	return 0;
}

/* Permitted = effective = the kept set; inheritable empty. */
static int set_kept(struct svc_caps_error *err)
{
	cap_t c = cap_init();
	int r = 0;

	if (!c)
		return fail(err, -errno, "cap_init: %m");
	if (cap_set_flag(c, CAP_PERMITTED, SVC_NKEPT, svc_kept, CAP_SET) < 0 ||
	    cap_set_flag(c, CAP_EFFECTIVE, SVC_NKEPT, svc_kept, CAP_SET) < 0 || cap_set_proc(c) < 0)
		r = fail(err, -errno, "cannot set the capabilities %s: %m", svc_caps_kept());
	cap_free(c);
	return r;
}

int svc_caps_drop(const char *user, struct svc_caps_error *err)
{
	int r;

	err->msg[0] = '\0';
	r = check_permitted(err);
	if (r >= 0)
		r = drop_bounding(err);
	/* The ambient set would hand capabilities to anything executed: empty it. */
	if (r >= 0 && cap_reset_ambient() < 0)
		r = fail(err, -errno, "cannot clear the ambient capabilities: %m");
	if (r >= 0 && user)
		r = switch_user(user, err);
	if (r >= 0)
		r = set_kept(err);
	if (r >= 0 && prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) < 0)
		r = fail(err, -errno, "prctl(PR_SET_NO_NEW_PRIVS): %m");
	return r;
}

const char *svc_caps_kept(void)
{
	return "cap_sys_ptrace,cap_dac_read_search,cap_kill,cap_chown";
}
