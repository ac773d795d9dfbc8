/* SPDX-License-Identifier: MIT */
/*
 * When pre-copy rounds end (engine/precopy.c rounds()): the rule alone, with no snapshot
 * around it, so that it can be tested on made-up rounds (tests/unit/test-rounds.c).
 *
 * Before each round, given what is left to copy: stop and hold (the final hold is predicted
 * to fit the budget and the rounds stopped halving what is left, or what is left is not worth
 * a round), give up (max_rounds, or ROUNDS_STALL in a row predicted no better than the best),
 * or run another round. The budget is a ceiling, not a target: a working set that halves each
 * round is copied down while it halves; one that stays dirty stops the rounds at once.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Rounds in a row predicted to hold no shorter than the best so far: it will not converge. */
#define ROUNDS_STALL 4

enum rounds_step {
	ROUNDS_ANOTHER, /* run another round */
	ROUNDS_HOLD,	/* hold and copy what is left (converged if *ret_fits) */
	ROUNDS_GIVE_UP, /* not converged: no more rounds, what is left is not copied while held */
};

struct rounds_rule {
	uint64_t budget_ns; /* --downtime */
	uint64_t hold_ns;   /* the final hold's cost besides the copy (attaching); 0 if quiet */
	bool quiet;	    /* no final hold: the copy is all of the downtime */
	unsigned max_rounds;
	/* kept by rounds_next(), from rounds_rule_init() */
	uint64_t best, before;
	unsigned stalled;
};

void rounds_rule_init(struct rounds_rule *r, uint64_t budget_ns, uint64_t hold_ns, bool quiet,
		      unsigned max_rounds);
/*
 * done: rounds run so far (round 0 copies everything); copy_ns: what copying what is left
 * while held is predicted to take; left_bytes: what is left. *ret_predicted_ns: the downtime
 * predicted now; *ret_fits: it fits the budget.
 */
enum rounds_step rounds_next(struct rounds_rule *r, unsigned done, uint64_t copy_ns,
			     uint64_t left_bytes, uint64_t *ret_predicted_ns, bool *ret_fits);
