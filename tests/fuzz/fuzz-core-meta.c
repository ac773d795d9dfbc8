/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the ELF core writer's reading of image metadata (proto/img-core*.c):
 * the input is the META JSON of an image that otherwise checks out (a few page, zero and
 * discarded extents at fixed addresses), written through the real writer; img_core_write()
 * must never crash, whatever the threads, VMAs, registers, fpstate, auxv or layout claim.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uffsnap/core.h"
#include "uffsnap/image.h"

#define FUZZ_PS 4096

static int fuzz_image(int fd, const char *meta, size_t len)
{
	struct img_writer_opts o = {.page_size = FUZZ_PS};
	static uint8_t pages[2 * FUZZ_PS];
	struct img_sink *sink = NULL;
	struct img_writer *w = NULL;
	int k = img_sink_fd_new(fd, &sink);

	memset(pages, 0x5a, sizeof(pages));
	if (k >= 0)
		k = img_writer_new(&o, sink, &w);
	if (k >= 0)
		k = img_writer_begin(w, meta, len);
	if (k >= 0)
		k = img_writer_pages(w, 0x10000, 2, pages);
	if (k >= 0)
		k = img_writer_zero(w, 0x20000, 4);
	if (k >= 0)
		k = img_writer_discarded(w, 0x30000, 1);
	if (k >= 0)
		k = img_writer_finish(w);
	img_writer_free(w);
	img_sink_free(sink);
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-core", MFD_CLOEXEC), out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct img_core_report rep;
	struct img_reader *r = NULL;
	struct img_error err;
	char *meta = malloc(size + 1);

	if (fd >= 0 && out >= 0 && meta && size) {
		memcpy(meta, data, size);
		meta[size] = '\0';
		if (fuzz_image(fd, meta, strlen(meta)) >= 0 && img_reader_open(fd, &r, &err) >= 0)
			img_core_write(r, out, &rep, &err);
	}
	img_reader_free(r);
	free(meta);
	if (fd >= 0)
		close(fd);
	if (out >= 0)
		close(out);
	return 0;
}
