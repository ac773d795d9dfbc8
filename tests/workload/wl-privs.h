/* SPDX-License-Identifier: MIT */
/* Making the workload a harder target: a seccomp filter, another user. */
#pragma once

#include <sys/types.h>

/*
 * Install a seccomp filter under which the userfaultfd syscall fails with EPERM (everything else
 * is allowed), for this thread and the threads it creates later; then check that it works.
 */
int wl_privs_deny_userfaultfd(void);
int wl_privs_lookup(const char *user, uid_t *ret_uid, gid_t *ret_gid);
/* Become uid/gid with no supplementary groups, stay ptrace-able by that user, and keep the
 * parent-death signal if one was set. */
int wl_privs_drop(uid_t uid, gid_t gid);
