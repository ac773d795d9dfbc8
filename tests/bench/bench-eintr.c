/* SPDX-License-Identifier: MIT */
/*
 * What a target notices of a snapshot in its blocking system calls (issue 16): a target whose
 * threads each block forever in one call, each in a loop that counts how the call returned;
 * uffsnapd snapshots it RUNS times; the table says, per call, how often it returned with EINTR
 * or anything else. None of the calls may return on its own (no timeout elapses, no fd becomes
 * ready, no futex is woken): every return is caused by the snapshot.
 *
 * usage: bench-eintr UFFSNAPD [RUNS [UFFSNAPD-OPTION]]     (root; e.g. --arm held)
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/futex.h>

#define LONG_S 100000 /* a timeout that never elapses during the measurement */

struct counts {
	uint64_t eintr, other;
	int64_t last_other; /* the last unexpected result, or -errno */
};

struct call {
	const char *name;
	long (*fn)(void); /* one blocking call: >= 0, or -errno */
};

static int pipefd[2], epfd;
static uint32_t futex_word;
static struct io_uring ring;

static long ret(long r)
{
	return r < 0 ? -errno : r;
}

static long c_futex(void)
{
	return ret(syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0));
}

static long c_futex_timeout(void)
{
	struct timespec ts = {LONG_S, 0};

	return ret(syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0));
}

static long c_nanosleep(void)
{
	struct timespec ts = {LONG_S, 0};

	return ret(nanosleep(&ts, NULL));
}

static long c_read(void)
{
	char c;

	return ret(read(pipefd[0], &c, 1));
}

static long c_epoll(void)
{
	struct epoll_event e;

	return ret(epoll_wait(epfd, &e, 1, -1));
}

static long c_epoll_timeout(void)
{
	struct epoll_event e;

	return ret(epoll_wait(epfd, &e, 1, LONG_S * 1000));
}

static long c_poll(void)
{
	struct pollfd p = {pipefd[0], POLLIN, 0};

	return ret(poll(&p, 1, -1));
}

static long c_poll_timeout(void)
{
	struct pollfd p = {pipefd[0], POLLIN, 0};

	return ret(poll(&p, 1, LONG_S * 1000));
}

static long c_select(void)
{
	fd_set r;

	FD_ZERO(&r);
	FD_SET(pipefd[0], &r);
	return ret(select(pipefd[0] + 1, &r, NULL, NULL, NULL));
}

static long c_sigtimedwait(void)
{
	struct timespec ts = {LONG_S, 0};
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR2); /* blocked in every thread, never sent */
	return ret(sigtimedwait(&s, NULL, &ts));
}

static long c_uring_wait(void)
{
	struct io_uring_cqe *cqe;

	return io_uring_wait_cqe(&ring, &cqe); /* -errno; nothing was submitted */
}

static const struct call calls[] = {
    {"futex wait", c_futex},
    {"futex wait, timeout", c_futex_timeout},
    {"nanosleep", c_nanosleep},
    {"read (empty pipe)", c_read},
    {"epoll_wait, no timeout", c_epoll},
    {"epoll_wait, timeout", c_epoll_timeout},
    {"poll, no timeout", c_poll},
    {"poll, timeout", c_poll_timeout},
    {"select, no timeout", c_select},
    {"sigtimedwait", c_sigtimedwait},
    {"io_uring_enter (wait for a CQE)", c_uring_wait},
};
#define NCALLS (sizeof(calls) / sizeof(calls[0]))

static struct counts *counts; /* shared with the parent */

static void *blocker(void *arg)
{
	size_t i = (size_t)arg;

	for (;;) {
		long r = calls[i].fn();

		if (r == -EINTR)
			__atomic_add_fetch(&counts[i].eintr, 1, __ATOMIC_RELAXED);
		else {
			counts[i].last_other = r;
			__atomic_add_fetch(&counts[i].other, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static void target(int ready)
{
	struct epoll_event e = {.events = EPOLLIN};
	pthread_t th;
	sigset_t s;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	epfd = epoll_create1(0);
	if (pipe(pipefd) < 0 || epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, pipefd[0], &e) < 0 ||
	    io_uring_queue_init(4, &ring, 0) < 0)
		_exit(1);
	for (size_t i = 0; i < NCALLS; i++)
		if (pthread_create(&th, NULL, blocker, (void *)i))
			_exit(1);
	if (write(ready, "y", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static int snapshot(const char *uffsnapd, pid_t pid, const char *opt)
{
	char pidstr[16];
	pid_t d;
	int st;

	snprintf(pidstr, sizeof(pidstr), "%d", pid);
	d = fork();
	if (d == 0) {
		execl(uffsnapd, "uffsnapd", "--pid", pidstr, "--output", "/dev/null", "--force",
		      "--quiet", opt, (char *)NULL);
		_exit(127);
	}
	while (waitpid(d, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	int runs = argc > 2 ? atoi(argv[2]) : 20, fds[2], bad = 0;
	pid_t pid;
	char c;

	if (argc < 2)
		return fprintf(stderr, "usage: %s UFFSNAPD [RUNS]\n", argv[0]), 2;
	counts = mmap(NULL, NCALLS * sizeof(*counts), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED || pipe(fds) < 0)
		return perror("setup"), 1;
	pid = fork();
	if (pid == 0)
		target(fds[1]);
	if (read(fds[0], &c, 1) != 1)
		return fprintf(stderr, "the target did not start\n"), 1;
	usleep(200000); /* every thread blocked */
	for (int i = 0; i < runs; i++)
		bad += snapshot(argv[1], pid, argc > 3 ? argv[3] : NULL) < 0;
	usleep(200000);
	printf("%d snapshots%s%s (%d failed) of a target with one thread blocked in each call\n\n",
	       runs, argc > 3 ? " with " : "", argc > 3 ? argv[3] : "", bad);
	printf("| call | returns with EINTR | other returns |\n|---|---|---|\n");
	for (size_t i = 0; i < NCALLS; i++) {
		printf("| %s | %llu | %llu", calls[i].name, (unsigned long long)counts[i].eintr,
		       (unsigned long long)counts[i].other);
		if (counts[i].other)
			printf(" (last: %lld%s%s)", (long long)counts[i].last_other,
			       counts[i].last_other < 0 ? " " : "",
			       counts[i].last_other < 0 ? strerror(-counts[i].last_other) : "");
		printf(" |\n");
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 0;
}
