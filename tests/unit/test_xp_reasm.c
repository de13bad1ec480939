/* SPDX-License-Identifier: MIT */
/*
 * reasm/window: the receiver's per-stream reorder window. In-order and shuffled
 * arrival, credit, duplicates, END rules, a failed chunk going back to the
 * pool, and a seeded random model check (honours MW_TEST_SEED) that nothing
 * is ever released out of order. Each window draws its chunks from a pool
 * exactly as large as the window, as the receiver's budget guarantees: a
 * claim past that would abort (MW_BUG_ON in mw_reasm_claim).
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

#include "chunk.h"
#include "mw_err.h"
#include "reasm.h"

static struct mw_chunk_pool pool;

/* A window and a pool of the same size. */
static void setup(struct mw_reasm *r, uint32_t nslots)
{
	assert_int_equal(mw_reasm_init(r, nslots), 0);
	assert_int_equal(mw_chunk_pool_init(&pool, MW_CHUNK_RX, nslots, 4096, 0,
					    false),
			 0);
}

static void teardown(struct mw_reasm *r)
{
	mw_reasm_destroy(r);
	mw_chunk_pool_destroy(&pool);
}

static int claim(struct mw_reasm *r, uint64_t seq, struct mw_chunk **c)
{
	const char *why = NULL;
	int ret = mw_reasm_claim(r, &pool, seq, c, &why);

	if (ret) {
		assert_int_equal(ret, -MW_E_PROTO);
		assert_non_null(why);
		assert_null(*c);
	} else {
		assert_int_equal((*c)->state, MW_CHUNK_FILLING);
		assert_int_equal((*c)->seq, seq);
	}
	return ret;
}

static void deliver(struct mw_reasm *r, uint64_t seq)
{
	struct mw_chunk *c;

	assert_int_equal(claim(r, seq, &c), 0);
	mw_chunk_set_state(c, MW_CHUNK_DECODING);
	mw_chunk_set_state(c, MW_CHUNK_READY);
}

/* The writer's step: the head, WRITING, written. The head's seq, or -1
 * when there is none. */
static int64_t write_head(struct mw_reasm *r, uint64_t *limit, bool *grant)
{
	struct mw_chunk *c = mw_reasm_head(r);
	int64_t seq;

	if (!c)
		return -1;
	seq = (int64_t)c->seq;
	mw_chunk_set_state(c, MW_CHUNK_WRITING);
	*grant = mw_reasm_pop(r, &pool, &c, limit);
	assert_null(c);
	return seq;
}

static int64_t head_seq(const struct mw_reasm *r)
{
	struct mw_chunk *c = mw_reasm_head(r);

	return c ? (int64_t)c->seq : -1;
}

static void in_order(void **state)
{
	struct mw_reasm r;
	uint64_t limit = 0, i;
	bool grant;

	(void)state;
	setup(&r, 4);
	assert_null(mw_reasm_head(&r));
	for (i = 0; i < 100; i++) {
		deliver(&r, i);
		assert_ptr_equal(mw_reasm_head(&r), r.slot[i % 4]);
		assert_int_equal(write_head(&r, &limit, &grant), (int64_t)i);
		if (grant)
			assert_true(limit == r.next + 4);
		assert_int_equal(r.next, i + 1);
	}
	assert_int_equal(mw_reasm_end(&r, 100, &(const char *){ NULL }), 0);
	assert_true(mw_reasm_done(&r));
	teardown(&r);
}

static void out_of_order_waits_for_head(void **state)
{
	struct mw_reasm r;
	uint64_t limit;
	bool grant;

	(void)state;
	setup(&r, 4);
	deliver(&r, 2);
	deliver(&r, 1);
	assert_int_equal(head_seq(&r), -1); /* 0 still missing */
	deliver(&r, 0);
	assert_int_equal(head_seq(&r), 0);
	assert_int_equal(write_head(&r, &limit, &grant), 0);
	assert_int_equal(head_seq(&r), 1);
	teardown(&r);
}

