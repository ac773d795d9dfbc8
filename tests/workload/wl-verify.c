/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "wl-verify.h"

#define WL_DEFAULT_MAX_REPORTS 20

/* State of the verification of one thread's region. */
struct wl_vthread {
	const struct wl_verify_opts *opts;
	struct wl_verify_result *res;
	const struct wl_view *v;
	unsigned reported;
	uint64_t problems;
	uint64_t inflight; /* a kernel store that may be half-copied (0: none) */
};

static void __attribute__((format(printf, 2, 3))) wl_problem(struct wl_vthread *c,
							     const char *fmt, ...)
{
	unsigned max = c->opts->max_reports ? c->opts->max_reports : WL_DEFAULT_MAX_REPORTS;
	char line[400];
	va_list ap;

	c->res->problems++;
	c->problems++;
	if (!c->opts->report || c->reported >= max)
		return;
	c->reported++;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->opts->report(c->opts->userdata, line);
}

static void wl_vthread_finish(struct wl_vthread *c)
{
	char line[160];

	if (!c->opts->report || c->problems <= c->reported)
		return;
	snprintf(line, sizeof(line), "thread %" PRIu32 ": %" PRIu64 " more problems not shown",
		 c->v->thread, c->problems - c->reported);
	c->opts->report(c->opts->userdata, line);
}

bool wl_geometry_valid(const struct wl_geometry *g)
{
	return g->page_size >= 4096 && (g->page_size & (g->page_size - 1)) == 0 && g->pages >= 1 &&
	       g->records >= 1 && g->records <= g->page_size / WL_RECORD_SIZE;
}

static bool wl_page_present(const struct wl_view *v, uint64_t page)
{
	return !v->page_state || v->page_state[page] == WL_PAGE_PRESENT;
}

static bool wl_is_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Count the pages the source could not give, and say where they are. */
static void wl_count_pages(struct wl_vthread *c)
{
	static const char *const what[] = {"present", "discarded after the snapshot instant",
					   "missing from the image", "unreadable (bad checksum)"};
	const struct wl_view *v = c->v;

	for (uint32_t p = 0; p <= v->geo.pages; p++) {
		uint8_t st = p == 0 ? v->header_state : (v->page_state ? v->page_state[p - 1] : 0);
		uint64_t addr = p == 0 ? v->header_addr : v->data_addr + (p - 1) * v->geo.page_size;

		if (st == WL_PAGE_PRESENT)
			continue;
		if (st == WL_PAGE_DISCARDED)
			c->res->discarded_pages++;
		else if (st == WL_PAGE_MISSING)
			c->res->missing_pages++;
		else
			c->res->bad_pages++;
		if (st != WL_PAGE_DISCARDED || !c->opts->allow_discarded)
			wl_problem(c, "thread %" PRIu32 " %s page at 0x%" PRIx64 " is %s",
				   v->thread, p == 0 ? "header" : "data", addr,
				   what[st > WL_PAGE_BAD ? WL_PAGE_BAD : st]);
	}
}

static void wl_check_header(struct wl_vthread *c, uint32_t nthreads)
{
	const struct wl_view *v = c->v;
	struct wl_header h;
	uint64_t counter;

	if (v->header_state != WL_PAGE_PRESENT)
		return;
	memcpy(&h, v->header, sizeof(h));
	memcpy(&counter, v->header + WL_COUNTER_OFFSET, sizeof(counter));
	if (h.magic != WL_HEADER_MAGIC || h.thread != v->thread || h.nthreads != nthreads ||
	    h.pages != v->geo.pages || h.records != v->geo.records ||
	    h.page_size != v->geo.page_size)
		wl_problem(c,
			   "thread %" PRIu32 " header at 0x%" PRIx64 " does not match the layout: "
			   "magic 0x%" PRIx64 " thread %" PRIu32 " threads %" PRIu32
			   " pages %" PRIu32 " records %" PRIu32 " page_size %" PRIu64,
			   v->thread, v->header_addr, h.magic, h.thread, h.nthreads, h.pages,
			   h.records, h.page_size);
	if (!wl_is_zero(v->header + sizeof(h), WL_COUNTER_OFFSET - sizeof(h)) ||
	    !wl_is_zero(v->header + WL_COUNTER_OFFSET + 8,
			v->geo.page_size - WL_COUNTER_OFFSET - 8))
		wl_problem(c, "thread %" PRIu32 " header page at 0x%" PRIx64
			   " has bytes that the workload never writes",
			   v->thread, v->header_addr);
	c->res->counter[v->thread] = counter;
	c->res->has_counter[v->thread] = true;
}

