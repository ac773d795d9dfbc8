/* SPDX-License-Identifier: MIT */
/*
 * engine/rounds.c: when pre-copy rounds end, on made-up rounds. A 50 ms budget and a 10 ms
 * attach (the final hold's cost besides the copy), 10 rounds at most, unless said; copy times
 * in ms, what is left in MiB (the rule compares what is left between rounds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/rounds.h"

#define MS  1000000ull
#define MIB (1ull << 20)

/* Feeds rounds (copy ms, MiB left, as after each round), expecting step at each. */
struct round {
	uint64_t copy_ms, left_mib;
	enum rounds_step want;
};

static void play(struct rounds_rule *r, const struct round *rs, size_t n, bool want_fits)
{
	uint64_t predicted;
	bool fits = false;

	for (size_t i = 0; i < n; i++) {
		enum rounds_step got = rounds_next(r, (unsigned)i, rs[i].copy_ms * MS,
						   rs[i].left_mib * MIB, &predicted, &fits);

		assert_int_equal(got, rs[i].want);
		assert_int_equal(predicted, rs[i].copy_ms * MS + r->hold_ns);
	}
	assert_int_equal(fits, want_fits);
}

/* Before round 0 (everything left) there is always a round, however little memory. */
static void test_round_zero(void **state)
{
	struct rounds_rule r;
	const struct round rs[] = {{1, 1, ROUNDS_ANOTHER}};

	(void)state;
	rounds_rule_init(&r, 50 * MS, 10 * MS, false, 10);
	play(&r, rs, 1, true);
}

/*
 * A working set that halves each round: rounds go on while it halves, past the first that
 * fits (the budget is a ceiling, not a target), until what is left is not worth a round.
 */
static void test_halving(void **state)
{
	struct rounds_rule r;
	const struct round rs[] = {
	    {2000, 1024, ROUNDS_ANOTHER}, /* round 0: everything */
	    {200, 100, ROUNDS_ANOTHER},	  /* does not fit */
	    {30, 15, ROUNDS_ANOTHER},	  /* fits (40 ms), and halved: go on */
	    {14, 7, ROUNDS_ANOTHER},	  /* fits, halved again */
	    {6, 3, ROUNDS_ANOTHER},	  /* halved; 6 ms is more than a tenth of the budget */
	    {4, 1, ROUNDS_HOLD},	  /* under a tenth: not worth a round */
	};

	(void)state;
	rounds_rule_init(&r, 50 * MS, 10 * MS, false, 10);
	play(&r, rs, sizeof(rs) / sizeof(rs[0]), true);
}

/* A working set that stays dirty stops the rounds as soon as it fits: one round, no more. */
static void test_stays_dirty(void **state)
{
	struct rounds_rule r;
	const struct round rs[] = {
	    {2000, 1024, ROUNDS_ANOTHER},
	    {16, 16, ROUNDS_ANOTHER}, /* round 1: round 0 copied everything, this is less */
	    {16, 16, ROUNDS_HOLD},    /* fits (26 ms), not halved: hold now */
	};

	(void)state;
	rounds_rule_init(&r, 50 * MS, 10 * MS, false, 10);
	play(&r, rs, sizeof(rs) / sizeof(rs[0]), true);
}

/* Shrinking, but not by half: held at the first round that fits. */
static void test_shrinks_slowly(void **state)
{
	struct rounds_rule r;
	const struct round rs[] = {
	    {2000, 1024, ROUNDS_ANOTHER},
	    {100, 100, ROUNDS_ANOTHER}, /* does not fit */
	    {70, 70, ROUNDS_ANOTHER},	/* does not fit */
	    {38, 38, ROUNDS_HOLD},	/* fits (48 ms); 38 > 70 / 2 */
	};

	(void)state;
	rounds_rule_init(&r, 50 * MS, 10 * MS, false, 10);
	play(&r, rs, sizeof(rs) / sizeof(rs[0]), true);
}

