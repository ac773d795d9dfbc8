/* SPDX-License-Identifier: MIT */
/*
 * Replays fuzzer inputs without libFuzzer: every regular file named on the command line, or
 * found (recursively) in a directory named there, goes once through LLVMFuzzerTestOneInput().
 * A crash or a sanitizer report fails the test; exit 0 otherwise, 1 if an input cannot be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file; -errno on failure. */
static int replay_load(const char *path, uint8_t **ret, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;
	struct stat st;
	uint8_t *buf = NULL;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	if (read(fd, buf, st.st_size) != st.st_size) {
		r = -EIO;
		goto out;
	}
	*ret = buf;
	*ret_len = (size_t)st.st_size;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

static int replay_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	r = replay_load(path, &data, &len);
	if (r < 0) {
		fprintf(stderr, "fuzz-replay: %s: %s\n", path, strerror(-r));
		return 1;
	}
	fprintf(stderr, "fuzz-replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	return 0;
}

int main(int argc, char **argv)
{
	int failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (nftw(argv[i], replay_one, 16, FTW_PHYS) != 0) {
			fprintf(stderr, "fuzz-replay: cannot replay %s\n", argv[i]);
			failed = 1;
		}
	}
	return failed;
}
