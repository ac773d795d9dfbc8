/* SPDX-License-Identifier: MIT */
/*
 * A held thread's signal state, for the image metadata: what an ELF core's NT_PRSTATUS carries
 * as pr_sigpend and pr_sighold (fs/binfmt_elf.c fill_prstatus(): the thread's own pending set
 * and its blocked mask). Read from /proc while the thread is stopped, so it is the instant's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int target_sigstate_read(pid_t pid, pid_t tid, uint64_t *ret_pending, uint64_t *ret_blocked)
{
	uint64_t pending = 0, blocked = 0;
	char path[64], buf[4096];
	size_t have = 0;
	int fd, found = 0;

	/* One read(2) into a buffer on the stack: this runs for every thread in the hold. */
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (have < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += n;
	}
	close(fd);
	buf[have] = 0;
	for (char *line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		found += status_mask(line, "SigPnd", &pending) == 0;
		found += status_mask(line, "SigBlk", &blocked) == 0;
	}
	if (found != 2)
		return -ENOENT;
	*ret_pending = pending;
	*ret_blocked = blocked;
	return 0;
}
