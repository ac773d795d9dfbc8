/* SPDX-License-Identifier: MIT */
/* Between the holder (holder.c) and the spawner that forks it (spawner.c). */
#pragma once

#include <sys/types.h>

/*
 * The holder's whole life, in the child the spawner forked: attach to pid, create the
 * userfaultfd, serve the daemon on sock; whatever happens to the daemon, the target ends up
 * released. Its exit status.
 */
int holder_child_main(int sock, pid_t pid, int pidfd, int devfd);
