/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM from an image into a memory backend's file. The image's pages at addr .. addr +
 * size are the backend's bytes (FORMAT.md "QEMU guests"): file offset = address - addr. Zero
 * pages become holes, so a mostly empty guest restores into a mostly empty file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cli-meta.h"
#include "cli-qemu.h"

/* Bytes read from the image at a time: an extent frame is at most this by default. */
#define RAM_CHUNK (1u << 20)

/* Bytes of [start, end) no PAGES/ZERO extent covers; *first gets the first such address. */
static uint64_t ram_gaps(struct img_reader *r, uint64_t start, uint64_t end, uint64_t *first)
{
	const struct img_index_entry *e;
	size_t n = img_reader_index(r, &e);
	uint64_t ps = img_reader_page_size(r), at = start, gaps = 0;

	*first = UINT64_MAX;
	for (size_t i = 0; i < n && at < end; i++) {
		uint64_t s = e[i].addr, t = s + e[i].npages * ps;

		if (t <= at || e[i].type == IMG_FRAME_DISCARDED)
			continue;
		if (s >= end)
			break;
		if (s > at) {
			gaps += s - at;
			*first = *first < at ? *first : at;
		}
		at = t;
	}
	if (at < end) {
		gaps += end - at;
		*first = *first < at ? *first : at;
	}
	return gaps;
}

int cli_qemu_ram_check(struct img_reader *r, const struct cli_qemu_guest *g, bool allow_holes,
		       char *msg, size_t len)
{
	for (size_t i = 0; i < g->nbackends; i++) {
		const struct cli_qemu_backend *b = &g->backends[i];
		uint64_t first, gaps = ram_gaps(r, b->addr, b->addr + b->size, &first);
		char size[32];

		if (!gaps || allow_holes)
			continue;
		return cli_qemu_fail(
		    msg, len, -ENODATA,
		    "%s of guest RAM in backend %s %s not in the image (missing or "
		    "discarded, the first at offset 0x%" PRIx64 "): the guest cannot be "
		    "restored (--allow-holes restores them as zeros)",
		    cli_format_size(gaps, size, sizeof(size)), b->id, gaps == 1 ? "is" : "are",
		    first - b->addr);
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return !n || (!p[0] && !memcmp(p, p + 1, n - 1));
}

static int pwrite_full(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t k = pwrite(fd, p, n, off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= k;
		off += k;
	}
	return 0;
}

/* Writes the non-zero pages of buf (file offset off); zero pages stay holes. */
static int ram_write_pages(int fd, const uint8_t *buf, size_t n, uint64_t off, uint32_t ps,
			   bool holes, struct cli_qemu_ram_stats *st)
{
	for (size_t i = 0; i < n;) {
		bool zero = holes && all_zero(buf + i, ps);
		size_t j = i + ps;
		int r;

		while (j < n && (holes && all_zero(buf + j, ps)) == zero)
			j += ps;
		if (zero) {
			st->hole_bytes += j - i;
		} else {
			r = pwrite_full(fd, buf + i, j - i, off + i);
			if (r < 0)
				return r;
			st->bytes_written += j - i;
		}
		i = j;
	}
	return 0;
}

/* Punches the whole backend to a hole first; -EOPNOTSUPP: zeros must then be written. */
static int ram_punch(int fd, uint64_t size)
{
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, size) < 0)
		return -errno;
	return 0;
}

int cli_qemu_ram_write(struct img_reader *r, const struct cli_qemu_backend *b, int fd,
		       struct cli_qemu_ram_stats *st, char *msg, size_t len)
{
	uint32_t ps = img_reader_page_size(r);
	uint8_t *buf = malloc(RAM_CHUNK);
	struct img_error err = {0};
	bool holes;
	int k = ram_punch(fd, b->size);

	if (!buf)
		return -ENOMEM;
	if (k < 0 && k != -EOPNOTSUPP) {
		free(buf);
		return cli_qemu_fail(msg, len, k, "cannot punch holes in backend %s's file: %s",
				     b->id, strerror(-k));
	}
	holes = k >= 0;
	for (uint64_t off = 0; off < b->size; off += RAM_CHUNK) {
		size_t n = b->size - off < RAM_CHUNK ? b->size - off : RAM_CHUNK;

		/* Missing pages (only with --allow-holes) are zeros: read page by page. */
		k = img_reader_read(r, b->addr + off, buf, n, &err);
		if (k == -ENOENT || k == -ESTALE) {
			k = 0;
			for (size_t p = 0; k >= 0 && p < n; p += ps) {
				k = img_reader_read(r, b->addr + off + p, buf + p, ps, &err);
				if (k == -ENOENT || k == -ESTALE) {
					memset(buf + p, 0, ps);
					st->missing_bytes += ps;
					k = 0;
				}
			}
		}
		if (k < 0) {
			free(buf);
			return cli_qemu_fail(msg, len, k,
					     "cannot read backend %s from the image: %s", b->id,
					     err.msg);
		}
		k = ram_write_pages(fd, buf, n, off, ps, holes, st);
		if (k < 0) {
			free(buf);
			return cli_qemu_fail(msg, len, k, "cannot write backend %s's file: %s",
					     b->id, strerror(-k));
		}
	}
	free(buf);
	return 0;
}

/* True if /proc/PID/maps maps (dev, ino). */
static bool pid_maps(const char *pid, dev_t dev, ino_t ino)
{
	char path[64], line[4096];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned int maj, min;
		unsigned long long inode;

		if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &inode) == 3)
			found = inode == ino && makedev(maj, min) == dev;
	}
	fclose(f);
	return found;
}

int cli_qemu_ram_check_unmapped(int fd, const char *path, pid_t allowed_pid, char *msg, size_t len)
{
	struct stat st;
	struct dirent *d;
	DIR *proc;
	int r = 0;

	if (fstat(fd, &st) < 0)
		return cli_qemu_fail(msg, len, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return cli_qemu_fail(msg, len, -EINVAL, "%s is not a regular file", path);
	proc = opendir("/proc");
	if (!proc)
		return cli_qemu_fail(msg, len, -errno, "/proc: %s", strerror(errno));
	while (!r && (d = readdir(proc))) {
		char *end;
		long pid = strtol(d->d_name, &end, 10);

		if (*end || pid <= 0 || pid == allowed_pid || pid == getpid())
			continue;
		if (pid_maps(d->d_name, st.st_dev, st.st_ino))
			r = cli_qemu_fail(
			    msg, len, -EBUSY,
			    "%s is mapped by process %ld too, not only by the QEMU waiting for "
			    "the restore: refusing to write it",
			    path, pid);
	}
	closedir(proc);
	return r;
}
