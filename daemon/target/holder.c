/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <time.h>
#include <sched.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/clock.h"
#include "target/attach.h"
#include "target/holder-internal.h"
#include "target/holder.h"
#include "target/spawner.h"
#include "target/regs.h"
#include "target/uffd.h"

/* Largest message accepted: the registers of every thread as JSON, ~6 KiB a thread. */
#define HOLDER_MSG_MAX (256u << 20)
#define HOLDER_CMD_RELEASE 'R'
#define HOLDER_CMD_HOLD 'H'
#define HOLDER_CMD_UFFD 'U'

struct holder {
	int pidfd; /* the holder's: readable once it has exited */
	int sock;
};

/*
 * Messages: one datagram of text (commands, replies, errors: short), or the holder's info
 * (send_info(): megabytes at hundreds of threads, more than a datagram holds, which the
 * socket's send buffer bounds to ~200 KiB): the marker HOLDER_MSG_IN_MEMFD with the text in a
 * sealed memfd attached. Up to two fds ride along (SCM_RIGHTS): the memfd first, then the fd
 * the message carries.
 */
#define HOLDER_MSG_INLINE_MAX 4096
#define HOLDER_MSG_IN_MEMFD "@memfd"

static int send_fds(int sock, const char *text, const int *fds, int nfds)
{
	return holder_sendmsg(sock, text, strlen(text) + 1, fds, nfds);
}

/* Sends a short text (< HOLDER_MSG_INLINE_MAX), with fd attached when fd >= 0. */
static int send_msg(int sock, const char *text, int fd)
{
	if (strlen(text) >= HOLDER_MSG_INLINE_MAX)
		return -EMSGSIZE;
	return send_fds(sock, text, &fd, fd >= 0);
}

/* Reads the whole of a memfd the holder sent into a new NUL-ended string. */
static int memfd_to_text(int mfd, char **ret)
{
	struct stat st;
	char *buf;
	size_t done = 0;

	if (fstat(mfd, &st) < 0)
		return -errno;
	if (st.st_size <= 0 || (uint64_t)st.st_size > HOLDER_MSG_MAX)
		return -EMSGSIZE;
	buf = malloc(st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (done < (size_t)st.st_size) {
		ssize_t n = pread(mfd, buf + done, st.st_size - done, done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -EIO;
		}
		done += n;
	}
	buf[done] = 0;
	*ret = buf;
	return 0;
}

/*
 * Receives one message into a new string (*ret_text; free it) and maybe an fd. 0: the peer is
 * gone.
 */
static ssize_t recv_msg(int sock, char **ret_text, int *ret_fd)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))], small[HOLDER_MSG_INLINE_MAX + 1];
	struct iovec iov = {small, sizeof(small) - 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			   .msg_controllen = sizeof(cbuf)};
	int fds[2] = {-EBADF, -EBADF}, nfds = 0, k = 0;
	struct cmsghdr *c;
	ssize_t n;

	if (ret_fd)
		*ret_fd = -EBADF;
	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n < 0 ? -errno : 0;
	small[n] = 0;
	c = CMSG_FIRSTHDR(&m);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
		nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(fds, CMSG_DATA(c), (nfds > 2 ? 2 : nfds) * sizeof(int));
	}
	if (!strcmp(small, HOLDER_MSG_IN_MEMFD) && nfds >= 1) {
		k = memfd_to_text(fds[0], ret_text);
		close(fds[0]);
		fds[0] = fds[1];
		fds[1] = -EBADF;
	} else {
		*ret_text = strdup(small);
		k = *ret_text ? 0 : -ENOMEM;
	}
	if (k >= 0 && ret_fd) {
		*ret_fd = fds[0];
		fds[0] = -EBADF;
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return k < 0 ? k : n;
}

