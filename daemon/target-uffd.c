/* SPDX-License-Identifier: MIT */
/*
 * Why this dance: the userfaultfd(2) syscall would check the *target's* privileges
 * (vm.unprivileged_userfaultfd) and may be denied by its seccomp filter, and
 * UFFD_USER_MODE_ONLY would make kernel-mode writes into protected memory fail with EFAULT.
 * An fd of /dev/userfaultfd carries the daemon's right to create a full userfaultfd: the ioctl
 * USERFAULTFD_IOC_NEW on it makes one for the caller's mm without further checks
 * (fs/userfaultfd.c: userfaultfd_dev_ioctl() -> new_userfaultfd()). So the daemon hands the
 * target that fd over a socketpair it made the target create, lets the target run the ioctl,
 * and takes the new userfaultfd out with pidfd_getfd().
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "linux-compat.h"
#include "target-inject.h"
#include "target-uffd.h"

#define SCRATCH_LEN 4096
/* Layout of the scratch page in the target. */
#define SCRATCH_FDS    0   /* int[2] written by socketpair() */
#define SCRATCH_MSGHDR 64  /* struct msghdr for recvmsg() */
#define SCRATCH_IOV    128 /* its one iovec */
#define SCRATCH_DATA   192 /* the one payload byte */
#define SCRATCH_CMSG   256 /* control buffer, CMSG_SPACE(sizeof(int)) */
#define SCRATCH_USED   512
/* The largest syscall return value that is an error: -4095..-1 (include/linux/err.h). */
#define MAX_ERRNO 4095

_Static_assert(SCRATCH_MSGHDR >= SCRATCH_FDS + 2 * sizeof(int), "layout");
_Static_assert(SCRATCH_IOV >= SCRATCH_MSGHDR + sizeof(struct msghdr), "layout");
_Static_assert(SCRATCH_DATA >= SCRATCH_IOV + sizeof(struct iovec), "layout");
_Static_assert(SCRATCH_USED >= SCRATCH_CMSG + CMSG_SPACE(sizeof(int)), "layout");

/* What has been made so far, in the target (r*) and here (l*), so that it can be undone. */
struct uffd_job {
	struct target *t;
	const struct target_uffd_hooks *hooks;
	struct target_uffd_step step; /* the one running */
	uint64_t scratch; /* 0: not mapped */
	int rsock[2];
	int rdev;
	int ruffd;
	int lsock;
	int luffd;
};

/* Every step is bracketed by step_begin() and step_end(), for the hooks. */
static int step_begin(struct uffd_job *j, const char *name, bool remote)
{
	j->step = (struct target_uffd_step){
	    .index = j->step.index + (j->step.name != NULL),
	    .name = name,
	    .remote = remote,
	    .phase = TARGET_UFFD_BEFORE,
	};
	return j->hooks ? j->hooks->step(j->hooks->arg, &j->step) : 0;
}

static int step_end(struct uffd_job *j, int r)
{
	if (r < 0 || !j->hooks)
		return r;
	j->step.phase = TARGET_UFFD_AFTER;
	return j->hooks->step(j->hooks->arg, &j->step);
}

/*
 * Run a syscall in the target; its -errno result becomes ours. A successful result is stored
 * in *ret_result before anything else can fail, so that the caller can record what to undo.
 */
static int remote(struct uffd_job *j, const char *name, long nr, long a0, long a1, long a2,
		  long a3, long a4, long a5, long *ret_result)
{
	const long args[6] = {a0, a1, a2, a3, a4, a5};
	long result;
	int r = step_begin(j, name, true);

	if (r == 0)
		r = target_inject_syscall(j->t, nr, args, &result);
	if (r < 0)
		return r;
	if (result < 0 && result >= -MAX_ERRNO)
		return (int)result;
	if (ret_result)
		*ret_result = result;
	return step_end(j, 0);
}

/* Like remote(): *ret_fd is set as soon as the fd exists. */
static int pull_fd(struct uffd_job *j, const char *name, int remote_fd, int *ret_fd)
{
	int fd, r = step_begin(j, name, false);

	if (r < 0)
		return r;
	/* pidfd_getfd() always sets FD_CLOEXEC on the new fd (kernel/pid.c). */
	fd = (int)syscall(SYS_pidfd_getfd, target_pidfd(j->t), remote_fd, 0);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return step_end(j, 0);
}

static int job_scratch(struct uffd_job *j)
{
	long addr;
	int r = remote(j, "mmap", SYS_mmap, 0, SCRATCH_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &addr);

	if (r < 0)
		return r;
	j->scratch = (uint64_t)addr;
	return 0;
}

static int job_socketpair(struct uffd_job *j)
{
	int fds[2];
	int r;

	r = remote(j, "socketpair", SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
		   (long)(j->scratch + SCRATCH_FDS), 0, 0, NULL);
	if (r < 0)
		return r;
	r = target_mem_read(j->t, j->scratch + SCRATCH_FDS, fds, sizeof(fds));
	if (r < 0)
		return r;
	j->rsock[0] = fds[0];
	j->rsock[1] = fds[1];
	return pull_fd(j, "pidfd_getfd socket", fds[0], &j->lsock);
}

