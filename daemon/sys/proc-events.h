/* SPDX-License-Identifier: MIT */
/*
 * The kernel's process events connector (NETLINK_CONNECTOR, CN_IDX_PROC; drivers/connector/
 * cn_proc.c) through libnl: fork, exec and exit of any process, seen as they happen, so a job
 * learns at once that its target forked, exec'd or exited. Subscribing needs CAP_NET_ADMIN
 * before Linux 6.6: open it before dropping capabilities; the open socket keeps working after.
 */
#pragma once

#include <sys/types.h>

struct procev;

enum procev_type {
	PROCEV_FORK = 1,
	PROCEV_EXEC = 2,
	PROCEV_EXIT = 3,
};

struct procev_event {
	enum procev_type type;
	pid_t pid;   /* the thread the event is about (for FORK: the parent thread) */
	pid_t tgid;  /* its process */
	pid_t child_pid, child_tgid; /* FORK only: the new thread and its process */
	int exit_code;		     /* EXIT only: as wait(2) encodes it */
};

/* Subscribes; 0 or -errno (-EPERM without CAP_NET_ADMIN, before Linux 6.6). */
int procev_open(struct procev **ret);
/* The fd to poll for POLLIN. */
int procev_fd(const struct procev *p);
/*
 * Reads what is pending without blocking and calls cb for each event; returns the number of
 * events, or -errno. -ENOBUFS means events were lost (the socket buffer overflowed): callers
 * must then check their targets by other means (kill(pid, 0), /proc).
 */
int procev_read(struct procev *p, void (*cb)(void *ctx, const struct procev_event *e), void *ctx);
void procev_free(struct procev *p);