/* A target dirtying faster than rounds copy: no progress for ROUNDS_STALL rounds, give up. */
static void test_stalls(void **state)
{
	struct rounds_rule r;
	const struct round rs[] = {
	    {2000, 1024, ROUNDS_ANOTHER}, {500, 500, ROUNDS_ANOTHER}, /* the best so far */
	    {520, 520, ROUNDS_ANOTHER},	  {510, 510, ROUNDS_ANOTHER},
	    {600, 600, ROUNDS_ANOTHER},	  {505, 505, ROUNDS_ANOTHER}, /* 4 rounds no better */
	    {400, 400, ROUNDS_GIVE_UP}, /* better now, but it gave up */
	};

	(void)state;
	rounds_rule_init(&r, 50 * MS, 10 * MS, false, 10);
	play(&r, rs, sizeof(rs) / sizeof(rs[0]), false);
}

/* Progress each round, never enough to fit: give up after max_rounds. */
static void test_max_rounds(void **state)
{
	struct rounds_rule r;
	const struct round rs[] = {
	    {2000, 1024, ROUNDS_ANOTHER}, {500, 500, ROUNDS_ANOTHER}, {450, 450, ROUNDS_ANOTHER},
	    {400, 400, ROUNDS_ANOTHER},	  {350, 350, ROUNDS_GIVE_UP}, /* 4 > max_rounds 3 */
	};

	(void)state;
	rounds_rule_init(&r, 50 * MS, 10 * MS, false, 3);
	play(&r, rs, sizeof(rs) / sizeof(rs[0]), false);
}

/* Still halving at the last round allowed, and it fits: held, converged. */
static void test_last_round_fits(void **state)
{
	struct rounds_rule r;
	const struct round rs[] = {
	    {2000, 1024, ROUNDS_ANOTHER}, {200, 200, ROUNDS_ANOTHER}, {80, 80, ROUNDS_ANOTHER},
	    {30, 30, ROUNDS_ANOTHER}, /* fits, halved: go on (3 rounds done, max 3) */
	    {12, 12, ROUNDS_HOLD},    /* halved again, but the last */
	};

	(void)state;
	rounds_rule_init(&r, 50 * MS, 10 * MS, false, 3);
	play(&r, rs, sizeof(rs) / sizeof(rs[0]), true);
}

/* The attach alone exceeds the budget (a loaded machine, many threads): once little is left
 * to copy, hold anyway (more rounds would not shorten it), not converged. */
static void test_attach_exceeds(void **state)
{
	struct rounds_rule r;
	const struct round rs[] = {
	    {2000, 1024, ROUNDS_ANOTHER},
	    {40, 40, ROUNDS_ANOTHER}, /* 100 ms: does not fit */
	    {4, 4, ROUNDS_HOLD},      /* a tenth of the budget */
	};

	(void)state;
	rounds_rule_init(&r, 50 * MS, 90 * MS, false, 10);
	play(&r, rs, sizeof(rs) / sizeof(rs[0]), false);
}

/* No final hold (a stopped guest): the copy is all of the downtime, down to a hundredth. */
static void test_quiet(void **state)
{
	struct rounds_rule r;
	const struct round rs[] = {
	    {2000, 1024, ROUNDS_ANOTHER}, {40, 40, ROUNDS_ANOTHER}, /* fits; hold_ns ignored */
	    {4, 4, ROUNDS_ANOTHER}, /* halved, and more than a hundredth (0.5 ms) */
	    {1, 1, ROUNDS_ANOTHER}, /* halved */
	    {1, 1, ROUNDS_HOLD},    /* not halved */
	};

	(void)state;
	rounds_rule_init(&r, 50 * MS, 10 * MS, true, 10);
	assert_int_equal(r.hold_ns, 0);
	play(&r, rs, sizeof(rs) / sizeof(rs[0]), true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_zero),	    cmocka_unit_test(test_halving),
	    cmocka_unit_test(test_stays_dirty),	    cmocka_unit_test(test_shrinks_slowly),
	    cmocka_unit_test(test_stalls),	    cmocka_unit_test(test_max_rounds),
	    cmocka_unit_test(test_last_round_fits), cmocka_unit_test(test_attach_exceeds),
	    cmocka_unit_test(test_quiet),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
