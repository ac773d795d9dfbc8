/* SPDX-License-Identifier: MIT */
/* Opening image files for uffsnapctl, and the one-line messages about them. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "uffsnap/chain.h"
#include "uffsnap/image.h"
#include "sys/out-file.h"

struct cli_image {
	const char *name; /* for messages: the path as given, or "(stdin)" for "-" */
	int fd;		  /* -EBADF when closed */
	bool owned;	  /* false for stdin */
	bool seekable;	  /* a regular file (or a block device) that pread() works on */
};

/*
 * Opens path ("-": stdin) for reading and refuses what cannot be an image (a directory, an
 * empty file). On failure prints one line naming the file and the problem and returns -errno.
 */
int cli_image_open(const char *path, struct cli_image *ret);
void cli_image_close(struct cli_image *img);

/* Prints "uffsnapctl: NAME: MESSAGE" as one line on stderr. */
__attribute__((format(printf, 2, 3))) void cli_file_error(const char *name, const char *fmt, ...);

/*
 * The header flags in words, "; "-separated: "pre-copy (pages rewritten by later rounds)";
 * "" for none.
 */
const char *cli_flags_describe(uint32_t flags, char *buf, size_t len);

/* The header flags as short names for JSON ("pre-copy"), a new array. */
json_t *cli_flags_json(uint32_t flags);

/* "complete", "incomplete" or "corrupt". */
const char *cli_status_name(enum img_status status);

/* Describes why an image is not complete, in one line (no newline), e.g.
 * "corrupt at offset 4160: frame header checksum mismatch". */
void cli_status_describe(const struct img_summary *s, char *buf, size_t len);

/* strerror() for a negative errno, starting lower case to fit in the middle of a message. */
const char *cli_strerror(int neg_errno, char *buf, size_t len);

/* " at offset N" for err, or "" when its message already says where. */
const char *cli_error_where(const struct img_error *err, char *buf, size_t len);

/*
 * Opens img for random access; purpose ("reading a range") goes into the messages. On failure
 * prints one line naming the file and the problem and returns -errno.
 */
int cli_image_reader_open(const struct cli_image *img, const char *purpose,
			  struct img_reader **ret);

/*
 * Opens img as a chain (uffsnap/chain.h): its parents if it is incremental (parent: --parent
 * PATH, or NULL to look beside it), a chain of one otherwise. Needs a file. On failure prints
 * one line naming the file and the problem (purpose says what for) and returns -errno; with
 * quiet, prints nothing and leaves the message in err.
 */
int cli_chain_open(const struct cli_image *img, const char *parent, const char *purpose, bool quiet,
		   struct img_chain **ret, struct img_error *err);

/* The --parent option's line in a command's help. */
#define CLI_PARENT_HELP                                                                            \
	"  -p, --parent PATH   the parent of an incremental FILE (default: found beside it,\n"     \
	"                      by the digest its metadata names); ignored for a full image\n"

/* Lowercase hex of the first n bytes of a digest, into buf (2n + 1 bytes). */
const char *cli_digest_hex(const uint8_t *digest, size_t n, char *buf);

/*
 * stdout for NULL or "-"; else a temporary beside path (daemon/sys/out-file.h) that gets path's
 * name in cli_output_close() only if all went well: a failure leaves path as it was, and an
 * existing file is replaced only with force. Says why on failure (-errno).
 */
int cli_output_open(const char *path, bool force, mode_t mode, struct out_file *o);

/* Names the output if status >= 0 (after fsync), then closes; returns status or -errno. */
int cli_output_close(const char *path, struct out_file *o, int status);
