/* SPDX-License-Identifier: MIT */
/*
 * A held thread's signal state, for the image metadata: what an ELF core's NT_PRSTATUS carries
 * as pr_sigpend and pr_sighold (fs/binfmt_elf.c fill_prstatus(): the thread's own pending set
 * and its blocked mask). Read from /proc while the thread is stopped, so it is the instant's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "target/sigstate.h"

/* "SigPnd:\t0000000000000000": the mask in hex, as fs/proc/array.c render_sigset_t() writes. */
static int status_mask(const char *line, const char *key, uint64_t *ret)
{
	size_t n = strlen(key);
	char *end;

	if (strncmp(line, key, n) || line[n] != ':')
		return -ENOENT;
	*ret = strtoull(line + n + 1, &end, 16);
	return end == line + n + 1 ? -EBADMSG : 0;
}

json_t *target_sigstate_json(pid_t pid, pid_t tid)
{
	uint64_t pending = 0, blocked = 0;
	int found = 0;
	char path[64], line[256], hex[2][24];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		found += status_mask(line, "SigPnd", &pending) == 0;
		found += status_mask(line, "SigBlk", &blocked) == 0;
	}
	fclose(f);
	if (found != 2)
		return NULL;
	snprintf(hex[0], sizeof(hex[0]), "0x%" PRIx64, pending);
	snprintf(hex[1], sizeof(hex[1]), "0x%" PRIx64, blocked);
	return json_pack("{s:s, s:s}", "pending", hex[0], "blocked", hex[1]);
}
