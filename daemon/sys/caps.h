/* SPDX-License-Identifier: MIT */
/*
 * Least privilege for service mode (libcap). After set-up the daemon keeps only the
 * capabilities a snapshot needs (see sys/caps.c for which and why) in its permitted and
 * effective sets, and drops every other from every set, the bounding set included.
 */
#pragma once

#include <sys/types.h>

struct svc_caps_error {
	char msg[256];
};

/*
 * Optionally switches to user NAME (its uid, primary gid and supplementary groups; NULL: stay),
 * keeping the needed capabilities across the switch, then drops everything else. Returns 0 or
 * -errno with a message for the user. Call once, single-threaded, before any job starts.
 */
int svc_caps_drop(const char *user, struct svc_caps_error *err);

/* "cap_sys_ptrace,..." : the capabilities svc_caps_drop() keeps, for query-status. */
const char *svc_caps_kept(void);
