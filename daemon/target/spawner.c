/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/linux-compat.h"
#include "target/holder-internal.h"
#include "target/holder.h"
#include "target/spawner.h"

/* One request: fork a holder. The fds ride along (SCM_RIGHTS): sock, then devfd and pidfd if
 * present. The reply: err (a positive errno, or 0) with the holder's pidfd attached. */
struct spawn_req {
	pid_t pid;
	int has_devfd, has_pidfd;
	int registers; /* holder_child_main()'s */
};

struct spawn_reply {
	int err;
};

/* The daemon's side: the spawner's socket and pid, and the lock that pairs a request with
 * its reply when several jobs start holders at once. */
static pthread_mutex_t spawner_lock = PTHREAD_MUTEX_INITIALIZER;
static int spawner_sock = -EBADF;
static pid_t spawner_pid;

int holder_sendmsg(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(HOLDER_MAX_FDS * sizeof(int))] = {0};
	struct iovec iov = {(void *)buf, len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

	if (nfds > 0) {
		struct cmsghdr *c;

		m.msg_control = cbuf;
		m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* One message of exactly len bytes, and up to HOLDER_MAX_FDS fds (*ret_nfds). 0: the peer is
 * gone. Every fd received is closed on failure. */
static int recv_with_fds(int sock, void *buf, size_t len, int *fds, int *ret_nfds)
{
	char cbuf[CMSG_SPACE(HOLDER_MAX_FDS * sizeof(int))];
	struct iovec iov = {buf, len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			   .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;
	ssize_t n;
	int nfds = 0;

	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	c = CMSG_FIRSTHDR(&m);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
		nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(fds, CMSG_DATA(c), nfds * sizeof(int));
	}
	*ret_nfds = nfds;
	if (n == 0 || (size_t)n != len || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		*ret_nfds = 0;
		return n == 0 ? 0 : -EPROTO;
	}
	return 1;
}

/* Closes every fd from 3 up but those in keep (-EBADF entries are ignored). */
static void close_all_but(const int *keep, size_t n)
{
	unsigned from = 3;

	for (;;) {
		int next = -1; /* the lowest fd to keep at or above from */

		for (size_t i = 0; i < n; i++)
			if (keep[i] >= (int)from && (next < 0 || keep[i] < next))
				next = keep[i];
		if (next < 0)
			break;
		if ((unsigned)next > from)
			syscall(SYS_close_range, from, next - 1, 0);
		from = next + 1;
	}
	syscall(SYS_close_range, from, ~0u, 0);
}

/* In the spawner: forks one holder; replies with its pidfd or why not. */
static void spawn_one(int sock, const struct spawn_req *rq, const int *fds, int nfds,
		      bool may_thread)
{
	int hsock, devfd, tpidfd, pidfd = -EBADF;
	struct spawn_reply rp = {0};
	pid_t c;

	if (nfds != 1 + !!rq->has_devfd + !!rq->has_pidfd) {
		rp.err = EPROTO;
		goto reply;
	}
	hsock = fds[0];
	devfd = rq->has_devfd ? fds[1] : -EBADF;
	tpidfd = rq->has_pidfd ? fds[1 + !!rq->has_devfd] : -EBADF;
	c = fork();
	if (c == 0) {
		int keep[3] = {hsock, devfd, tpidfd};
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close_all_but(keep, 3); /* our socket and signalfd too */
		_exit(holder_child_main(hsock, rq->pid, tpidfd, devfd, rq->registers, may_thread));
	}
	if (c < 0)
		rp.err = errno;
	else if ((pidfd = (int)syscall(SYS_pidfd_open, c, 0)) < 0)
		rp.err = errno; /* the daemon closes its end: the holder releases and ends */
reply:
	holder_sendmsg(sock, &rp, sizeof(rp), &pidfd, pidfd >= 0);
	if (pidfd >= 0)
		close(pidfd);
}

/*
 * The spawner's whole life: async-signal-safe calls only, no allocation (spawner.h). single:
 * the process it was forked from had one thread, so its holders may start threads.
 */
static void spawner_main(int sock, bool single)
{
	struct pollfd p[2] = {{.fd = sock, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
	sigset_t chld;

	holder_isolate();
	prctl(PR_SET_NAME, "uffsnapd-spawn");
	/* Its children are reaped when they end (SIGCHLD through a signalfd), not before: the
	 * pidfd it takes of each right after fork() must not name a reused pid. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	signal(SIGCHLD, SIG_DFL);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	p[1].fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	for (;;) {
		struct signalfd_siginfo si;
		struct spawn_req rq;
		int fds[HOLDER_MAX_FDS], nfds, k;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			while (read(p[1].fd, &si, sizeof(si)) > 0)
				;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (!p[0].revents)
			continue;
		k = recv_with_fds(sock, &rq, sizeof(rq), fds, &nfds);
		if (k == 0 || (k < 0 && k != -EPROTO))
			break; /* the daemon is gone */
		if (k > 0)
			spawn_one(sock, &rq, fds, nfds, single);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
	}
	_exit(0);
}

/*
 * Does this process have a single thread? (/proc/self/stat num_threads, the 18th field after
 * the command's closing parenthesis.) No allocation: a spawner restarted from a job's thread
 * is forked right after. False if it cannot tell.
 */
static bool single_threaded(void)
{
	char buf[1024], *p;
	ssize_t n;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC), field = 2;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	p = strrchr(buf, ')');
	for (; p && *p && field < 20; p++)
		field += *p == ' ';
	return p && field == 20 && p[0] == '1' && p[1] == ' ';
}

static int start_locked(void)
{
	bool single = single_threaded();
	int sv[2];
	pid_t c;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	c = fork();
	if (c < 0) {
		int k = -errno;

		close(sv[0]);
		close(sv[1]);
		return k;
	}
	if (c == 0) {
		int keep[1] = {sv[1]};

		close_all_but(keep, 1);
		spawner_main(sv[1], single);
	}
	close(sv[1]);
	spawner_sock = sv[0];
	spawner_pid = c;
	return 0;
}

static void stop_locked(void)
{
	if (spawner_sock >= 0)
		close(spawner_sock);
	if (spawner_pid > 0)
		while (waitpid(spawner_pid, NULL, 0) < 0 && errno == EINTR)
			;
	spawner_sock = -EBADF;
	spawner_pid = 0;
}

int holder_spawner_start(void)
{
	int k = 0;

	pthread_mutex_lock(&spawner_lock);
	if (spawner_sock < 0)
		k = start_locked();
	pthread_mutex_unlock(&spawner_lock);
	return k;
}

void holder_spawner_stop(void)
{
	pthread_mutex_lock(&spawner_lock);
	stop_locked();
	pthread_mutex_unlock(&spawner_lock);
}

/* One request and its reply. -EPIPE: the spawner is gone. */
static int ask_locked(const struct spawn_req *rq, const int *fds, int nfds, int *ret_pidfd)
{
	struct spawn_reply rp;
	int got[HOLDER_MAX_FDS], ngot = 0, k;

	k = holder_sendmsg(spawner_sock, rq, sizeof(*rq), fds, nfds);
	if (k < 0)
		return k == -ECONNRESET ? -EPIPE : k;
	k = recv_with_fds(spawner_sock, &rp, sizeof(rp), got, &ngot);
	if (k <= 0)
		return k == 0 || k == -ECONNRESET ? -EPIPE : k;
	if (rp.err || ngot != 1) {
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		return rp.err ? -rp.err : -EPROTO;
	}
	*ret_pidfd = got[0];
	return 0;
}

int holder_spawn(int sock, pid_t pid, int pidfd, int devfd, bool registers, int *ret_pidfd)
{
	struct spawn_req rq = {
	    .pid = pid, .has_devfd = devfd >= 0, .has_pidfd = pidfd >= 0, .registers = registers};
	int fds[HOLDER_MAX_FDS], nfds = 0, k;

	fds[nfds++] = sock;
	if (devfd >= 0)
		fds[nfds++] = devfd;
	if (pidfd >= 0)
		fds[nfds++] = pidfd;
	pthread_mutex_lock(&spawner_lock);
	k = spawner_sock < 0 ? start_locked() : 0;
	if (k >= 0)
		k = ask_locked(&rq, fds, nfds, ret_pidfd);
	if (k == -EPIPE) { /* someone killed it: start another, from this thread (spawner.h) */
		stop_locked();
		k = start_locked();
		if (k >= 0)
			k = ask_locked(&rq, fds, nfds, ret_pidfd);
	}
	pthread_mutex_unlock(&spawner_lock);
	return k;
}
