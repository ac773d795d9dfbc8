/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uffsnap/image.h>

#include "wl-check.h"

/* One region's bytes as the image has them. */
struct wl_region_buf {
	uint8_t *header;
	uint8_t *data;
	uint8_t *state; /* per data page */
	uint8_t header_state;
};

static int wl_page_state_of(int r)
{
	switch (r) {
	case -ESTALE:
		return WL_PAGE_DISCARDED;
	case -ENOENT:
		return WL_PAGE_MISSING;
	case -EBADMSG:
		return WL_PAGE_BAD;
	default:
		return -1;
	}
}

/*
 * Read [addr, addr + npages pages) into buf; state[i] says what the image has for page i.
 * Pages the image lacks read as zeros. The fast path reads the whole range at once; only when
 * that fails is it split page by page to say which pages are discarded or missing.
 */
static int wl_read_pages(struct img_reader *r, uint64_t addr, uint64_t ps, uint32_t npages,
			 uint8_t *buf, uint8_t *state)
{
	struct img_error err;
	int k = img_reader_read(r, addr, buf, (size_t)ps * npages, &err);

	if (k >= 0) {
		memset(state, WL_PAGE_PRESENT, npages);
		return 0;
	}
	if (wl_page_state_of(k) < 0)
		return k;
	for (uint32_t i = 0; i < npages; i++) {
		k = img_reader_read(r, addr + i * ps, buf + i * ps, ps, &err);
		if (k >= 0) {
			state[i] = WL_PAGE_PRESENT;
			continue;
		}
		if (wl_page_state_of(k) < 0)
			return k;
		state[i] = (uint8_t)wl_page_state_of(k);
		memset(buf + i * ps, 0, ps);
	}
	return 0;
}

static int wl_region_load(struct img_reader *r, const struct wl_layout *l, uint32_t t,
			  struct wl_region_buf *b)
{
	const struct wl_layout_region *reg = &l->regions[t];
	int k;

	b->header = malloc(l->page_size);
	b->data = malloc(l->page_size * reg->pages);
	b->state = malloc(reg->pages);
	if (!b->header || !b->data || !b->state)
		return -ENOMEM;
	k = wl_read_pages(r, reg->header, l->page_size, 1, b->header, &b->header_state);
	if (k < 0)
		return k;
	return wl_read_pages(r, reg->addr, l->page_size, reg->pages, b->data, b->state);
}

static void wl_region_free(struct wl_region_buf *b)
{
	free(b->header);
	free(b->data);
	free(b->state);
}

int wl_check_image(struct img_reader *r, const struct wl_layout *l, const struct wl_check_opts *o,
		   struct wl_verify_result *ret)
{
	struct wl_verify_opts vo = {.allow_discarded = o->allow_discarded,
				    .max_reports = o->max_reports,
				    .kernel_store_every = l->kernel_store_every,
				    .report = o->report,
				    .userdata = o->userdata};
	struct wl_region_buf *bufs = calloc(WL_MAX_THREADS, sizeof(*bufs));
	struct wl_view *views = calloc(WL_MAX_THREADS, sizeof(*views));
	int k = -ENOMEM;

	if (!bufs || !views || l->nthreads == 0 || l->nthreads > WL_MAX_THREADS) {
		k = bufs && views ? -EINVAL : -ENOMEM;
		goto out;
	}
	for (uint32_t t = 0; t < l->nthreads; t++) {
		k = wl_region_load(r, l, t, &bufs[t]);
		if (k < 0)
			goto out;
		views[t] = (struct wl_view){.thread = t,
					    .geo = wl_layout_geometry(l, t),
					    .header_addr = l->regions[t].header,
					    .data_addr = l->regions[t].addr,
					    .header = bufs[t].header,
					    .data = bufs[t].data,
					    .header_state = bufs[t].header_state,
					    .page_state = bufs[t].state};
	}
	k = wl_verify(views, l->nthreads, &vo, ret);
out:
	for (uint32_t t = 0; bufs && t < WL_MAX_THREADS; t++)
		wl_region_free(&bufs[t]);
	free(bufs);
	free(views);
	return k;
}

int wl_check_image_file(const char *image_path, const struct wl_layout *l,
			const struct wl_check_opts *o, struct wl_verify_result *ret)
{
	struct img_reader *r = NULL;
	struct img_error err = {0};
	int fd = -EBADF, k;
	char line[300];

	fd = open(image_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	k = img_reader_open(fd, &r, &err);
	if (k < 0) {
		if (o->report) {
			snprintf(line, sizeof(line), "cannot open image %s: %s (offset %" PRIu64 ")",
				 image_path, err.msg[0] ? err.msg : strerror(-k), err.offset);
			o->report(o->userdata, line);
		}
		goto out;
	}
	k = wl_check_image(r, l, o, ret);
out:
	img_reader_free(r);
	close(fd);
	return k;
}
