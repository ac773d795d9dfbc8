/* SPDX-License-Identifier: MIT */
/*
 * Service-mode tests of QEMU guests (test-svc-guest.c, test-svc-migrate.c): QEMUs that run their
 * firmware only (no guest kernel is needed for a running guest with shared RAM), QMP over
 * connections of the test's own, and the 'qemu' fd a client passes.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "svc-harness.h"

#define SVC_QEMU	"/usr/bin/qemu-system-x86_64"
#define SVC_QMP_WAIT_MS 60000 /* a hang guard for QEMU's answers, never a measurement */

struct svc_guest {
	pid_t pid;
	char sock[160];
};

enum svc_guest_mode {
	SVC_GUEST_RUN,	    /* running, its RAM a shared memfd backend */
	SVC_GUEST_PAUSED,   /* the same, paused before it starts (-S) */
	SVC_GUEST_INCOMING, /* a migration's destination: RAM in DIR/NAME.ram (file, share=on),
			     * -incoming defer */
};

/* QEMU (machine pc-i440fx-7.2, 64 MiB backend "ram0") with its QMP socket DIR/NAME.qmp. */
int svc_guest_start(struct svc_guest *g, const char *dir, const char *name,
		    enum svc_guest_mode mode);
void svc_guest_kill(struct svc_guest *g);
/* A connection to a unix socket, nothing read from it: what a client passes as 'qemu'. */
int svc_connect_raw(const char *path);
/* One QMP command over a connection of our own (QEMU serves one client at a time: it waits);
 * takes args over. */
int svc_qmp_one(const struct svc_guest *g, const char *cmd, json_t *args, json_t **ret);
bool svc_guest_status_is(const struct svc_guest *g, const char *want);
/* A migration capability's state: 0, 1, or -1 if QEMU did not say. */
int svc_guest_cap(const struct svc_guest *g, const char *name);
/* Turns the 'events' capability on (a change a job must leave as it was). */
int svc_guest_set_events(const struct svc_guest *g);
/* The desc of a reply's error or of an event's data ("" if none). */
const char *svc_desc_of(json_t *r);
/* getfd name for a fresh connection to path (closed here: the daemon holds its own). */
int svc_pass_socket(struct svc_conn *c, const char *path, const char *name);
/* The job id a reply returned (0 if none). */
long long svc_job_id(json_t *reply);
