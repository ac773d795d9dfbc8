/* SPDX-License-Identifier: MIT */
/*
 * Authorization (proto/CONTROL.md): a client may snapshot only what it could ptrace itself.
 * The daemon holds CAP_SYS_PTRACE, so it re-applies the kernel's own rules for the client
 * (kernel/ptrace.c __ptrace_may_access(), security/commoncap.c cap_ptrace_access_check(),
 * security/yama/yama_lsm.c) from what /proc shows, pinning both processes with pidfds so a
 * recycled pid cannot stand in for the one that was checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sys/linux-compat.h"
#include "service/auth.h"
#include "service/service.h"

/* What /proc/PID/status says about a process. */
struct proc_status {
	pid_t tgid, ppid;
	char state;
	bool kthread;
	unsigned uid[3], gid[3]; /* real, effective, saved */
	uint64_t cap_eff, cap_prm;
};

static int read_status(pid_t pid, struct proc_status *ret)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	*ret = (struct proc_status){0};
	while (fgets(line, sizeof(line), f)) {
		int k;

		sscanf(line, "Tgid: %d", &ret->tgid);
		sscanf(line, "PPid: %d", &ret->ppid);
		sscanf(line, "State: %c", &ret->state);
		if (sscanf(line, "Kthread: %d", &k) == 1)
			ret->kthread = k;
		sscanf(line, "Uid: %u %u %u", &ret->uid[0], &ret->uid[1], &ret->uid[2]);
		sscanf(line, "Gid: %u %u %u", &ret->gid[0], &ret->gid[1], &ret->gid[2]);
		sscanf(line, "CapEff: %" SCNx64, &ret->cap_eff);
		sscanf(line, "CapPrm: %" SCNx64, &ret->cap_prm);
	}
	fclose(f);
	return ret->tgid ? 0 : -ESRCH;
}

static int pidfd_open(pid_t pid)
{
	int fd = syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -errno : fd;
}

/* Is the process behind pidfd still alive (so its pid still names it)? */
static bool pidfd_alive(int pidfd)
{
	return syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0;
}

int svc_peer_identify(int fd, struct svc_peer *ret)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	struct proc_status st;
	int pidfd = -EBADF;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	*ret = (struct svc_peer){.pid = uc.pid, .uid = uc.uid, .gid = uc.gid};
	/* Linux >= 6.5 hands us the peer's pidfd, taken at connect(); older kernels: the pid,
	 * which could be recycled between connect() and here (then we see too few caps). */
	len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
		pidfd = -EBADF;
	if (uc.pid > 0 && read_status(uc.pid, &st) >= 0 && (pidfd < 0 || pidfd_alive(pidfd))) {
		ret->cap_ptrace = st.cap_eff & (1ull << CAP_SYS_PTRACE);
		ret->cap_prm = st.cap_prm;
	}
	if (pidfd >= 0)
		close(pidfd);
	return 0;
}

static int yama_scope(void)
{
	FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	int v = 0;

	if (!f)
		return 0; /* no Yama */
	if (fscanf(f, "%d", &v) != 1)
		v = 3; /* unreadable: assume the strictest */
	fclose(f);
	return v;
}

/* Yama scope 1: only an ancestor may trace (or a process the target named; not visible). */
static bool is_ancestor(pid_t ancestor, pid_t pid)
{
	struct proc_status st;

	for (int depth = 0; pid > 1 && depth < 4096; depth++) {
		if (read_status(pid, &st) < 0)
			return false;
		if (st.ppid == ancestor)
			return true;
		pid = st.ppid;
	}
	return false;
}

/*
 * A process that is not dumpable has its /proc/PID owned by root (fs/proc/base.c
 * task_dump_owner()); one that is, by its euid. prctl(PR_GET_DUMPABLE) works only on self.
 */
static bool dumpable(pid_t pid, const struct proc_status *st)
{
	char path[64];
	struct stat sb;

	snprintf(path, sizeof(path), "/proc/%d", pid);
	if (stat(path, &sb) < 0)
		return false;
	return sb.st_uid == st->uid[1];
}