/* The newest store of this thread found in its right slot on a present page. */
static uint64_t wl_max_store(const struct wl_vthread *c)
{
	const struct wl_view *v = c->v;
	uint64_t n = wl_slots(&v->geo), max = 0;

	for (uint64_t slot = 0; slot < n; slot++) {
		struct wl_record r;
		uint32_t t;
		uint64_t s;

		if (!wl_page_present(v, wl_slot_page(&v->geo, slot)))
			continue;
		wl_record_load(v->data + wl_slot_offset(&v->geo, slot), &r);
		/* A half-copied tag can decode to a plausible store: only the whole tag counts. */
		if (c->inflight && slot == wl_slot_of_store(&v->geo, c->inflight) &&
		    r.tag != wl_tag(v->thread, c->inflight))
			continue;
		if (wl_tag_decode(r.tag, &t, &s) && t == v->thread &&
		    wl_slot_of_store(&v->geo, s) == slot && s > max)
			max = s;
	}
	return max;
}

static void wl_describe(const struct wl_view *v, uint64_t slot, const struct wl_record *r,
			char *buf, size_t len)
{
	uint32_t t;
	uint64_t s;

	if (r->tag == 0 && r->seen == 0)
		snprintf(buf, len, "zeros");
	else if (!wl_tag_decode(r->tag, &t, &s))
		snprintf(buf, len, "garbage {0x%016" PRIx64 ", 0x%016" PRIx64 "}", r->tag, r->seen);
	else
		snprintf(buf, len, "store %" PRIu64 " of thread %" PRIu32 "%s (seen %" PRIu64 ")", s,
			 t, t == v->thread && wl_slot_of_store(&v->geo, s) == slot ? ""
										   : " [wrong slot]",
			 r->seen);
}

/* Every byte of the tag is the old store's or the in-flight store's. */
static bool wl_tag_mixed(uint64_t found, uint64_t old, uint64_t new)
{
	for (unsigned i = 0; i < 64; i += 8)
		if ((found >> i & 0xff) != (old >> i & 0xff) && (found >> i & 0xff) != (new >> i & 0xff))
			return false;
	return true;
}

static bool wl_slot_ok(const struct wl_vthread *c, uint64_t slot, uint64_t want,
		       const struct wl_record *r)
{
	uint32_t t = c->v->thread;

	if (c->inflight && slot == wl_slot_of_store(&c->v->geo, c->inflight))
		return r->tag == wl_tag(t, c->inflight) ||
		       wl_tag_mixed(r->tag, want ? wl_tag(t, want) : 0, wl_tag(t, c->inflight));
	return want ? r->tag == wl_tag(t, want) : r->tag == 0 && r->seen == 0;
}

