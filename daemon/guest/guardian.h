/* SPDX-License-Identifier: MIT */
/*
 * A guest must never be left paused by us, even when uffsnapd is killed while it has the vCPUs
 * stopped. The guardian is a child process that shares our QMP connection and outlives us: told
 * "stopped" before we stop the guest and "resumed" once it runs again, it sends
 * `migrate_cancel` and `cont` itself if we die in between; and it puts back the migration
 * capabilities we changed.
 */
#pragma once

struct guardian;

/* Forks the guardian on the QMP socket qmp_fd (a dup is kept by the child). */
int guardian_start(int qmp_fd, struct guardian **ret);
/* A QMP command (one JSON line) that undoes what we are about to change, sent if we die. */
void guardian_undo(struct guardian *g, const char *qmp_line);
/* Before `stop`: from now on our death resumes the guest. */
void guardian_stopping(struct guardian *g);
/*
 * Before a migration's `migrate-continue`: from now on our death resumes the guest only if
 * QEMU still waits before its switch-over (status pre-switchover); once it went on, the guest
 * may run at the destination and must never run here too.
 */
void guardian_switching(struct guardian *g);
/* The guest runs again (or was never stopped, or migrated away): our death changes nothing. */
void guardian_resumed(struct guardian *g);
/* We are done with the guest: the guardian exits without touching it. */
void guardian_free(struct guardian *g);
