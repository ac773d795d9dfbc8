/* SPDX-License-Identifier: MIT */
/* Misbehaving stream peers for the tests, speaking the protocol by hand (stream/wire.h). */
#pragma once

/* From network namespace ns, runs each bad peer against ip:port once (in a child process):
 * garbage, wrong proof, silent, corrupt image, stops mid-frame. 0 if each was refused or
 * failed as expected, -1 (after printing why) otherwise. */
int peer_run_all(const char *ns, const char *ip, unsigned port, const char *key_file);

#include <stdbool.h>
#include <sys/types.h>

struct peer_hold {
	int n;		  /* connections to hold open */
	const char *name; /* NULL: they never send a byte; else they prove the key with this
			     HELLO name and then send nothing */
	bool probe;	  /* then one more: *ret_code is the ERROR code it gets (0: none) */
};

/* From ns, a child holds connections to ip:port until it is killed (SIGKILL its pid). */
pid_t peer_hold(const char *ns, const char *ip, unsigned port, const char *key_file,
		const struct peer_hold *h, int *ret_code);
