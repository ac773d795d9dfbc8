/* SPDX-License-Identifier: MIT */
/*
 * The two systemd protocols service mode speaks, without libsystemd: sd_notify(3) datagrams to
 * $NOTIFY_SOCKET, and socket activation's $LISTEN_PID/$LISTEN_FDS (sd_listen_fds(3)).
 */
#pragma once

/*
 * Sends one notification ("READY=1", "STATUS=2 jobs running", "STOPPING=1", ...). Returns 0 if
 * sent, 0 if $NOTIFY_SOCKET is unset (not under systemd), -errno on failure. Never logs.
 */
int svc_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The listening sockets systemd passed (fds 3 .. 3 + n - 1), if $LISTEN_PID is us: returns n
 * (0 if none passed), each fd made O_CLOEXEC; unsets the variables so children never see them.
 * -errno if they are malformed.
 */
int svc_listen_fds(void);