static void rejects(void **state)
{
	struct mw_reasm r;
	const char *why = NULL;
	struct mw_chunk *c;
	uint64_t limit;
	bool grant;

	(void)state;
	setup(&r, 4);
	/* beyond the credit */
	assert_int_equal(claim(&r, 4, &c), -MW_E_PROTO);
	assert_int_equal(claim(&r, UINT64_MAX, &c), -MW_E_PROTO);
	/* duplicate while filling, then after written */
	deliver(&r, 0);
	assert_int_equal(claim(&r, 0, &c), -MW_E_PROTO);
	assert_int_equal(write_head(&r, &limit, &grant), 0);
	assert_int_equal(claim(&r, 0, &c), -MW_E_PROTO);
	/* END contradicting arrivals, END twice, chunk after END */
	deliver(&r, 2);
	assert_int_equal(mw_reasm_end(&r, 2, &why), -MW_E_PROTO);
	assert_int_equal(mw_reasm_end(&r, 0, &why), -MW_E_PROTO);
	assert_int_equal(mw_reasm_end(&r, 3, &why), 0);
	assert_int_equal(mw_reasm_end(&r, 3, &why), -MW_E_PROTO);
	assert_int_equal(claim(&r, 3, &c), -MW_E_PROTO);
	teardown(&r);
}

/* A chunk whose decompression or verification failed goes back to the
 * pool, and its slot is free again. */
static void failed_chunk_returns(void **state)
{
	struct mw_chunk *c, *again;
	struct mw_reasm r;

	(void)state;
	setup(&r, 2);
	assert_int_equal(claim(&r, 0, &c), 0);
	mw_chunk_set_state(c, MW_CHUNK_DECODING);
	assert_int_equal(claim(&r, 1, &again), 0); /* the pool is empty now */
	assert_true(mw_chunk_pool_empty(&pool));
	mw_reasm_drop(&r, &pool, &c);
	assert_null(c);
	assert_null(r.slot[0]);
	assert_false(mw_chunk_pool_empty(&pool));
	mw_reasm_drop(&r, &pool, &again); /* a raw chunk, still FILLING */
	assert_null(r.slot[1]);
	assert_null(mw_reasm_head(&r));
	deliver(&r, 0); /* and both come back for the next claims */
	deliver(&r, 1);
	assert_int_equal(head_seq(&r), 0);
	teardown(&r);
}

static void credit_grows_by_half_window(void **state)
{
	struct mw_reasm r;
	uint64_t limit = 0, i;
	int grants = 0;
	bool grant;

	(void)state;
	setup(&r, 8);
	for (i = 0; i < 64; i++) {
		deliver(&r, i);
		assert_int_equal(write_head(&r, &limit, &grant), (int64_t)i);
		if (grant) {
			grants++;
			assert_true(limit - r.next == 8);
		}
		/* the sender is never starved below half the window */
		assert_true(r.granted - r.next >= 4);
	}
	assert_true(grants >= 64 / 8);
	teardown(&r);
}

/* A sender that respects the credit, delivering in random order within it;
 * the window must release 0, 1, 2, ... exactly. */
/* What a chunk sent again meets: written, held past FILLING, FILLING (a
 * dead channel's, to evict), or nothing (claim it); a FILLING chunk
 * dropped by its dead channel leaves the slot to the copy. */