/* The info's head: {"ok":true, "nthreads":N, "stack_addrs":[...], "held_at":NS}. */
static json_t *info_head(struct target *t, uint64_t held_at)
{
	json_t *addrs = json_array();

	if (!addrs)
		return NULL;
	for (size_t i = 0; i < target_nthreads(t); i++) {
		const struct target_thread *th = target_thread_at(t, i);

		if (th->gone)
			continue;
		json_array_append_new(addrs, json_integer((json_int_t)th->regs.rsp));
		/* The main thread's TLS may sit in the heap; its exit is the process's exit. */
		if (th->tid != target_pid(t))
			json_array_append_new(addrs, json_integer((json_int_t)th->regs.fs_base));
	}
	return json_pack("{s:b, s:o, s:i, s:I}", "ok", 1, "stack_addrs", addrs, "nthreads",
			 (int)target_nthreads(t), "held_at", (json_int_t)held_at);
}

static void send_error(int sock, int err, const char *msg)
{
	json_t *j = json_pack("{s:b, s:i, s:s}", "ok", 0, "errno", -err, "msg", msg);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (text)
		send_msg(sock, text, -1);
	free(text);
	json_decref(j);
}

/*
 * The info's text in a sealed memfd: the head, a newline, the registers' JSON (or an empty
 * array without registers). Written in place through a mapping populated up front: megabytes
 * at hundreds of threads, in the hold, with no buffer growth, no page faults one by one and no
 * copy. The memfd, or -errno.
 */
static int info_memfd(const char *head, const struct target *t, bool registers)
{
	size_t hlen = strlen(head), len;
	size_t cap = hlen + 1 + (registers ? target_regs_json_size(t) : sizeof("[]"));
	int mfd = memfd_create("uffsnapd-hold", MFD_CLOEXEC | MFD_ALLOW_SEALING), k;
	char *m;

	if (mfd < 0)
		return -errno;
	m = ftruncate(mfd, cap) < 0 ? MAP_FAILED
				    : mmap(NULL, cap, PROT_READ | PROT_WRITE,
					   MAP_SHARED | MAP_POPULATE, mfd, 0);
	if (m == MAP_FAILED) {
		k = -errno;
		close(mfd);
		return k;
	}
	memcpy(m, head, hlen);
	m[hlen] = '\n';
	if (registers)
		len = target_regs_json_put(t, m + hlen + 1) - m;
	else
		len = hlen + 1 + sprintf(m + hlen + 1, "[]");
	munmap(m, cap);
	if (ftruncate(mfd, len) < 0) {
		k = -errno;
		close(mfd);
		return k;
	}
	fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	return mfd;
}

/*
 * Sends the held threads' stack addresses, then a newline and their registers as JSON text
 * (the daemon parses only the head; without registers, an empty array), with fd attached if
 * >= 0.
 */
static int send_info(int sock, struct target *t, uint64_t held_at, int fd, bool registers)
{
	json_t *head = info_head(t, held_at);
	char *htext = head ? json_dumps(head, JSON_COMPACT) : NULL;
	int mfd = htext ? info_memfd(htext, t, registers) : -ENOMEM, k = mfd;

	if (mfd >= 0) {
		int fds[2] = {mfd, fd};

		k = send_fds(sock, HOLDER_MSG_IN_MEMFD, fds, fd >= 0 ? 2 : 1);
		close(mfd);
	}
	json_decref(head);
	free(htext);
	return k;
}

/*
 * After the first hold: obeys "release", "hold" (attach again, report registers) and "uffd"
 * (while held: create another userfaultfd) until the
 * daemon closes the socket, then lets the target go if it still holds it.
 */
/* While held: one more userfaultfd in the target, sent with "ok" (or an error). */
static int serve_new_uffd(int sock, struct target *t, int devfd)
{
	int uffd = -EBADF, k = target_uffd_create(t, devfd, &uffd);

	if (k < 0) {
		char msg[160];

		snprintf(msg, sizeof(msg), "cannot create another userfaultfd in pid %d: %s",
			 target_pid(t), strerror(-k));
		send_error(sock, k, msg);
		return 0;
	}
	k = send_msg(sock, "ok", uffd);
	close(uffd);
	return k;
}

