/* SPDX-License-Identifier: MIT */
/*
 * reasm/window: the receiver's per-stream reorder window. In-order and shuffled
 * arrival, credit, duplicates, END rules, and a seeded random model check
 * (honours MW_TEST_SEED) that nothing is ever released out of order.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "mw_err.h"
#include "reasm.h"

static void deliver(struct mw_reasm *r, uint64_t seq)
{
	const char *why = NULL;
	int idx = mw_reasm_claim(r, seq, &why);

	assert_true(idx >= 0);
	mw_reasm_mark(r, (unsigned)idx, MW_RS_DECODING);
	mw_reasm_mark(r, (unsigned)idx, MW_RS_READY);
}

static void in_order(void **state)
{
	struct mw_reasm r;
	uint64_t limit = 0, i;

	(void)state;
	assert_int_equal(mw_reasm_init(&r, 4), 0);
	assert_int_equal(mw_reasm_head(&r), -1);
	for (i = 0; i < 100; i++) {
		deliver(&r, i);
		assert_int_equal(mw_reasm_head(&r), (int)(i % 4));
		if (mw_reasm_pop(&r, &limit))
			assert_true(limit == r.next + 4);
		assert_int_equal(r.next, i + 1);
	}
	assert_int_equal(mw_reasm_end(&r, 100, &(const char *){ NULL }), 0);
	assert_true(mw_reasm_done(&r));
	mw_reasm_destroy(&r);
}

static void out_of_order_waits_for_head(void **state)
{
	struct mw_reasm r;
	uint64_t limit;

	(void)state;
	assert_int_equal(mw_reasm_init(&r, 4), 0);
	deliver(&r, 2);
	deliver(&r, 1);
	assert_int_equal(mw_reasm_head(&r), -1); /* 0 still missing */
	deliver(&r, 0);
	assert_int_equal(mw_reasm_head(&r), 0);
	mw_reasm_pop(&r, &limit);
	assert_int_equal(mw_reasm_head(&r), 1);
	mw_reasm_destroy(&r);
}

static void rejects(void **state)
{
	struct mw_reasm r;
	const char *why = NULL;
	uint64_t limit;

	(void)state;
	assert_int_equal(mw_reasm_init(&r, 4), 0);
	/* beyond the credit */
	assert_int_equal(mw_reasm_claim(&r, 4, &why), -MW_E_PROTO);
	assert_non_null(why);
	assert_int_equal(mw_reasm_claim(&r, UINT64_MAX, &why), -MW_E_PROTO);
	/* duplicate while filling, then after written */
	deliver(&r, 0);
	assert_int_equal(mw_reasm_claim(&r, 0, &why), -MW_E_PROTO);
	mw_reasm_pop(&r, &limit);
	assert_int_equal(mw_reasm_claim(&r, 0, &why), -MW_E_PROTO);
	/* END contradicting arrivals, END twice, chunk after END */
	deliver(&r, 2);
	assert_int_equal(mw_reasm_end(&r, 2, &why), -MW_E_PROTO);
	assert_int_equal(mw_reasm_end(&r, 0, &why), -MW_E_PROTO);
	assert_int_equal(mw_reasm_end(&r, 3, &why), 0);
	assert_int_equal(mw_reasm_end(&r, 3, &why), -MW_E_PROTO);
	assert_int_equal(mw_reasm_claim(&r, 3, &why), -MW_E_PROTO);
	mw_reasm_destroy(&r);
}

static void credit_grows_by_half_window(void **state)
{
	struct mw_reasm r;
	uint64_t limit = 0, i;
	int grants = 0;

	(void)state;
	assert_int_equal(mw_reasm_init(&r, 8), 0);
	for (i = 0; i < 64; i++) {
		deliver(&r, i);
		if (mw_reasm_pop(&r, &limit)) {
			grants++;
			assert_true(limit - r.next == 8);
		}
		/* the sender is never starved below half the window */
		assert_true(r.granted - r.next >= 4);
	}
	assert_true(grants >= 64 / 8);
	mw_reasm_destroy(&r);
}

/* A sender that respects the credit, delivering in random order within it;
 * the window must release 0, 1, 2, ... exactly. */
static void random_model(void **state)
{
	unsigned seed =
		getenv("MW_TEST_SEED") ?
			(unsigned)strtoul(getenv("MW_TEST_SEED"), NULL, 0) :
			(unsigned)time(NULL);
	struct mw_reasm r;
	uint64_t sent = 0, written = 0, limit, total = 20000;
	uint64_t pending[64];
	unsigned npend = 0;

	(void)state;
	printf("reasm/random seed %u (MW_TEST_SEED)\n", seed);
	srand(seed);
	assert_int_equal(mw_reasm_init(&r, 16), 0);
	while (written < total) {
		int op = rand() % 3;

		if (op == 0 && sent < r.granted && sent < total && npend < 64) {
			const char *why;
			int idx = mw_reasm_claim(&r, sent, &why);

			assert_true(idx >= 0);
			pending[npend++] = sent++;
		} else if (op == 1 && npend) {
			unsigned k = (unsigned)rand() % npend;
			uint64_t seq = pending[k];

			pending[k] = pending[--npend];
			mw_reasm_mark(&r, (unsigned)(seq % r.nslots),
				      MW_RS_READY);
		} else {
			int h = mw_reasm_head(&r);

			if (h < 0)
				continue;
			assert_int_equal(r.seq[h], written);
			mw_reasm_pop(&r, &limit);
			written++;
		}
	}
	mw_reasm_destroy(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(in_order),
		cmocka_unit_test(out_of_order_waits_for_head),
		cmocka_unit_test(rejects),
		cmocka_unit_test(credit_grows_by_half_window),
		cmocka_unit_test(random_model),
	};

	return cmocka_run_group_tests_name("reasm/window", tests, NULL, NULL);
}
