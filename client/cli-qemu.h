/* SPDX-License-Identifier: MIT */
/*
 * Restoring a QEMU guest's image (FORMAT.md "QEMU guests") into a stock QEMU: the image's
 * `guest` metadata, the command line of a QEMU started to receive it, each backend's RAM
 * written into its file, and the device state loaded over QMP. Helpers return -errno with one
 * line for a person in msg; the command (cmd-qemu-restore.c) prints it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "qmp.h"
#include "uffsnap/image.h"

struct cli_qemu_backend {
	const char *id;	  /* QOM id, "ram0" */
	const char *type; /* "memory-backend-memfd" */
	uint64_t size;
	uint64_t addr; /* where QEMU mapped it when the snapshot was taken */
	bool share;
};

struct cli_qemu_guest {
	json_t *meta; /* owns the strings below */
	const char *machine, *version, *binary;
	json_t *argv; /* array of strings, or NULL */
	struct cli_qemu_backend *backends;
	size_t nbackends;
	uint64_t devstate_size; /* as recorded in guest.devstate */
	uint32_t devstate_crc;
	bool devstate_recorded;
};

/* Formats the one line into msg and returns err (a -errno): for `return cli_qemu_fail(...)`. */
__attribute__((format(printf, 4, 5))) int cli_qemu_fail(char *msg, size_t len, int err,
							const char *fmt, ...);
/* CLOCK_MONOTONIC in milliseconds. */
int64_t cli_qemu_now_ms(void);

/* Parses the `guest` member of the META text: -ENOMEDIUM when it has none (not a guest). */
int cli_qemu_guest_load(const char *meta, struct cli_qemu_guest *ret, char *msg, size_t len);
void cli_qemu_guest_free(struct cli_qemu_guest *g);

/*
 * The command line to start a QEMU that receives the image: args (argv[0] the binary), each
 * of the image's backends turned into `memory-backend-file,...,mem-path=DIR/ID.ram,share=on`,
 * any -incoming replaced by `-incoming defer`, `-qmp unix:DIR/qmp.sock,server=on,wait=off`
 * added. ret is a NULL-ended malloc'd array of malloc'd strings (cli_qemu_argv_free()).
 */
int cli_qemu_argv_build(const struct cli_qemu_guest *g, char **args, int nargs, const char *dir,
			char ***ret, char *msg, size_t len);
void cli_qemu_argv_free(char **argv);
/* argv as one line a POSIX shell reads back as the same words. */
void cli_qemu_argv_print(FILE *f, char **argv);

/* What writing the RAM did. */
struct cli_qemu_ram_stats {
	uint64_t bytes_written; /* non-zero pages written */
	uint64_t hole_bytes;	/* zero pages and ZERO extents left as holes */
	uint64_t missing_bytes; /* not in the image or discarded (only with allow_holes) */
};

/*
 * Checks that the image holds every page of every backend (not missing, not DISCARDED);
 * -ENODATA naming the first gap otherwise, unless allow_holes.
 */
int cli_qemu_ram_check(struct img_reader *r, const struct cli_qemu_guest *g, bool allow_holes,
		       char *msg, size_t len);
/*
 * Writes backend b's bytes from the image into fd (a file of at least b->size bytes): holes
 * are punched where the snapshot had zeros (or they are written as zeros where the file
 * system cannot punch), the rest is pwrite()n.
 */
int cli_qemu_ram_write(struct img_reader *r, const struct cli_qemu_backend *b, int fd,
		       struct cli_qemu_ram_stats *stats, char *msg, size_t len);
/* -EBUSY if a process other than allowed_pid maps the file fd refers to (from /proc). */
int cli_qemu_ram_check_unmapped(int fd, const char *path, pid_t allowed_pid, char *msg, size_t len);

/*
 * The destination QEMU behind q: waiting in 'inmigrate', the image's machine type, the same
 * backend ids and sizes. Each difference is one line on stderr (prefixed with name); returns
 * -EMEDIUMTYPE if any, or another -errno with msg.
 */
int cli_qemu_check_dest(struct qmp *q, const char *name, const struct cli_qemu_guest *g, char *msg,
			size_t len);
/* Backend id's file in the destination (a memory-backend-file with share=on): malloc'd path. */
int cli_qemu_backend_path(struct qmp *q, const char *id, char **ret, char *msg, size_t len);

struct cli_qemu_load_stats {
	uint64_t migrate_ms; /* migrate-incoming to MIGRATION completed */
	bool cont_retried;
	char status[32]; /* query-status at the end: "running" */
};

/*
 * Loads the device state with x-ignore-shared through a pipe passed with getfd, waits for the
 * migration to complete (timeout_ms) and `cont`s the guest.
 */
int cli_qemu_load(struct qmp *q, const void *devstate, size_t devstate_len, int timeout_ms,
		  struct cli_qemu_load_stats *stats, char *msg, size_t len);
