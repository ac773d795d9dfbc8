/* SPDX-License-Identifier: MIT */
/*
 * Why this dance: the userfaultfd(2) syscall would check the *target's* privileges
 * (vm.unprivileged_userfaultfd) and may be denied by its seccomp filter, and
 * UFFD_USER_MODE_ONLY would make kernel-mode writes into protected memory fail with EFAULT.
 * An fd of /dev/userfaultfd carries the daemon's right to create a full userfaultfd: the ioctl
 * USERFAULTFD_IOC_NEW on it makes one for the caller's mm without further checks
 * (fs/userfaultfd.c: userfaultfd_dev_ioctl() -> new_userfaultfd()). So the daemon hands the
 * target that fd over a socket it made the target create, lets the target run the ioctl,
 * and takes the new userfaultfd out with pidfd_getfd().
 *
 * Each injected syscall is a window in which a thread of the target holds registers that are
 * not its own (if the daemon dies then, the target crashes), so there are as few as the job
 * allows: mmap, socket, recvmsg, ioctl, close_range, munmap. One datagram socket connected to
 * itself rather than a socketpair: its fd comes back in rax (a socketpair's fds would have to
 * be read back from target memory, one more step that can fail with them open), and the
 * three fds made in the target are usually consecutive, closed by one close_range().
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "sys/linux-compat.h"
#include "target/inject.h"
#include "target/uffd.h"

#define SCRATCH_LEN 4096
/* Layout of the scratch page in the target. */
#define SCRATCH_MSGHDR 64  /* struct msghdr for recvmsg() */
#define SCRATCH_IOV    128 /* its one iovec */
#define SCRATCH_DATA   192 /* the one payload byte */
#define SCRATCH_CMSG   256 /* control buffer, CMSG_SPACE(sizeof(int)) */
#define SCRATCH_USED   512
/* The largest syscall return value that is an error: -4095..-1 (include/linux/err.h). */
#define MAX_ERRNO 4095
/* Datagrams a stranger may have queued on the socket before it was connected: at most
 * net.unix.max_dgram_qlen (default 10) at a time, so a few more than that. */
#define DRAIN_MAX 64
#define DRAIN_FDS 16 /* fds per drained datagram taken and closed; the kernel drops the rest */

_Static_assert(SCRATCH_IOV >= SCRATCH_MSGHDR + sizeof(struct msghdr), "layout");
_Static_assert(SCRATCH_DATA >= SCRATCH_IOV + sizeof(struct iovec), "layout");
_Static_assert(SCRATCH_USED >= SCRATCH_CMSG + CMSG_SPACE(sizeof(int)), "layout");

/* What has been made so far, in the target (r*) and here (l*), so that it can be undone. */
struct uffd_job {
	struct target *t;
	const struct target_uffd_hooks *hooks;
	struct target_uffd_step step; /* the one running */
	bool ran;		      /* the last injected syscall ran (whatever it returned) */
	bool received;		      /* recvmsg() ran: rdev may be open, unknown until read */
	uint64_t scratch;	      /* 0: not mapped */
	int rsock;
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

	j->ran = false;
	if (r == 0)
		r = target_inject_syscall(j->t, nr, args, &result);
	if (r < 0)
		return r;
	j->ran = true;
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
	long addr = 0;
	int r = remote(j, "mmap", SYS_mmap, 0, SCRATCH_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &addr);

	if (addr > 0)
		j->scratch = (uint64_t)addr;
	return r;
}

static int job_socket(struct uffd_job *j)
{
	long fd = -1;
	int r = remote(j, "socket", SYS_socket, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, 0, 0, 0,
		       &fd);

	if (fd >= 0)
		j->rsock = (int)fd;
	if (r < 0)
		return r;
	return pull_fd(j, "pidfd_getfd socket", j->rsock, &j->lsock);
}

/* Take every queued datagram and close the fds it carried. */
static int drain(int fd)
{
	for (int i = 0; i < DRAIN_MAX; i++) {
		union {
			char buf[CMSG_SPACE(DRAIN_FDS * sizeof(int))];
			struct cmsghdr align;
		} control;
		char byte;
		struct iovec iov = {.iov_base = &byte, .iov_len = 1};
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
				   .msg_controllen = sizeof(control.buf)};

		if (recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) < 0)
			return errno == EAGAIN ? 0 : -errno;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t k = 0; c->cmsg_type == SCM_RIGHTS && k < n; k++) {
				int dropped;

				memcpy(&dropped, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
				close(dropped);
			}
		}
	}
	return -EBUSY;
}

/*
 * From here on only the socket itself may send to it: a connected datagram socket takes
 * datagrams from its peer only (net/unix/af_unix.c: unix_may_send()). Connecting needs an
 * address, an autobound abstract one in the target's network namespace; whatever another
 * process sent to it before the connect is thrown away.
 */
static int job_connect_self(struct uffd_job *j)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	socklen_t len = sizeof(sa_family_t); /* just the family: autobind */
	int r = step_begin(j, "connect to itself", false);

	if (r < 0)
		return r;
	if (bind(j->lsock, (struct sockaddr *)&addr, len) < 0)
		return -errno;
	len = sizeof(addr);
	if (getsockname(j->lsock, (struct sockaddr *)&addr, &len) < 0 ||
	    connect(j->lsock, (struct sockaddr *)&addr, len) < 0)
		return -errno;
	return step_end(j, drain(j->lsock));
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
	int r = step_begin(j, "sendmsg", false);

	if (r < 0)
		return r;
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &devuffd_fd, sizeof(int));
	if (sendmsg(j->lsock, &msg, MSG_NOSIGNAL) < 0)
		return -errno;
	return step_end(j, 0);
}