/*
 * One hold: attach to pid (pinned by pidfd) and, when the image takes this hold's registers,
 * read every thread's FP and signal state too. On failure the target is let go and terr says
 * why.
 */
static int hold_threads(pid_t pid, int pidfd, bool registers, bool may_thread, struct target **t,
			struct target_error *terr)
{
	int k = target_attach_pinned(pid, pidfd, t, terr);

	if (k >= 0 && registers && (k = target_regs_capture_state(*t, may_thread)) < 0) {
		snprintf(terr->msg, sizeof(terr->msg),
			 "cannot read the FP state of pid %d's threads: %s", pid, strerror(-k));
		target_free(*t); /* lets it go */
		*t = NULL;
	}
	return k;
}

static int holder_serve(int sock, pid_t pid, int pidfd, int devfd, bool may_thread,
			struct target **t)
{
	struct target_error terr = {0};
	char *cmd = NULL;
	int k = 0;

	for (; recv_msg(sock, &cmd, NULL) > 0; free(cmd), cmd = NULL) {
		if (cmd[0] == HOLDER_CMD_RELEASE && *t) {
			char ok[32];

			k = target_detach(*t);
			snprintf(ok, sizeof(ok), "ok %" PRIu64, sys_now_ns()); /* when it ran again */
			target_free(*t);
			*t = NULL;
			send_msg(sock, k < 0 ? strerror(-k) : ok, -1);
		} else if (cmd[0] == HOLDER_CMD_UFFD && *t) {
			k = serve_new_uffd(sock, *t, devfd);
		} else if (cmd[0] == HOLDER_CMD_HOLD && !*t) {
			uint64_t held_at = sys_now_ns();

			k = hold_threads(pid, pidfd, true, may_thread, t, &terr);
			if (k < 0)
				send_error(sock, k, terr.msg);
			else
				k = send_info(sock, *t, held_at, -1, true);
		} else {
			break;
		}
	}
	free(cmd);
	return k;
}

/*
 * The holder works in short bursts (a ptrace request, then a wait for the thread), while the
 * threads it has stopped wait for it: if the target's other threads keep every CPU busy, each
 * burst waits for a time slice and the hold stretches to tens of milliseconds. So the holder
 * runs as a real-time task where allowed (CAP_SYS_NICE; it never spins: it always blocks in
 * waitpid() or recvmsg() next), and at the highest nice value otherwise; if neither is
 * allowed, as it is. Its children (none) would not inherit it.
 */
static void run_first(void)
{
	struct sched_param sp = {.sched_priority = 1};

	if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) < 0)
		setpriority(PRIO_PROCESS, 0, -20);
}

/*
 * A tracer that dies while a thread runs an injected syscall leaves that thread with the
 * injected registers (kernel/ptrace.c: exit_ptrace() detaches and wakes it as it is), and it
 * crashes. So the holder keeps out of reach of everything meant for the program that started
 * it: its own session (a terminal's Ctrl-C, `kill -PGID` and SIGHUP on hang-up go to the
 * foreground process group), terminal and termination signals ignored (it ends by itself when
 * the daemon's socket closes, after releasing the target), and last in line for the OOM
 * killer where we may lower its score (as root, or below a minimum a privileged parent set:
 * fs/proc/base.c __set_oom_adj()). SIGKILL from someone who names it, or a cgroup kill,
 * remains: what is left of that window is in DESIGN terms in README "Safety".
 */
void holder_isolate(void)
{
	static const int ignored[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN,
				      SIGTTOU, SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM, SIGXFSZ};
	int fd;

	setsid();
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		signal(ignored[i], SIG_IGN);
	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "-1000", 5) < 0) {
			/* not allowed: keep the daemon's score */
		}
		close(fd);
	}
}

