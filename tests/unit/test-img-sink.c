/* SPDX-License-Identifier: MIT */
/*
 * The fd sink: every byte reaches the fd in order, in writes of every size, past several of
 * the points where it starts a regular file's writeback (every 32 MiB, proto/img-sink.c), on
 * a file that does not begin at offset 0; flush succeeds on a file and on a pipe. That the
 * writeback was started is not observable here: the benchmarks measure what it changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "uffsnap/image.h"

#define PREFIX	 4097u		  /* bytes already in the file before the sink writes */
#define TOTAL	 (100u << 20) /* past three writeback kicks */
#define MAX_PART (3u << 20)

static uint8_t byte_at(uint64_t i)
{
	return (uint8_t)(i * 2654435761u >> 13);
}

/* Writes TOTAL pattern bytes through the sink in parts of varying size, 1-3 iovecs each. */
static void write_pattern(struct img_sink *sink, uint8_t *buf)
{
	uint64_t off = 0, part = 1;

	for (uint64_t i = 0; i < MAX_PART; i++)
		buf[i] = 0;
	while (off < TOTAL) {
		uint64_t n = part % MAX_PART + 1, half;
		struct iovec iov[3];

		if (n > TOTAL - off)
			n = TOTAL - off;
		for (uint64_t i = 0; i < n; i++)
			buf[i] = byte_at(off + i);
		half = n / 2;
		iov[0] = (struct iovec){buf, half};
		iov[1] = (struct iovec){buf + half, 0};
		iov[2] = (struct iovec){buf + half, n - half};
		assert_int_equal(sink->ops->writev(sink, iov, 3), 0);
		off += n;
		part = part * 7919 + 104729;
	}
}

static void test_sink_file(void **state)
{
	char path[] = "/tmp/uffsnap-test-sink-XXXXXX";
	uint8_t *buf = malloc(MAX_PART), prefix[PREFIX];
	struct img_sink *sink = NULL;
	int fd = mkostemp(path, O_CLOEXEC);
	uint64_t off = 0;
	ssize_t n;

	assert_non_null(buf);
	assert_true(fd >= 0);
	unlink(path);
	memset(prefix, 0xa5, sizeof(prefix));
	assert_int_equal(write(fd, prefix, sizeof(prefix)), (ssize_t)sizeof(prefix));
	assert_int_equal(img_sink_fd_new(fd, &sink), 0);
	write_pattern(sink, buf);
	assert_int_equal(sink->ops->flush(sink), 0);
	img_sink_free(sink);

	assert_int_equal(pread(fd, prefix, sizeof(prefix), 0), (ssize_t)sizeof(prefix));
	for (size_t i = 0; i < sizeof(prefix); i++)
		assert_int_equal(prefix[i], 0xa5);
	while ((n = pread(fd, buf, MAX_PART, PREFIX + off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != byte_at(off + i))
				fail_msg("byte %llu: %#x, want %#x", (unsigned long long)(off + i),
					 buf[i], byte_at(off + i));
		off += n;
	}
	assert_int_equal(off, TOTAL);
	close(fd);
	free(buf);
}

struct drain {
	int fd;
	uint64_t bytes, bad;
};

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	uint8_t buf[65536];
	ssize_t n;

	while ((n = read(d->fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++, d->bytes++)
			d->bad += buf[i] != byte_at(d->bytes);
	return NULL;
}

static void test_sink_pipe(void **state)
{
	uint8_t *buf = malloc(MAX_PART);
	struct img_sink *sink = NULL;
	struct drain d = {0};
	pthread_t th;
	int p[2];

	assert_non_null(buf);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	d.fd = p[0];
	assert_int_equal(pthread_create(&th, NULL, drain_main, &d), 0);
	assert_int_equal(img_sink_fd_new(p[1], &sink), 0);
	write_pattern(sink, buf);
	assert_int_equal(sink->ops->flush(sink), 0); /* nothing to sync on a pipe */
	img_sink_free(sink);
	close(p[1]);
	pthread_join(th, NULL);
	close(p[0]);
	assert_int_equal(d.bytes, TOTAL);
	assert_int_equal(d.bad, 0);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sink_file),
	    cmocka_unit_test(test_sink_pipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
