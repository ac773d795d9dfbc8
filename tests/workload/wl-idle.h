/* SPDX-License-Identifier: MIT */
/*
 * Idle threads: a target with many threads, as JVMs and databases have, most of them blocked
 * in a system call. Each waits, for ever, in one of several calls (futex, nanosleep, read
 * on a pipe, poll, epoll_wait, sigtimedwait), so that attaching interrupts every kind and the
 * restart logic is exercised across them. They die with the process.
 */
#pragma once

#include <stdint.h>

/* Starts n idle threads with small stacks; 0 or -errno. */
int wl_idle_start(uint32_t n);