static void wl_check_slots(struct wl_vthread *c, uint64_t k)
{
	const struct wl_view *v = c->v;
	uint64_t n = wl_slots(&v->geo);

	for (uint64_t slot = 0; slot < n; slot++) {
		uint64_t off = wl_slot_offset(&v->geo, slot), want = wl_latest_store(&v->geo, slot, k);
		struct wl_record r;
		char found[120];

		if (!wl_page_present(v, wl_slot_page(&v->geo, slot)))
			continue;
		wl_record_load(v->data + off, &r);
		if (wl_slot_ok(c, slot, want, &r))
			continue;
		wl_describe(v, slot, &r, found, sizeof(found));
		if (want)
			wl_problem(c,
				   "thread %" PRIu32 " slot %" PRIu64 " (page %" PRIu32
				   " record %" PRIu64 ", addr 0x%" PRIx64 "): expected store %" PRIu64
				   " (newest is %" PRIu64 "), found %s",
				   v->thread, slot, wl_slot_page(&v->geo, slot), slot / v->geo.pages,
				   v->data_addr + off, want, k, found);
		else
			wl_problem(c,
				   "thread %" PRIu32 " slot %" PRIu64 " (addr 0x%" PRIx64
				   "): expected zeros (newest store is %" PRIu64 "), found %s",
				   v->thread, slot, v->data_addr + off, k, found);
	}
}

/* Bytes of a page past the R records used are never written. */
static void wl_check_unused(struct wl_vthread *c)
{
	const struct wl_view *v = c->v;
	uint64_t used = (uint64_t)v->geo.records * WL_RECORD_SIZE;

	if (used == v->geo.page_size)
		return;
	for (uint32_t p = 0; p < v->geo.pages; p++) {
		const uint8_t *page = v->data + (uint64_t)p * v->geo.page_size;

		if (wl_page_present(v, p) && !wl_is_zero(page + used, v->geo.page_size - used))
			wl_problem(c, "thread %" PRIu32 " page at 0x%" PRIx64
				   " has bytes past its %" PRIu32 " records",
				   v->thread, v->data_addr + (uint64_t)p * v->geo.page_size,
				   v->geo.records);
	}
}

/*
 * Call fn for every store of the last S (those the region still holds) whose record is
 * present and carries the right tag, in store order.
 */
static void wl_each_store(struct wl_vthread *c, uint64_t k,
			  bool (*fn)(struct wl_vthread *c, uint64_t s, const struct wl_record *r,
				     uint64_t addr, void *arg),
			  void *arg)
{
	const struct wl_view *v = c->v;
	uint64_t n = wl_slots(&v->geo);

	for (uint64_t s = k > n ? k - n + 1 : 1; s <= k && s > 0; s++) {
		uint64_t slot = wl_slot_of_store(&v->geo, s), off = wl_slot_offset(&v->geo, slot);
		struct wl_record r;

		/* The in-flight kernel store's seen bytes may be half-copied. */
		if (s == c->inflight || !wl_page_present(v, wl_slot_page(&v->geo, slot)))
			continue;
		wl_record_load(v->data + off, &r);
		if (r.tag == wl_tag(v->thread, s) && !fn(c, s, &r, v->data_addr + off, arg))
			return;
	}
}

struct wl_seen_state {
	uint64_t prev_s, prev_seen;
	bool self; /* the thread observes its own counter (one thread) */
};

static bool wl_seen_step(struct wl_vthread *c, uint64_t s, const struct wl_record *r,
			 uint64_t addr, void *arg)
{
	struct wl_seen_state *st = arg;

	if (st->self && r->seen != s - 1)
		wl_problem(c, "thread %" PRIu32 " store %" PRIu64 " at 0x%" PRIx64 ": seen %" PRIu64
			   " but a lone thread reads its own counter, %" PRIu64, c->v->thread, s,
			   addr, r->seen, s - 1);
	if (st->prev_s && r->seen < st->prev_seen)
		wl_problem(c, "thread %" PRIu32 " store %" PRIu64 " at 0x%" PRIx64 ": seen %" PRIu64
			   " is less than seen %" PRIu64 " of earlier store %" PRIu64,
			   c->v->thread, s, addr, r->seen, st->prev_seen, st->prev_s);
	st->prev_s = s;
	st->prev_seen = r->seen;
	if (r->seen > c->res->max_seen[c->v->thread])
		c->res->max_seen[c->v->thread] = r->seen;
	return true;
}

struct wl_cross_state {
	uint32_t other;
	uint64_t bound;
	bool counter; /* bound is the other's counter (else its newest store) */
};

