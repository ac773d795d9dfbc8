/* SPDX-License-Identifier: MIT */
/*
 * Text the target names, for the image's JSON metadata: file paths, its command name and
 * line. Linux takes any bytes but '/' and NUL in a file name, and any in a command name, while
 * JSON strings are Unicode: jansson refuses a string that is not valid UTF-8, which failed the
 * whole snapshot of a process whose executable or a mapped file had such a name.
 */
#pragma once

#include <stdbool.h>

#include <jansson.h>

/*
 * A JSON string of s: valid UTF-8 as it is, every other byte as the four characters \xNN
 * (lower-case hex). Not reversible (a name may hold "\x41" itself): the metadata describes
 * the target, nothing is looked up by these names. NULL only when out of memory.
 */
json_t *ustr_json(const char *s);
/* Is s valid UTF-8 (what ustr_json() keeps as it is)? */
bool ustr_valid(const char *s);
/*
 * The same string as JSON text, quoted, at o, byte for byte what jansson's json_dumps() writes
 * for ustr_json(s) (no JSON_ENSURE_ASCII, no JSON_ESCAPE_SLASH); returns the end. For metadata
 * built while the target is held, without building jansson objects. o has room for
 * USTR_JSON_MAX(strlen(s)) bytes; nothing is NUL-terminated.
 */
#define USTR_JSON_MAX(len) (6 * (size_t)(len) + 2)
char *ustr_put_json(char *o, const char *s);
