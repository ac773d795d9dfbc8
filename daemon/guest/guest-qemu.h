/* SPDX-License-Identifier: MIT */
/*
 * A QEMU guest as seen through QMP (guest-qemu.c): its checks, memory backends and their
 * mappings in QEMU, migration capabilities, `cont` and `migrate_cancel`, and the `guest`
 * member of an image's metadata (proto/FORMAT.md). Shared by the snapshot (guest.c) and the
 * migration (daemon/migrate/). Every function returns >= 0 or -errno with one line for a
 * person in msg; none logs.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "guest/guest.h"

struct guardian;

struct backend {
	char *id, *type, *mem_path; /* mem_path: file backends only */
	uint64_t size, addr;	    /* addr: where QEMU maps it (0 when not looked up) */
	int order;		    /* of its -object on QEMU's command line */
};

struct guest {
	struct qmp *q;
	pid_t pid;
	int cancel_fd;
	struct backend *b;
	size_t nb;
	struct snap_span *scope;
	json_t *argv;
	char binary[PATH_MAX];
	json_t *caps; /* migration capabilities as we found them, to put back */
	uint8_t *dev;
	size_t devlen;
	bool stopped, resumed, migrating;
	uint64_t t_stop, t_migrate;
	struct guardian *guard;
	struct guest_stats *gs;
	void (*test_pause)(const char *point); /* snap_opts.test_pause: tests only */
};

int guest_failf(char *msg, size_t len, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Runs cmd and gives the "return" string member name (or the return itself if name is NULL). */
int guest_exec_string(struct guest *g, const char *cmd, json_t *args, const char *name, char *out,
		      size_t outlen, char *msg, size_t len);
/* query-memdev: every backend's id, type, size (and a file backend's mem-path). shared: each
 * must be share=on (else the message says which option to add). */
int guest_read_backends(struct guest *g, char *msg, size_t len);
/* The exact machine type (qom /machine type less "-machine") into g->gs->machine. */
int guest_read_machine(struct guest *g, char *msg, size_t len);
/*
 * Before anything is touched: the guest runs and does not migrate, its backends are shared,
 * each is found among QEMU's mappings; g->scope is then the guest RAM, sorted.
 */
int guest_probe(struct guest *g, char *msg, size_t len);
/*
 * Sets the migration capabilities names (NULL-ended) on, remembering what they were (the
 * guardian puts them back if we die; guest_restore_caps() does otherwise).
 */
int guest_set_caps(struct guest *g, const char *const *names, char *msg, size_t len);
void guest_restore_caps(struct guest *g);
/* `cont`; right after a migration QEMU refuses once or twice ("not finalized yet"). */
int guest_resume(struct guest *g, char *msg, size_t len);
/* `migrate_cancel`, and waits until QEMU says the migration is over. */
void guest_cancel_migration(struct guest *g);
/* The `guest` member of the metadata (FORMAT.md); devstate: with the device state's size. */
json_t *guest_meta_json(const struct guest *g, bool devstate);
void guest_state_free(struct guest *g);
