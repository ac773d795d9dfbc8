/* SPDX-License-Identifier: MIT */
/* Receiver mode: `uffsnapd --receive --listen ADDR:PORT --dir DIR --key FILE`. */
#pragma once

#include <stdbool.h>

/* Runs the receiver until SIGTERM; returns the process exit status. */
int recv_main(int argc, char **argv);
/* What the command lines of both receivers share (here and daemon/migrate/recv-main.c). */
struct recv_common {
	const char *listen, *key_file;
	unsigned resume_timeout_s, idle_timeout_s, handshake_timeout_s;
	bool quiet;
};

#define RECV_COMMON_DEFAULTS                                                                      \
	{ .resume_timeout_s = 60, .idle_timeout_s = 60, .handshake_timeout_s = 10 }

/*
 * --listen, --key, --resume-timeout, --idle-timeout, --handshake-timeout and --quiet (option
 * values 'l', 'k', 'r', 'i', 't', 'q'): 0, or -EINVAL for a bad value; 1 for another option.
 */
int recv_common_opt(struct recv_common *c, int o);

/* SIGTERM/SIGINT/SIGHUP as a readable fd for a receiver's loop; the signals are blocked. */
int recv_stop_signalfd(void);
