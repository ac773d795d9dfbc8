/* SPDX-License-Identifier: MIT */
/* Helpers for the tests of service mode's system parts. Not part of any product. */
#pragma once

#include <stdint.h>
#include <sys/capability.h>
#include <sys/socket.h>
#include <sys/un.h>

/*
 * /proc/self/status says: permitted, effective and bounding sets exactly mask, inheritable
 * and ambient empty, NoNewPrivs 1, every uid that of user. Prints what differs; 0 or -1.
 */
int systest_check_caps(uint64_t mask, const char *user);
/* Removes cap from the effective and permitted sets (always allowed); 0 or -1. */
int systest_lower_cap(cap_value_t cap);
/* "cap_sys_ptrace" (a static buffer). */
const char *systest_cap_name(cap_value_t cap);

/* useradd --system (with its own group) / userdel; 0 or -1. */
int systest_user_add(const char *name);
void systest_user_remove(const char *name);
/* Runs fn at exit and on SIGTERM, SIGINT, SIGHUP (then exits 1). */
void systest_on_exit(void (*fn)(void));

/*
 * A datagram socket bound to name: a path, or "@name" for the abstract namespace (the forms
 * $NOTIFY_SOCKET takes). Returns the fd or -errno.
 */
int systest_dgram_bind(const char *name);
/* Receives one datagram as a string, waiting at most timeout_ms; length or -errno. */
int systest_dgram_recv(int fd, char *buf, size_t len, int timeout_ms);
/* Connects a stream socket to path, retrying until it exists (at most timeout_ms). */
int systest_stream_connect(const char *path, int timeout_ms);
/* Reads one line (without the newline) within timeout_ms; length or -errno. */
int systest_read_line(int fd, char *buf, size_t len, int timeout_ms);