int holder_child_main(int sock, pid_t pid, int pidfd, int devfd, bool registers, bool may_thread)
{
	struct target_error terr = {0};
	struct target *t = NULL;
	uint64_t held_at;
	int uffd = -EBADF, k;

	holder_isolate();
	prctl(PR_SET_NAME, "uffsnapd-hold");
	run_first();
	/* Each injected syscall waits twice for a ptrace stop while the thread holds injected
	 * registers: sleep until the stop's SIGCHLD rather than poll (target_wait_status()). */
	target_wait_prepare();
	held_at = sys_now_ns();
	/* The registers before any injection, as the threads stopped. */
	k = hold_threads(pid, pidfd, registers, may_thread, &t, &terr);
	if (k < 0)
		return send_error(sock, k, terr.msg), 1;
	if (pidfd < 0) /* the later holds attach to the process held now, not to a reused pid */
		pidfd = fcntl(target_pidfd(t), F_DUPFD_CLOEXEC, 0);
	if (pidfd < 0) {
		k = -errno;
		target_free(t);
		return send_error(sock, k, "cannot keep a pidfd of the target"), 1;
	}
	k = target_uffd_create(t, devfd, &uffd);
	if (k < 0) {
		target_free(t);
		snprintf(terr.msg, sizeof(terr.msg),
			 "cannot create a userfaultfd in pid %d: %s", pid, strerror(-k));
		return send_error(sock, k, terr.msg), 1;
	}
	k = send_info(sock, t, held_at, uffd, registers);
	close(uffd); /* only the daemon keeps it: its death must drop the protection */
	if (k >= 0)
		k = holder_serve(sock, pid, pidfd, devfd, may_thread, &t);
	target_free(t); /* end of file: the daemon is gone, release all the same */
	return k < 0;
}

/*
 * The holder's info (send_info()) or error (send_error()). On success takes *textp: the
 * registers' text after the head becomes ret->threads_json.
 */
static int parse_info(char **textp, struct holder_info *ret, char *msg, size_t msglen)
{
	char *text = *textp, *nl = strchr(text, '\n');
	json_t *j = json_loadb(text, nl ? (size_t)(nl - text) : strlen(text), 0, NULL), *addrs;
	int k = 0;

	if (!json_is_true(json_object_get(j, "ok"))) {
		k = -(int)json_integer_value(json_object_get(j, "errno"));
		snprintf(msg, msglen, "%s", json_string_value(json_object_get(j, "msg")) ?: "?");
		json_decref(j);
		return k < 0 ? k : -EIO;
	}
	if (!nl) {
		json_decref(j);
		return -EPROTO;
	}
	addrs = json_object_get(j, "stack_addrs");
	ret->nthreads = json_integer_value(json_object_get(j, "nthreads"));
	ret->held_at_ns = (uint64_t)json_integer_value(json_object_get(j, "held_at"));
	ret->nstack_addrs = json_array_size(addrs);
	ret->stack_addrs = calloc(ret->nstack_addrs + 1, sizeof(uint64_t));
	if (!ret->stack_addrs)
		k = -ENOMEM;
	for (size_t i = 0; k >= 0 && i < ret->nstack_addrs; i++)
		ret->stack_addrs[i] = (uint64_t)json_integer_value(json_array_get(addrs, i));
	json_decref(j);
	if (k >= 0) { /* the text itself, moved to the front: no copy of megabytes */
		memmove(text, nl + 1, strlen(nl + 1) + 1);
		ret->threads_json = text;
		*textp = NULL;
	}
	return k;
}

int holder_start(pid_t pid, int pidfd, int devfd, bool registers, struct holder **ret,
		 struct holder_info *ret_info, char *msg, size_t msglen)
{
	struct holder *h = calloc(1, sizeof(*h));
	int sv[2] = {-EBADF, -EBADF}, fd = -EBADF, k;
	char *buf = NULL;
	ssize_t n;