static void resent_duplicates(void **state)
{
	struct mw_reasm r;
	struct mw_chunk *c, *f, *got;
	uint64_t limit;
	bool grant;

	(void)state;
	setup(&r, 4);
	deliver(&r, 0);
	assert_int_equal(write_head(&r, &limit, &grant), 0);
	assert_int_equal(mw_reasm_dup(&r, 0, &got), MW_REASM_HAVE);
	assert_null(got);
	deliver(&r, 2); /* READY, not the head */
	assert_int_equal(mw_reasm_dup(&r, 2, &got), MW_REASM_HAVE);
	assert_int_equal(claim(&r, 3, &c), 0);
	mw_chunk_set_state(c, MW_CHUNK_DECODING);
	assert_int_equal(mw_reasm_dup(&r, 3, &got), MW_REASM_HAVE);
	assert_int_equal(claim(&r, 1, &f), 0); /* FILLING */
	assert_int_equal(mw_reasm_dup(&r, 1, &got), MW_REASM_FILLING);
	assert_ptr_equal(got, f);
	/* its channel died: the chunk goes, the copy claims the slot */
	mw_reasm_drop(&r, &pool, &f);
	assert_int_equal(mw_reasm_dup(&r, 1, &got), MW_REASM_NEW);
	assert_int_equal(claim(&r, 1, &f), 0);
	/* beyond the credit: no duplicate, the claim refuses it */
	assert_int_equal(mw_reasm_dup(&r, 5, &got), MW_REASM_NEW);
	assert_int_not_equal(claim(&r, 5, &got), 0);
	mw_chunk_set_state(f, MW_CHUNK_DECODING);
	mw_chunk_set_state(f, MW_CHUNK_READY);
	mw_chunk_set_state(c, MW_CHUNK_READY);
	while (write_head(&r, &limit, &grant) >= 0)
		;
	assert_true(r.next == 4);
	teardown(&r);
}

/* The eager WINDOW's grant: next + slots before END, unchanged after. */
static void grant_follows_written(void **state)
{
	struct mw_reasm r;
	uint64_t limit;
	bool grant;
	const char *why;

	(void)state;
	setup(&r, 8);
	r.granted = 2; /* HELLO_OK's first credit */
	assert_true(mw_reasm_grant(&r) == 8);
	deliver(&r, 0);
	assert_int_equal(write_head(&r, &limit, &grant), 0);
	assert_true(mw_reasm_grant(&r) == 9);
	assert_int_equal(mw_reasm_end(&r, 3, &why), 0);
	assert_true(mw_reasm_grant(&r) == 9);
	deliver(&r, 1);
	deliver(&r, 2);
	while (write_head(&r, &limit, &grant) >= 0)
		;
	assert_true(mw_reasm_done(&r));
	assert_true(mw_reasm_grant(&r) == 9);
	teardown(&r);
}

static void random_model(void **state)
{
	unsigned seed =
		getenv("MW_TEST_SEED") ?
			(unsigned)strtoul(getenv("MW_TEST_SEED"), NULL, 0) :
			(unsigned)time(NULL);
	struct mw_reasm r;
	uint64_t sent = 0, written = 0, limit, total = 20000;
	struct mw_chunk *pending[64];
	unsigned npend = 0;
	bool grant;

	(void)state;
	printf("reasm/random seed %u (MW_TEST_SEED)\n", seed);
	srand(seed);
	setup(&r, 16);
	while (written < total) {
		int op = rand() % 3;

		if (op == 0 && sent < r.granted && sent < total && npend < 64) {
			assert_int_equal(claim(&r, sent, &pending[npend]), 0);
			npend++;
			sent++;
		} else if (op == 1 && npend) {
			unsigned k = (unsigned)rand() % npend;
			struct mw_chunk *c = pending[k];

			pending[k] = pending[--npend];
			mw_chunk_set_state(c, MW_CHUNK_READY);
		} else {
			int64_t h = write_head(&r, &limit, &grant);

			if (h < 0)
				continue;
			assert_int_equal(h, (int64_t)written);
			written++;
		}
	}
	teardown(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(in_order),
		cmocka_unit_test(out_of_order_waits_for_head),
		cmocka_unit_test(rejects),
		cmocka_unit_test(failed_chunk_returns),
		cmocka_unit_test(credit_grows_by_half_window),
		cmocka_unit_test(resent_duplicates),
		cmocka_unit_test(grant_follows_written),
		cmocka_unit_test(random_model),
	};

	return cmocka_run_group_tests_name("reasm/window", tests, NULL, NULL);
}