/* Lay out a msghdr in the scratch page (target addresses) and recvmsg() there. */
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
	long n = -1;
	int r = step_begin(j, "write msghdr", false);

	if (r < 0)
		return r;
	memcpy(page + SCRATCH_MSGHDR, &msg, sizeof(msg));
	memcpy(page + SCRATCH_IOV, &iov, sizeof(iov));
	r = step_end(j, target_mem_write(j->t, j->scratch, page, sizeof(page)));
	if (r < 0)
		return r;
	r = remote(j, "recvmsg", SYS_recvmsg, j->rsock, (long)(j->scratch + SCRATCH_MSGHDR),
		   MSG_CMSG_CLOEXEC | MSG_DONTWAIT, 0, 0, 0, &n);
	j->received = n >= 0;
	return r;
}

/*
 * Read what recvmsg() wrote. The fd it received is recorded before anything is checked, so
 * that cleanup closes it whatever the checks say. Only our datagram can have arrived
 * (job_connect_self()), with one fd.
 */
static int job_read_dev(struct uffd_job *j)
{
	uint8_t page[SCRATCH_USED];
	struct msghdr msg;
	struct cmsghdr cmsg;
	int r = step_begin(j, "read recvmsg result", false);

	if (r == 0)
		r = target_mem_read(j->t, j->scratch, page, sizeof(page));
	if (r < 0)
		return r;
	j->received = false;
	memcpy(&msg, page + SCRATCH_MSGHDR, sizeof(msg));
	memcpy(&cmsg, page + SCRATCH_CMSG, sizeof(cmsg));
	if (msg.msg_controllen >= CMSG_LEN(sizeof(int)) && cmsg.cmsg_level == SOL_SOCKET &&
	    cmsg.cmsg_type == SCM_RIGHTS && cmsg.cmsg_len >= CMSG_LEN(sizeof(int)))
		memcpy(&j->rdev, page + SCRATCH_CMSG + CMSG_LEN(0), sizeof(int));
	r = step_end(j, 0); /* a fault here: a check below failing with the fd received */
	if (r < 0)
		return r;
	/* MSG_CTRUNC: the target could not take the fd (RLIMIT_NOFILE reached). */
	if (msg.msg_flags & MSG_CTRUNC)
		return -EMFILE;
	if (j->rdev < 0 || cmsg.cmsg_len != CMSG_LEN(sizeof(int)))
		return -EPROTO;
	return 0;
}

static int job_new_uffd(struct uffd_job *j)
{
	long fd = -1;
	int r = remote(j, "ioctl USERFAULTFD_IOC_NEW", SYS_ioctl, j->rdev, USERFAULTFD_IOC_NEW,
		       O_CLOEXEC | O_NONBLOCK, 0, 0, 0, &fd);

	if (fd >= 0)
		j->ruffd = (int)fd;
	if (r < 0)
		return r;
	return pull_fd(j, "pidfd_getfd uffd", j->ruffd, &j->luffd);
}

/*
 * One undo in the target. Tried once more if it could not run at all (the injection failed:
 * if the thread it ran on was killed, inject_pick() takes another); one that ran is done,
 * whatever it returned (close() releases the fd even when it reports an error).
 */
static int undo(struct uffd_job *j, const char *name, long nr, long a0, long a1, long a2)
{
	int r = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		r = remote(j, name, nr, a0, a1, a2, 0, 0, 0, NULL);
		if (r == 0 || j->ran)
			break;
	}
	return r;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/*
 * Close the fds made in the target, a run of consecutive ones with one close_range() (the
 * target is stopped: no fd in such a run is anybody else's). close_range() (5.9) is older
 * than USERFAULTFD_IOC_NEW (6.1).
 */
static int job_close_remote(struct uffd_job *j)
{
	int fds[3] = {j->rsock, j->rdev, j->ruffd}, r = 0;

	qsort(fds, 3, sizeof(fds[0]), cmp_int);
	for (int i = 0; i < 3;) {
		int k, n = 1;

		if (fds[i] < 0) {
			i++;
			continue;
		}
		while (i + n < 3 && fds[i + n] == fds[i] + n)
			n++;
		if (n == 1)
			k = undo(j, "close", SYS_close, fds[i], 0, 0);
		else
			k = undo(j, "close_range", SYS_close_range, fds[i], fds[i + n - 1], 0);
		r = r ?: k;
		i += n;
	}
	j->rsock = j->rdev = j->ruffd = -EBADF;
	return r;
}

/*
 * Undo everything in the target. Its copy of the userfaultfd goes too: then the daemon's fd is
 * the last reference, and if the daemon dies the kernel releases the context, which drops all
 * protection and wakes every blocked thread (userfaultfd_release()).
 */
static int job_cleanup(struct uffd_job *j)
{
	int r, k;

	if (j->received)
		job_read_dev(j); /* recvmsg() ran but its result was not read: learn rdev */
	r = job_close_remote(j);
	if (j->scratch) {
		k = undo(j, "munmap", SYS_munmap, (long)j->scratch, SCRATCH_LEN, 0);
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
	    .rsock = -EBADF,
	    .rdev = -EBADF,
	    .ruffd = -EBADF,
	    .lsock = -EBADF,
	    .luffd = -EBADF,
	};
	int r, k;

	r = job_scratch(&j);
	if (r == 0)
		r = job_socket(&j);
	if (r == 0)
		r = job_connect_self(&j);
	if (r == 0)
		r = job_send_dev(&j, devuffd_fd);
	if (r == 0)
		r = job_recv_dev(&j);
	if (r == 0)
		r = job_read_dev(&j);
	if (r == 0)
		r = job_new_uffd(&j);
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
