/* SPDX-License-Identifier: MIT */
/*
 * Live migrations of the test guest between two "hosts": network namespaces A and B joined by
 * a veth pair (tests/stream/stream-net.h), a QEMU and uffsnapd on each side. Shared by the
 * migration test (test-guest-migrate.c) and its benchmark (tests/bench/bench-migrate.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "guest-harness.h"
#include "stream-net.h"

#define MIG_WAIT_MAX_MS 300000 /* a safety net for waits on files, never a measurement */

struct mig_net {
	struct net n;	/* ns_a, ns_b, if_a, ip_b, key, dir */
	int self, a, b; /* network namespace descriptors: ours, A's, B's */
};

/* 0, 77 (skip, printed), or -1 (printed). */
int mig_net_setup(struct mig_net *m);
void mig_net_teardown(struct mig_net *m);

enum mig_start { MIG_BOOT, MIG_INCOMING_FILE, MIG_INCOMING_MEMFD };
/* Starts g in namespace nsfd (this process enters it for the fork, then comes back). */
int mig_guest_start(const struct mig_net *m, int nsfd, struct guest *g,
		    const struct guest_config *cfg, enum mig_start how, const char *ram_file,
		    char *why, size_t len);
/* argv in namespace nsfd (-1: ours), stdout and stderr to files, env "NAME=VALUE" or NULL. */
pid_t mig_spawn(int nsfd, const char *const *argv, const char *out, const char *err,
		const char *env);
/* A child's exit status, or 128 + its signal. */
int mig_wait_exit(pid_t pid);
/* Polls until path exists (s NULL) or holds s; false after MIG_WAIT_MAX_MS. */
bool mig_wait_file(const char *path, const char *s);
/*
 * `UFFSNAPD --receive --qemu DST --listen IP_B:port --key key --resume-timeout 3 --json` in B,
 * stdout to out, stderr to err; returns once it listens, with its pid (0 and why: it exited).
 */
pid_t mig_receiver(const struct mig_net *m, const char *uffsnapd, const struct guest *dst,
		   const char *port, const char *key, const char *out, const char *err, char *why,
		   size_t len);
/* g's run state (query-status) over a short QMP connection: uffsnapd needs the socket. */
int mig_status(const struct guest *g, char *st, size_t len, char *why, size_t wlen);
