/* SPDX-License-Identifier: MIT */
/*
 * What an ELF core of the target needs besides registers and memory (FORMAT.md "process" and
 * "cpu"): parent, group, session, ids, nice, command line, auxiliary vector; and this CPU's
 * XSAVE layout, which the "fpstate" of every thread is written in.
 */
#pragma once

#include <jansson.h>
#include <sys/types.h>

/*
 * Sets meta's "process" (what /proc says of pid; left out if it cannot be read, e.g. the
 * target has exited) and "cpu". Returns -ENOMEM only; an unreadable /proc is not an error.
 */
int snap_proc_describe(pid_t pid, json_t *meta);