static bool wl_cross_step(struct wl_vthread *c, uint64_t s, const struct wl_record *r,
			  uint64_t addr, void *arg)
{
	struct wl_cross_state *st = arg;

	if (r->seen <= st->bound)
		return true;
	/* Monotone seen: the later stores would only repeat this one. */
	wl_problem(c,
		   "thread %" PRIu32 " store %" PRIu64 " at 0x%" PRIx64 " saw thread %" PRIu32
		   " at store %" PRIu64 ", but the image holds thread %" PRIu32 " at %s %" PRIu64
		   " (the observation happened before the instant, so the image must include it)",
		   c->v->thread, s, addr, st->other, r->seen, st->other,
		   st->counter ? "counter" : "newest store", st->bound);
	return false;
}

static void wl_verify_thread(struct wl_vthread *c, uint32_t nthreads)
{
	const struct wl_view *v = c->v;
	struct wl_verify_result *res = c->res;
	struct wl_seen_state seen = {.self = nthreads == 1};
	unsigned every = c->opts->kernel_store_every;
	uint64_t k, cnt;

	wl_count_pages(c);
	wl_check_header(c, nthreads);
	cnt = res->counter[v->thread];
	if (every && res->has_counter[v->thread] && (cnt + 1) % every == 0)
		c->inflight = cnt + 1;
	k = wl_max_store(c);
	/* The stores between max and the counter may all lie on pages the image lacks. */
	if (res->has_counter[v->thread] && cnt > k)
		k = cnt;
	res->k[v->thread] = k;
	res->stores += k;
	if (res->has_counter[v->thread] &&
	    (c->opts->exact_counter ? cnt != k : cnt != k && cnt + 1 != k))
		wl_problem(c,
			   "thread %" PRIu32 " counter at 0x%" PRIx64 " is %" PRIu64
			   " but the newest store in memory is %" PRIu64 " (counter must be %s)",
			   v->thread, v->header_addr + WL_COUNTER_OFFSET, cnt, k,
			   c->opts->exact_counter ? "equal to it" : "equal to it or one less");
	wl_check_slots(c, k);
	wl_check_unused(c);
	wl_each_store(c, k, wl_seen_step, &seen);
}

static int wl_verify_init(const struct wl_view *views, size_t n, struct wl_verify_result *ret)
{
	if (n == 0 || n > WL_MAX_THREADS)
		return -EINVAL;
	for (size_t t = 0; t < n; t++)
		if (views[t].thread != t || !wl_geometry_valid(&views[t].geo) ||
		    !views[t].header || !views[t].data)
			return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	ret->nthreads = (uint32_t)n;
	return 0;
}

int wl_verify(const struct wl_view *views, size_t n, const struct wl_verify_opts *opts,
	      struct wl_verify_result *ret)
{
	struct wl_vthread c[WL_MAX_THREADS];
	int r = wl_verify_init(views, n, ret);

	if (r < 0)
		return r;
	for (size_t t = 0; t < n; t++) {
		c[t] = (struct wl_vthread){.opts = opts, .res = ret, .v = &views[t]};
		wl_verify_thread(&c[t], (uint32_t)n);
	}
	/* A store that saw the neighbour's counter at k happened before the instant, and so did
	 * the neighbour's publishing of k: the image must hold the neighbour at >= k. */
	for (size_t t = 0; t < n && n > 1; t++) {
		uint32_t o = (uint32_t)((t + 1) % n);
		struct wl_cross_state st = {.other = o,
					    .counter = ret->has_counter[o],
					    .bound = ret->has_counter[o] ? ret->counter[o] : ret->k[o]};

		wl_each_store(&c[t], ret->k[t], wl_cross_step, &st);
	}
	for (size_t t = 0; t < n; t++)
		wl_vthread_finish(&c[t]);
	ret->consistent = ret->problems == 0 && ret->missing_pages == 0 && ret->bad_pages == 0 &&
			  (opts->allow_discarded || ret->discarded_pages == 0);
	return 0;
}
