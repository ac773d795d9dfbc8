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
	const char *uffsnapd, *workload, *check, *ctl;
};

struct net {
	char ns_a[32], ns_b[32]; /* sender side, receiver side */
	char if_a[16], if_b[16];
	char ip_a[32], ip_b[32];
	char dir[64]; /* work directory: key, images, logs */
	char key[96], recv_log[96], out[96];
	bool up;
};

/* The "stream" object of `uffsnapd --to ... --json`'s summary, and its "ok". */
struct snap_line {
	uint64_t accepted, sent, resent, acked, spooled, mem_used, mem_peak, reconnects;
	int complete, ok;
};

/* 77 with a printed reason when namespaces cannot be made; 0 when set up; -1 on failure. */
int net_setup(struct net *n);
void net_teardown(struct net *n);
/* Runs a shell command (in ns, if not NULL); returns its exit status. */
int net_sh(const char *ns, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts the receiver in ns_b on port with extra options; waits until it listens. */
pid_t net_receiver(const struct stream_paths *p, struct net *n, unsigned port, const char *extra);
/* Starts `uffsnapd --pid target --to ip_b:port --key key --json extra` in ns_a; its stdout
 * and stderr go to out_path. */
pid_t net_sender(const struct stream_paths *p, struct net *n, pid_t target, unsigned port,
		 const char *key, const char *extra, const char *out_path);
/* Exit code of a child, or 128 + signal; -1 if still running after timeout_s. */
int net_wait(pid_t pid, unsigned timeout_s);
/* The summary JSON a finished sender printed; -ENOENT if there is none. */
int net_last_line(const char *out_path, struct snap_line *ret);
/* Bytes the receiver's last periodic progress line reports (any stream); 0 if none yet. */
uint64_t net_recv_progress(const char *log_path, unsigned *ret_lines);
/* Waits until the receiver reports at least bytes received; -1 (printed) if it never does. */
int net_wait_received(const struct net *n, uint64_t bytes);
/* A /proc/PID/status field in KiB ("VmRSS", "VmHWM"), or -errno. */
long net_status_kib(pid_t pid, const char *field);
/* Real packet loss in ns_b, both directions: netem if the kernel has it (then delay too),
 * else an nftables numgen rule. Prints what is emulated and what is not. 77: neither. */
int net_impair(struct net *n, unsigned loss_pct, bool *ret_netem);
/* Packets the nftables rule of net_impair() dropped (0 with netem or none). */
uint64_t net_dropped(const struct net *n);
/* Number of files in dir ending in suffix. */
int net_count(const char *dir, const char *suffix, char *ret_first, size_t len);
bool net_log_has(const char *path, const char *needle);
