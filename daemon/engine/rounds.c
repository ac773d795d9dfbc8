/* SPDX-License-Identifier: MIT */
/* When pre-copy rounds end (see engine/rounds.h). */
#include "engine/rounds.h"

void rounds_rule_init(struct rounds_rule *r, uint64_t budget_ns, uint64_t hold_ns, bool quiet,
		      unsigned max_rounds)
{
	*r = (struct rounds_rule){.budget_ns = budget_ns,
				  .hold_ns = quiet ? 0 : hold_ns,
				  .quiet = quiet,
				  .max_rounds = max_rounds,
				  .best = UINT64_MAX,
				  .before = UINT64_MAX};
}

enum rounds_step rounds_next(struct rounds_rule *r, unsigned done, uint64_t copy_ns,
			     uint64_t left_bytes, uint64_t *ret_predicted_ns, bool *ret_fits)
{
	/* Not worth another round: a hold mostly attaching, or next to nothing left to copy. */
	uint64_t not_worth = r->quiet ? r->budget_ns / 100 : r->budget_ns / 10;
	uint64_t next = copy_ns + r->hold_ns;
	bool fits = next <= r->budget_ns, last = done > r->max_rounds,
	     /* round 0 copied everything: what it leaves is always less */
	     shrinking = done == 1 || left_bytes <= r->before / 2;

	*ret_predicted_ns = next;
	*ret_fits = fits;
	if (done && (copy_ns <= not_worth || (fits && (!shrinking || last))))
		return ROUNDS_HOLD;
	if (last || r->stalled >= ROUNDS_STALL)
		return ROUNDS_GIVE_UP;
	r->stalled = next < r->best ? 0 : r->stalled + 1;
	r->best = next < r->best ? next : r->best;
	r->before = left_bytes;
	return ROUNDS_ANOTHER;
}
