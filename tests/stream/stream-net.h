/* SPDX-License-Identifier: MIT */
/*
 * Test helpers for streaming: two "hosts" as network namespaces joined by a veth pair (names
 * unique per run, removed at exit), a receiver in one and senders in the other.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct stream_paths {
	const char *uffsnapd, *snap, *workload, *check, *ctl;
};

struct net {
	char ns_a[32], ns_b[32]; /* sender side, receiver side */
	char if_a[16], if_b[16];
	char ip_a[32], ip_b[32];
	char dir[64]; /* work directory: key, images, logs */
	char key[96], recv_log[96], out[96];
	bool up;
};

/* Counters from a stream-snap progress/final line. */
struct snap_line {
	uint64_t accepted, sent, resent, acked, spooled, mem_used, mem_peak, reconnects;
	int complete;
};

/* 77 with a printed reason when namespaces cannot be made; 0 when set up; -1 on failure. */
int net_setup(struct net *n);
void net_teardown(struct net *n);
/* Runs a shell command (in ns, if not NULL); returns its exit status. */
int net_sh(const char *ns, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts the receiver in ns_b on port with extra options; waits until it listens. */
pid_t net_receiver(const struct stream_paths *p, struct net *n, unsigned port, const char *extra);
/* Starts stream-snap in ns_a; its stdout goes to out_path. */
pid_t net_sender(const struct stream_paths *p, struct net *n, pid_t target, unsigned port,
		 const char *key, const char *extra, const char *out_path);
/* Exit code of a child, or 128 + signal; -1 if still running after timeout_s. */
int net_wait(pid_t pid, unsigned timeout_s);
/* The last counters line of a sender's output; -ENOENT if none yet. */
int net_last_line(const char *out_path, struct snap_line *ret);
/* VmRSS of pid in KiB, or -errno. */
long net_rss_kib(pid_t pid);
/* Number of files in dir ending in suffix. */
int net_count(const char *dir, const char *suffix, char *ret_first, size_t len);
bool net_log_has(const char *path, const char *needle);
