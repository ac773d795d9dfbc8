// SPDX-License-Identifier: MIT
/*
 * The oracle (guest-harness.h): is a copy of the guest's working set exactly one state the
 * guest program passes through? The scheme is in guest-pattern.h: the state at any instant is
 * "after tick T" plus a prefix of tick T + 1 (its first j pages whole, then w words of the next
 * page, in the order the guest writes them). The newest tick found in any page (word 0 is
 * written first) names the candidate; every page is then compared, word for word, with what
 * that state must hold.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest-harness.h"
#include "guest-pattern.h"

struct oracle {
	const struct guest_layout *l;
	guest_read_fn read;
	void *ctx;
	uint64_t page[GP_WORDS];
	char *why;
	size_t why_len;
};

static int read_page(struct oracle *o, uint64_t gpa)
{
	int r = o->read(o->ctx, gpa, o->page);

	if (r < 0)
		snprintf(o->why, o->why_len, "cannot read guest page at 0x%" PRIx64 ": %s", gpa,
			 strerror(-r));
	return r;
}

/* Leading words of data page i (in o->page) that hold tick t's pattern. */
static unsigned words_of(const struct oracle *o, uint64_t i, uint64_t t)
{
	unsigned w;

	for (w = 0; w < GP_WORDS && o->page[w] == gp_word(t, i, w); w++)
		;
	return w;
}

/* The newest tick in any data page's word 0. */
static int newest_tick(struct oracle *o, uint64_t *ret)
{
	uint64_t i, newest = 0;

	for (i = 0; i < o->l->pages; i++) {
		int r = read_page(o, o->l->gpa[i]);

		if (r < 0)
			return r;
		if (o->page[GP_WORD_TICK] > newest)
			newest = o->page[GP_WORD_TICK];
	}
	*ret = newest;
	return 0;
}

/* Splits "newest" into T and the prefix of T + 1: pages of its stripe whole, then words. */
static int find_state(struct oracle *o, uint64_t newest, struct guest_oracle *ret)
{
	uint64_t first, j;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (newest == 0)
		return 0; /* after tick 0, nothing of tick 1 yet */
	first = gp_first_page(newest, o->l->pages, o->l->per_tick);
	for (j = 0; j < o->l->per_tick; j++) {
		r = read_page(o, o->l->gpa[first + j]);
		if (r < 0)
			return r;
		if (words_of(o, first + j, newest) < GP_WORDS)
			break;
	}
	if (j == o->l->per_tick) {
		ret->tick = newest;
		return 0;
	}
	ret->tick = newest - 1;
	ret->prefix_pages = j;
	ret->prefix_words = words_of(o, first + j, newest);
	return 0;
}

/* Compares data page i with the state in *s. */
static int check_page(struct oracle *o, uint64_t i, const struct guest_oracle *s)
{
	uint64_t old = gp_last_writer(s->tick, i, o->l->pages, o->l->per_tick), next = s->tick + 1;
	uint64_t first = gp_first_page(next, o->l->pages, o->l->per_tick);
	unsigned new_words = 0, w;
	int r = read_page(o, o->l->gpa[i]);

	if (r < 0)
		return r;
	if (i >= first && i < first + s->prefix_pages)
		new_words = GP_WORDS;
	else if (i == first + s->prefix_pages)
		new_words = s->prefix_words;
	for (w = 0; w < GP_WORDS; w++) {
		uint64_t t = w < new_words ? next : old;

		if (o->page[w] == gp_word(t, i, w))
			continue;
		snprintf(o->why, o->why_len,
			 "page %" PRIu64 " (gpa 0x%" PRIx64 ") word %u is 0x%" PRIx64
			 ", not tick %" PRIu64 "'s 0x%" PRIx64 " (state: after tick %" PRIu64
			 " + %" PRIu64 " pages and %u words of tick %" PRIu64 "; page written by tick %" PRIu64 ")",
			 i, o->l->gpa[i], w, o->page[w], t, gp_word(t, i, w), s->tick,
			 s->prefix_pages, s->prefix_words, next, o->page[GP_WORD_TICK]);
		return -EBADMSG;
	}
	return 0;
}

/*
 * The control page: tick_started is stored before tick T + 1's first word, tick_done after
 * tick T's last. So with a prefix: started T + 1, done T; without: started T or T + 1, and done
 * T, or T - 1 when tick T's last word was written and tick_done not yet.
 */
static int check_ctl(struct oracle *o, struct guest_oracle *s)
{
	const struct gp_ctl *c = (const struct gp_ctl *)o->page;
	bool prefix = s->prefix_pages || s->prefix_words, ok;
	int r = read_page(o, o->l->ctl_gpa);

	if (r < 0)
		return r;
	s->tick_started = c->tick_started;
	s->tick_done = c->tick_done;
	s->guest_bad = c->bad;
	if (c->magic != GP_CTL_MAGIC || c->pages != o->l->pages || c->per_tick != o->l->per_tick) {
		snprintf(o->why, o->why_len,
			 "control page at 0x%" PRIx64 " is not the guest program's (magic 0x%" PRIx64
			 ")",
			 o->l->ctl_gpa, c->magic);
		return -EBADMSG;
	}
	if (prefix)
		ok = c->tick_started == s->tick + 1 && c->tick_done == s->tick;
	else
		ok = (c->tick_started == s->tick || c->tick_started == s->tick + 1) &&
		     (c->tick_done == s->tick ||
		      (s->tick && c->tick_started == s->tick && c->tick_done == s->tick - 1));
	if (!ok) {
		snprintf(o->why, o->why_len,
			 "control page says started %" PRIu64 " done %" PRIu64
			 " but the pages hold the state after tick %" PRIu64 " + %" PRIu64
			 " pages and %u words",
			 c->tick_started, c->tick_done, s->tick, s->prefix_pages, s->prefix_words);
		return -EBADMSG;
	}
	return 0;
}

int guest_oracle_check(const struct guest_layout *l, guest_read_fn fn, void *ctx,
		       struct guest_oracle *ret, char *why, size_t why_len)
{
	struct oracle *o = calloc(1, sizeof(*o));
	struct guest_oracle s;
	uint64_t newest, i;
	int r;

	if (!o)
		return -ENOMEM;
	*o = (struct oracle){.l = l, .read = fn, .ctx = ctx, .why = why, .why_len = why_len};
	if (!l->pages || !l->per_tick || l->pages % l->per_tick) {
		snprintf(why, why_len, "bad layout: %" PRIu64 " pages, %" PRIu64 " per tick",
			 l->pages, l->per_tick);
		r = -EINVAL;
		goto out;
	}
	r = newest_tick(o, &newest);
	if (r == 0)
		r = find_state(o, newest, &s);
	for (i = 0; r == 0 && i < l->pages; i++)
		r = check_page(o, i, &s);
	if (r == 0)
		r = check_ctl(o, &s);
	if (r == 0)
		*ret = s;
out:
	free(o);
	return r;
}