	if (h)
		h->sock = h->pidfd = -EBADF; /* holder_free() must not close fd 0 */
	if (!h || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		k = !h ? -ENOMEM : -errno;
		goto fail;
	}
	h->sock = sv[0];
	/* Forked by the spawner (target/spawner.h), not by us: it has only its socket,
	 * /dev/userfaultfd and the target's pidfd, none of our clients' sockets or images. */
	k = holder_spawn(sv[1], pid, pidfd, devfd, registers, &h->pidfd);
	if (k < 0) {
		snprintf(msg, msglen, "cannot start the holder process for pid %d: %s", pid,
			 strerror(-k));
		goto fail;
	}
	close(sv[1]);
	sv[1] = -EBADF;
	n = recv_msg(h->sock, &buf, &fd);
	k = n < 0 ? (int)n : n == 0 ? -EPIPE : parse_info(&buf, ret_info, msg, msglen);
	if (k >= 0 && fd < 0)
		k = -EPROTO;
	if (k < 0)
		goto fail;
	ret_info->uffd = fd;
	free(buf);
	*ret = h;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (sv[1] >= 0)
		close(sv[1]);
	if (!msg[0])
		snprintf(msg, msglen, "cannot hold pid %d: %s", pid, strerror(-k));
	free(buf);
	holder_free(h);
	return k;
}

int holder_release(struct holder *h, uint64_t *ret_at_ns, char *msg, size_t msglen)
{
	char cmd[2] = {HOLDER_CMD_RELEASE, 0}, *reply = NULL;
	ssize_t n;
	int k = send_msg(h->sock, cmd, -1);

	if (k < 0)
		return snprintf(msg, msglen, "the holder process is gone"), k;
	n = recv_msg(h->sock, &reply, NULL);
	if (n <= 0)
		k = -EPIPE, snprintf(msg, msglen, "the holder process is gone");
	else if (strncmp(reply, "ok ", 3))
		k = -EIO, snprintf(msg, msglen, "cannot resume the target: %s", reply);
	else if (ret_at_ns)
		*ret_at_ns = strtoull(reply + 3, NULL, 10);
	free(reply);
	return k;
}

int holder_hold(struct holder *h, struct holder_info *ret_info, char *msg, size_t msglen)
{
	char cmd[2] = {HOLDER_CMD_HOLD, 0}, *buf = NULL;
	ssize_t n;
	int k = send_msg(h->sock, cmd, -1);

	if (k >= 0) {
		n = recv_msg(h->sock, &buf, NULL);
		k = n < 0 ? (int)n : n == 0 ? -EPIPE : parse_info(&buf, ret_info, msg, msglen);
	}
	free(buf);
	if (k < 0 && !msg[0])
		snprintf(msg, msglen, "cannot hold the target again: %s", strerror(-k));
	return k;
}

int holder_new_uffd(struct holder *h, int *ret_uffd, char *msg, size_t msglen)
{
	char cmd[2] = {HOLDER_CMD_UFFD, 0}, *reply = NULL;
	struct holder_info none = {.uffd = -EBADF};
	int fd = -EBADF, k = send_msg(h->sock, cmd, -1);
	ssize_t n;

	if (k < 0)
		return snprintf(msg, msglen, "the holder process is gone"), k;
	n = recv_msg(h->sock, &reply, &fd);
	if (n <= 0)
		k = -EPIPE, snprintf(msg, msglen, "the holder process is gone");
	else if (strcmp(reply, "ok") || fd < 0)
		k = parse_info(&reply, &none, msg, msglen); /* the error it sent */
	free(reply);
	holder_info_clear(&none);
	if (k >= 0 && fd < 0)
		k = -EPROTO;
	if (k < 0 && fd >= 0)
		close(fd);
	if (k >= 0)
		*ret_uffd = fd;
	return k < 0 ? k : 0;
}

void holder_free(struct holder *h)
{
	if (!h)
		return;
	if (h->sock >= 0)
		close(h->sock); /* the holder releases the target if it still holds it */
	if (h->pidfd >= 0) { /* and ends: wait for that */
		struct pollfd p = {.fd = h->pidfd, .events = POLLIN};

		while (poll(&p, 1, -1) < 0 && errno == EINTR)
			;
		close(h->pidfd);
	}
	free(h);
}

void holder_info_clear(struct holder_info *i)
{
	if (i->uffd >= 0)
		close(i->uffd);
	free(i->threads_json);
	free(i->stack_addrs);
	*i = (struct holder_info){.uffd = -EBADF};
}