static int job_send_dev(struct uffd_job *j, int devuffd_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control = {0};
	char byte = 'U';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = control.buf,
	    .msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &devuffd_fd, sizeof(int));
	if (sendmsg(j->lsock, &msg, MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

/* Lay out a msghdr in the scratch page (target addresses), recvmsg() there, read it back. */
static int job_recv_dev(struct uffd_job *j)
{
	uint8_t page[SCRATCH_USED] = {0};
	struct msghdr msg = {
	    .msg_iov = (void *)(uintptr_t)(j->scratch + SCRATCH_IOV),
	    .msg_iovlen = 1,
	    .msg_control = (void *)(uintptr_t)(j->scratch + SCRATCH_CMSG),
	    .msg_controllen = CMSG_SPACE(sizeof(int)),
	};
	struct iovec iov = {.iov_base = (void *)(uintptr_t)(j->scratch + SCRATCH_DATA),
			    .iov_len = 1};
	struct cmsghdr cmsg;
	int r;

	memcpy(page + SCRATCH_MSGHDR, &msg, sizeof(msg));
	memcpy(page + SCRATCH_IOV, &iov, sizeof(iov));
	r = target_mem_write(j->t, j->scratch, page, sizeof(page));
	if (r < 0)
		return r;
	r = remote(j, "recvmsg", SYS_recvmsg, j->rsock[1], (long)(j->scratch + SCRATCH_MSGHDR),
		   MSG_CMSG_CLOEXEC | MSG_DONTWAIT, 0, 0, 0, NULL);
	if (r < 0)
		return r;
	r = target_mem_read(j->t, j->scratch, page, sizeof(page));
	if (r < 0)
		return r;
	memcpy(&msg, page + SCRATCH_MSGHDR, sizeof(msg));
	memcpy(&cmsg, page + SCRATCH_CMSG, sizeof(cmsg));
	/* MSG_CTRUNC: the target could not take the fd (RLIMIT_NOFILE reached). */
	if (msg.msg_flags & MSG_CTRUNC)
		return -EMFILE;
	if (msg.msg_controllen < CMSG_LEN(sizeof(int)) || cmsg.cmsg_level != SOL_SOCKET ||
	    cmsg.cmsg_type != SCM_RIGHTS || cmsg.cmsg_len != CMSG_LEN(sizeof(int)))
		return -EPROTO;
	memcpy(&j->rdev, page + SCRATCH_CMSG + CMSG_LEN(0), sizeof(int));
	return 0;
}

static int job_new_uffd(struct uffd_job *j)
{
	long fd;
	int r;

	r = remote(j, "ioctl USERFAULTFD_IOC_NEW", SYS_ioctl, j->rdev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK, 0, 0, 0,
		   &fd);
	if (r < 0)
		return r;
	j->ruffd = (int)fd;
	return pull_fd(j, "pidfd_getfd uffd", j->ruffd, &j->luffd);
}

static int remote_close(struct uffd_job *j, int *fd)
{
	int r = 0;

	if (*fd >= 0)
		r = remote(j, "close", SYS_close, *fd, 0, 0, 0, 0, 0, NULL);
	*fd = -EBADF;
	return r;
}

/*
 * Undo everything in the target. Its copy of the userfaultfd goes too: then the daemon's fd is
 * the last reference, and if the daemon dies the kernel releases the context, which drops all
 * protection and wakes every blocked thread (userfaultfd_release()).
 */
static int job_cleanup(struct uffd_job *j)
{
	int r = 0, k;

	k = remote_close(j, &j->ruffd);
	r = r ?: k;
	k = remote_close(j, &j->rdev);
	r = r ?: k;
	k = remote_close(j, &j->rsock[0]);
	r = r ?: k;
	k = remote_close(j, &j->rsock[1]);
	r = r ?: k;
	if (j->scratch) {
		k = remote(j, "munmap", SYS_munmap, (long)j->scratch, SCRATCH_LEN, 0, 0, 0, 0, NULL);
		r = r ?: k;
		j->scratch = 0;
	}
	if (j->lsock >= 0)
		close(j->lsock);
	j->lsock = -EBADF;
	return r;
}

int target_uffd_create(struct target *t, int devuffd_fd, int *ret_uffd)
{
	return target_uffd_create_hooked(t, devuffd_fd, NULL, ret_uffd);
}

int target_uffd_create_hooked(struct target *t, int devuffd_fd,
			      const struct target_uffd_hooks *hooks, int *ret_uffd)
{
	struct uffd_job j = {
	    .t = t,
	    .hooks = hooks,
	    .rsock = {-EBADF, -EBADF},
	    .rdev = -EBADF,
	    .ruffd = -EBADF,
	    .lsock = -EBADF,
	    .luffd = -EBADF,
	};
	int r, k;

	r = job_scratch(&j);
	if (r < 0)
		goto out;
	r = job_socketpair(&j);
	if (r < 0)
		goto out;
	r = job_send_dev(&j, devuffd_fd);
	if (r < 0)
		goto out;
	r = job_recv_dev(&j);
	if (r < 0)
		goto out;
	r = job_new_uffd(&j);
out:
	k = job_cleanup(&j);
	if (r >= 0)
		r = k;
	if (r < 0) {
		if (j.luffd >= 0)
			close(j.luffd);
		return r;
	}
	*ret_uffd = j.luffd;
	return 0;
}
