/* SPDX-License-Identifier: MIT */
/* Receiver mode: `uffsnapd --receive --listen ADDR:PORT --dir DIR --key FILE`. */
#pragma once

/* Runs the receiver until SIGTERM; returns the process exit status. */
int recv_main(int argc, char **argv);
/* SIGTERM/SIGINT/SIGHUP as a readable fd for a receiver's loop; the signals are blocked. */
int recv_stop_signalfd(void);