static int same_user_may(const struct svc_peer *p, pid_t pid, const struct svc_auth_facts *f,
			 struct ctl_error *err)
{
	for (int i = 0; i < 3; i++)
		if (f->uid[i] != p->uid || f->gid[i] != p->gid)
			return ctl_fail(
			    err, CTL_E_PERM,
			    "uid %u may not snapshot pid %d (uid %u, gid %u): a client "
			    "needs CAP_SYS_PTRACE, or the same uid and gid as the target",
			    p->uid, pid, f->uid[1], f->gid[1]);
	if (!f->dumpable)
		return ctl_fail(
		    err, CTL_E_PERM,
		    "pid %d is not dumpable (set-id program, or "
		    "PR_SET_DUMPABLE 0): only a client with CAP_SYS_PTRACE may snapshot it",
		    pid);
	if (f->cap_prm & ~p->cap_prm)
		return ctl_fail(err, CTL_E_PERM,
				"pid %d holds capabilities the client lacks: only "
				"a client with CAP_SYS_PTRACE may snapshot it",
				pid);
	return 0;
}

int svc_auth_decide(const struct svc_peer *p, pid_t pid, const struct svc_auth_facts *f,
		    struct ctl_error *err)
{
	int scope = f->yama_scope;

	if (f->kthread)
		return ctl_fail(err, CTL_E_TARGET,
				"pid %d is a kernel thread: it has no user "
				"memory to snapshot",
				pid);
	if (f->state == 'Z' || f->state == 'X')
		return ctl_fail(err, CTL_E_TARGET, "pid %d has exited (zombie)", pid);
	if (f->tgid != pid)
		return ctl_fail(err, CTL_E_PARAM,
				"pid %d is a thread of process %d: give the "
				"process id",
				pid, f->tgid);
	if (scope >= 3)
		return ctl_fail(err, CTL_E_PERM,
				"kernel.yama.ptrace_scope is %d: no process may "
				"be traced, so none may be snapshotted",
				scope);
	if (p->cap_ptrace)
		return 0;
	if (scope == 2)
		return ctl_fail(err, CTL_E_PERM,
				"kernel.yama.ptrace_scope is 2: only a client "
				"with CAP_SYS_PTRACE may snapshot a process");
	if (scope == 1 && !f->ancestor)
		return ctl_fail(err, CTL_E_PERM,
				"kernel.yama.ptrace_scope is 1: pid %d is not a "
				"descendant of the client (pid %d), and the client lacks "
				"CAP_SYS_PTRACE",
				pid, p->pid);
	return same_user_may(p, pid, f, err);
}

/* The facts the rules need, read the way the checks would read them (only what they need). */
static int check_rules(const struct svc_peer *p, pid_t pid, const struct proc_status *st,
		       struct ctl_error *err)
{
	struct svc_auth_facts f = {
	    .tgid = st->tgid,
	    .state = st->state,
	    .kthread = st->kthread,
	    .cap_prm = st->cap_prm,
	    .yama_scope = yama_scope(),
	};

	memcpy(f.uid, st->uid, sizeof(f.uid));
	memcpy(f.gid, st->gid, sizeof(f.gid));
	f.ancestor = f.yama_scope == 1 && !p->cap_ptrace && is_ancestor(p->pid, pid);
	f.dumpable = dumpable(pid, st);
	return svc_auth_decide(p, pid, &f, err);
}

int svc_may_snapshot(const struct svc_peer *peer, pid_t pid, int *ret_pidfd,
		     struct ctl_error *err)
{
	struct proc_status st;
	int pidfd = pidfd_open(pid), r;

	if (pidfd == -ESRCH)
		return ctl_fail(err, CTL_E_NOTFOUND, "there is no process with pid %d", pid);
	if (pidfd < 0 && pidfd != -EINVAL) /* EINVAL: pid is a thread, not a process */
		return ctl_fail(err, CTL_E_GENERIC, "cannot open pid %d: %s", pid,
				strerror(-pidfd));
	r = read_status(pid, &st);
	if (r < 0) {
		ctl_fail(err, CTL_E_NOTFOUND, "there is no process with pid %d", pid);
		goto out;
	}
	r = check_rules(peer, pid, &st, err);
	if (r >= 0 && pidfd < 0) /* a thread to pidfd_open(), a process to /proc: it changed */
		r = ctl_fail(err, CTL_E_NOTFOUND, "pid %d changed while it was being checked", pid);
	if (r >= 0 && !pidfd_alive(pidfd))
		r = ctl_fail(err, CTL_E_NOTFOUND, "pid %d exited while it was being checked", pid);
	if (r >= 0) { /* the job attaches only to this process, whatever its pid names then */
		*ret_pidfd = pidfd;
		pidfd = -EBADF;
	}
out:
	if (pidfd >= 0)
		close(pidfd);
	return r;
}
