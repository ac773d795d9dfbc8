/* SPDX-License-Identifier: MIT */
/*
 * Reading an image's META JSON for display. Every field is optional (older or other writers
 * may leave any out): the accessors return NULL / -ENOENT rather than failing.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Parses the META text; NULL if it is not a JSON object, with the reason in err. */
json_t *cli_meta_parse(const char *text, char *err, size_t errlen);

/* obj[key] if obj is an object and the value a string, else NULL. */
const char *cli_json_str(const json_t *obj, const char *key);

/*
 * obj[key] as cli_json_str(), made safe for a terminal in buf: as `ls -b` does, a byte that is
 * not printable ASCII (a control character, DEL, any byte >= 0x80) and '\\' are written as
 * \ooo in octal. A target's name and its mapped files' names are chosen by the target, and
 * could otherwise carry escape sequences. Truncated to fit len; NULL when absent.
 */
const char *cli_json_str_shown(const json_t *obj, const char *key, char *buf, size_t len);

/*
 * obj[key] as an unsigned number, written either as a JSON integer >= 0 or as a string in hex
 * ("0x7f00...") or decimal. -ENOENT when absent, -EINVAL when it is something else.
 */
int cli_json_u64(const json_t *obj, const char *key, uint64_t *ret);

/* The array obj[key]'s length, or -ENOENT if there is no such array. */
long cli_json_array_len(const json_t *obj, const char *key);

/* A JSON integer when v fits in jansson's signed integer, else a decimal string. */
json_t *cli_json_u64_new(uint64_t v);

/* "512 B", "4.0 KiB", "1.5 GiB". */
const char *cli_format_size(uint64_t bytes, char *buf, size_t len);

/* pages * page_size, saturated at UINT64_MAX (a crafted ZERO extent can be that large). */
uint64_t cli_pages_bytes(uint64_t pages, uint32_t page_size);
