/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uffsnap/image.h>

#include "wl-refdump.h"

/* Torn dump: pause between pages. */
#define WL_TORN_PAGE_PAUSE_NS (100 * 1000)

/* The regions' bytes, header page first, then the data pages, one buffer per thread. */
struct wl_dump {
	uint64_t ps;
	uint32_t n;
	uint8_t *buf[WL_MAX_THREADS];
};

static int wl_dump_alloc(const struct wl_layout *l, struct wl_dump *d)
{
	*d = (struct wl_dump){.ps = l->page_size, .n = l->nthreads};
	for (uint32_t t = 0; t < d->n; t++) {
		d->buf[t] = calloc(l->regions[t].pages + 1, d->ps);
		if (!d->buf[t])
			return -ENOMEM;
	}
	return 0;
}

static void wl_dump_free(struct wl_dump *d)
{
	for (uint32_t t = 0; t < d->n; t++)
		free(d->buf[t]);
}

static bool wl_page_zero(const uint8_t *p, size_t len)
{
	return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

/* One frame per page: a data page, or a zero extent when all its bytes are zero. */
static int wl_dump_write_pages(struct img_writer *w, uint64_t addr, const uint8_t *data,
			       uint32_t npages, uint64_t ps)
{
	for (uint32_t i = 0; i < npages; i++) {
		const uint8_t *page = data + i * ps;
		int r = wl_page_zero(page, ps) ? img_writer_zero(w, addr + i * ps, 1)
					       : img_writer_pages(w, addr + i * ps, 1, page);

		if (r < 0)
			return r;
	}
	return 0;
}

static int wl_dump_write(const struct wl_layout *l, const struct wl_dump *d, const char *mode,
			 const char *path)
{
	struct img_writer_opts opts = {.page_size = (uint32_t)d->ps};
	struct img_sink *sink = NULL;
	struct img_writer *w = NULL;
	char meta[160];
	int fd = -EBADF, r;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	r = img_sink_fd_new(fd, &sink);
	if (r >= 0)
		r = img_writer_new(&opts, sink, &w);
	snprintf(meta, sizeof(meta), "{\"tool\":\"wl-refdump\",\"mode\":\"%s\",\"pid\":%lld}", mode,
		 (long long)l->pid);
	if (r >= 0)
		r = img_writer_begin(w, meta, strlen(meta));
	for (uint32_t t = 0; r >= 0 && t < d->n; t++) {
		r = wl_dump_write_pages(w, l->regions[t].header, d->buf[t], 1, d->ps);
		if (r >= 0)
			r = wl_dump_write_pages(w, l->regions[t].addr, d->buf[t] + d->ps,
						l->regions[t].pages, d->ps);
	}
	if (r >= 0)
		r = img_writer_finish(w);
	img_writer_free(w);
	img_sink_free(sink);
	close(fd);
	return r;
}

static int wl_dump_read_all(const struct wl_proc *p, struct wl_dump *d)
{
	const struct wl_layout *l = &p->layout;
	int r = 0;

	for (uint32_t t = 0; r >= 0 && t < d->n; t++) {
		r = wl_proc_read(p->pid, l->regions[t].header, d->buf[t], d->ps);
		if (r >= 0)
			r = wl_proc_read(p->pid, l->regions[t].addr, d->buf[t] + d->ps,
					 l->regions[t].pages * d->ps);
	}
	return r;
}

int wl_refdump_stopped(const struct wl_proc *p, const char *image_path)
{
	struct wl_dump d;
	int r = wl_dump_alloc(&p->layout, &d), c;

	if (r >= 0) {
		r = wl_proc_stop(p->pid);
		if (r >= 0)
			r = wl_dump_read_all(p, &d);
		/* Continue whatever happened: the target must never be left stopped. */
		c = wl_proc_cont(p->pid);
		r = r < 0 ? r : c;
	}
	if (r >= 0)
		r = wl_dump_write(&p->layout, &d, "stopped", image_path);
	wl_dump_free(&d);
	return r;
}

static int wl_torn_read_rest(const struct wl_proc *p, struct wl_dump *d)
{
	struct timespec ts = {0, WL_TORN_PAGE_PAUSE_NS};
	const struct wl_layout *l = &p->layout;

	int r = 0;

	for (uint32_t t = 0; r >= 0 && t < d->n; t++) {
		for (uint32_t pg = 1; r >= 0 && pg < l->regions[t].pages; pg++) {
			r = wl_proc_read(p->pid, l->regions[t].addr + pg * d->ps,
					 d->buf[t] + (pg + 1) * d->ps, d->ps);
			nanosleep(&ts, NULL);
		}
		if (r >= 0)
			r = wl_proc_read(p->pid, l->regions[t].header, d->buf[t], d->ps);
	}
	return r;
}

/*
 * Why this is always torn: page 0 was read before c0 = the counter read just after it, so it
 * holds no store newer than c0 + 1. The rest is read once the counter passed c0 + S + 1, so the
 * image's newest store K is > c0 + S + 1, and the P stores K - P + 1 .. K cover every page: the
 * image must show page 0 holding stores > c0 + 1. Each of its slots is then wrong.
 */
int wl_refdump_torn(const struct wl_proc *p, const char *image_path)
{
	const struct wl_layout *l = &p->layout;
	struct wl_geometry g = wl_layout_geometry(l, 0);
	uint64_t c0[WL_MAX_THREADS];
	struct wl_dump d;
	int r = wl_dump_alloc(l, &d);

	for (uint32_t t = 0; r >= 0 && t < d.n; t++)
		r = wl_proc_read(p->pid, l->regions[t].addr, d.buf[t] + d.ps, d.ps);
	if (r >= 0)
		r = wl_proc_counters(p, c0);
	/* Past c0 + S + 1 (S is the same for every thread). */
	if (r >= 0)
		r = wl_proc_wait_stores(p, c0, wl_slots(&g) + 1);
	if (r >= 0)
		r = wl_torn_read_rest(p, &d);
	if (r >= 0)
		r = wl_dump_write(l, &d, "torn", image_path);
	wl_dump_free(&d);
	return r;
}
