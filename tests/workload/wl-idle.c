/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "wl-idle.h"

#define WL_IDLE_STACK (128u << 10)
#define WL_IDLE_KINDS 6

static uint32_t idle_futex;  /* never woken */
static int idle_pipe[2] = {-1, -1}; /* never written */
static int idle_epoll = -1;

/* Each loop only returns if a call came back early (EINTR, a spurious wake): wait again. */
static void *idle_main(void *arg)
{
	uintptr_t kind = (uintptr_t)arg;
	struct timespec hour = {3600, 0};
	struct pollfd p = {.fd = idle_pipe[0], .events = POLLIN};
	struct epoll_event ev;
	sigset_t none;
	char c;

	sigemptyset(&none);
	sigaddset(&none, SIGRTMAX); /* never sent */
	for (;;) {
		switch (kind) {
		case 0:
			syscall(SYS_futex, &idle_futex, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
			break;
		case 1:
			nanosleep(&hour, NULL);
			break;
		case 2:
			if (read(idle_pipe[0], &c, 1) == 0)
				return NULL;
			break;
		case 3:
			poll(&p, 1, -1);
			break;
		case 4:
			epoll_wait(idle_epoll, &ev, 1, -1);
			break;
		default:
			sigtimedwait(&none, NULL, &hour);
			break;
		}
	}
	return NULL;
}

int wl_idle_start(uint32_t n)
{
	pthread_attr_t attr;
	int r = 0;

	if (!n)
		return 0;
	if (pipe2(idle_pipe, O_CLOEXEC) < 0)
		return -errno;
	idle_epoll = epoll_create1(EPOLL_CLOEXEC);
	if (idle_epoll < 0)
		return -errno;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WL_IDLE_STACK);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (uint32_t i = 0; i < n && r == 0; i++) {
		pthread_t th;

		r = -pthread_create(&th, &attr, idle_main, (void *)(uintptr_t)(i % WL_IDLE_KINDS));
	}
	pthread_attr_destroy(&attr);
	return r;
}
