/* SPDX-License-Identifier: MIT */
/* Authorization's rules (service/auth.c), apart from the /proc reads that gather their facts. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctl-request.h"
#include "service/service.h"

/* What the daemon knows of a target and the system when it decides. */
struct svc_auth_facts {
	pid_t tgid;		 /* /proc/PID/status Tgid: pid itself if pid is a process */
	char state;		 /* State: 'Z' or 'X' once it has exited */
	bool kthread;		 /* a kernel thread */
	unsigned uid[3], gid[3]; /* real, effective, saved */
	uint64_t cap_prm;	 /* its permitted capabilities */
	bool dumpable;		 /* /proc/PID owned by its euid (not PR_SET_DUMPABLE 0, set-id) */
	int yama_scope;		 /* kernel.yama.ptrace_scope; 0 without Yama */
	bool ancestor;		 /* the client is its ancestor (asked only for Yama scope 1) */
};

/*
 * May the client p snapshot pid, given the facts? 0 if so; else ctl_fail()s err with the
 * class and the reason a user reads. Reads nothing: kernel/ptrace.c's rules on given facts.
 */
int svc_auth_decide(const struct svc_peer *p, pid_t pid, const struct svc_auth_facts *f,
		    struct ctl_error *err);
