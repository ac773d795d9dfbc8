/* SPDX-License-Identifier: MIT */
/* Misbehaving stream peers for the tests, speaking the protocol by hand (stream-wire.h). */
#pragma once

/* From network namespace ns, runs each bad peer against ip:port once (in a child process):
 * garbage, wrong proof, silent, corrupt image, stops mid-frame. 0 if each was refused or
 * failed as expected, -1 (after printing why) otherwise. */
int peer_run_all(const char *ns, const char *ip, unsigned port, const char *key_file);
