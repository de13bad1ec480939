/* SPDX-License-Identifier: MIT */
/*
 * chunk/pool: the chunk pool both sides share (transport/chunk.c). A fixed
 * count, lazily allocated buffers on the receiver, each side's life cycle
 * accepted and its wrong turns refused, and in a Debug build a wrong turn
 * aborting the process that takes it (a child, forked).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunk.h"

static void pool_is_fixed(void **state)
{
	struct mw_chunk_pool p;
	struct mw_chunk *c[3], *again;

	(void)state;
	assert_int_equal(mw_chunk_pool_init(&p, MW_CHUNK_RX, 3, 4096, 0, false),
			 0);
	for (int i = 0; i < 3; i++) {
		c[i] = mw_chunk_pool_get(&p);
		assert_non_null(c[i]);
		assert_int_equal(c[i]->state, MW_CHUNK_FILLING);
		assert_int_equal(c[i]->side, MW_CHUNK_RX);
	}
	assert_true(mw_chunk_pool_empty(&p));
	assert_null(mw_chunk_pool_get(&p)); /* the pool never grows */
	again = c[1];
	mw_chunk_pool_put(&p, &c[1]);
	assert_null(c[1]); /* the caller keeps no pointer */
	assert_int_equal(again->state, MW_CHUNK_FREE);
	mw_chunk_pool_put(&p, &c[1]); /* NULL: nothing */
	assert_false(mw_chunk_pool_empty(&p));
	c[1] = mw_chunk_pool_get(&p);
	assert_ptr_equal(c[1], again);
	assert_null(mw_chunk_pool_get(&p));
	for (int i = 0; i < 3; i++)
		mw_chunk_pool_put(&p, &c[i]);
	mw_chunk_pool_destroy(&p);
	mw_chunk_pool_destroy(&p); /* zeroed: nothing */
}

/* The receiver's buffers come on first use, and stay with their chunk. */
static void buffers_lazy_or_preallocated(void **state)
{
	struct mw_chunk_pool p;
	struct mw_chunk *c;
	uint8_t *raw;

	(void)state;
	assert_int_equal(mw_chunk_pool_init(&p, MW_CHUNK_RX, 64, 1 << 20,
					    (1 << 20) + 512, false),
			 0);
	c = mw_chunk_pool_get(&p);
	assert_null(c->raw);
	assert_null(c->wire);
	assert_int_equal(mw_chunk_bufs_alloc(&p, c), 0);
	assert_non_null(c->raw);
	assert_non_null(c->wire);
	memset(c->raw, 1, 1 << 20);
	memset(c->wire, 2, (1 << 20) + 512);
	raw = c->raw;
	mw_chunk_pool_put(&p, &c);
	c = mw_chunk_pool_get(&p); /* the warm one again */
	assert_ptr_equal(c->raw, raw);
	assert_int_equal(mw_chunk_bufs_alloc(&p, c), 0);
	assert_ptr_equal(c->raw, raw);
	mw_chunk_pool_put(&p, &c);
	mw_chunk_pool_destroy(&p);

	assert_int_equal(mw_chunk_pool_init(&p, MW_CHUNK_TX, 4, 4096, 0, true),
			 0);
	for (unsigned i = 0; i < p.count; i++) {
		assert_non_null(p.chunks[i].raw);
		assert_null(p.chunks[i].wire); /* codec none */
	}
	mw_chunk_pool_destroy(&p);
}

/* Each side's life cycles, as chunk.h draws them; END closes a path. */
#define END MW_CHUNK_NSTATES
static const struct {
	enum mw_chunk_side side;
	enum mw_chunk_state path[8];
} cycles[] = {
	{ MW_CHUNK_TX,
	  { MW_CHUNK_FREE, MW_CHUNK_FILLING, MW_CHUNK_QUEUED, MW_CHUNK_READY,
	    MW_CHUNK_SENDING, MW_CHUNK_SENT, MW_CHUNK_FREE, END } },
	/* resume: a lost channel's chunks are sent again */
	{ MW_CHUNK_TX,
	  { MW_CHUNK_SENT, MW_CHUNK_READY, MW_CHUNK_SENDING, MW_CHUNK_READY,
	    MW_CHUNK_FREE, END } },
	/* confirmed while a channel still held it */
	{ MW_CHUNK_TX, { MW_CHUNK_SENDING, MW_CHUNK_FREE, END } },
	{ MW_CHUNK_TX,
	  { MW_CHUNK_QUEUED, MW_CHUNK_SENDING, END } }, /* adaptive */
	{ MW_CHUNK_RX,
	  { MW_CHUNK_FREE, MW_CHUNK_FILLING, MW_CHUNK_DECODING, MW_CHUNK_READY,
	    MW_CHUNK_WRITING, MW_CHUNK_FREE, END } },
	{ MW_CHUNK_RX, { MW_CHUNK_FILLING, MW_CHUNK_READY, END } }, /* raw */
	/* a failed compression, decompression or verification returns it */
	{ MW_CHUNK_TX, { MW_CHUNK_QUEUED, MW_CHUNK_FREE, END } },
	{ MW_CHUNK_RX, { MW_CHUNK_DECODING, MW_CHUNK_FREE, END } },
	{ MW_CHUNK_RX, { MW_CHUNK_FILLING, MW_CHUNK_FREE, END } },
};

static void life_cycles(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(cycles) / sizeof(cycles[0]); k++)
		for (size_t i = 0; cycles[k].path[i + 1] != END; i++)
			assert_true(mw_chunk_state_ok(cycles[k].side,
						      cycles[k].path[i],
						      cycles[k].path[i + 1]));
}

/* Turns no life cycle takes. */
static const struct {
	enum mw_chunk_side side;
	enum mw_chunk_state from, to;
} wrong[] = {
	/* a kept chunk is sent again only through READY (a channel takes
	 * it), and only a sent one is kept */
	{ MW_CHUNK_TX, MW_CHUNK_SENT, MW_CHUNK_SENDING },
	{ MW_CHUNK_TX, MW_CHUNK_READY, MW_CHUNK_SENT },
	{ MW_CHUNK_TX, MW_CHUNK_QUEUED, MW_CHUNK_SENT },
	{ MW_CHUNK_RX, MW_CHUNK_WRITING, MW_CHUNK_SENT },
	/* a verified chunk is freed by its writer only */
	{ MW_CHUNK_RX, MW_CHUNK_READY, MW_CHUNK_FREE },
	{ MW_CHUNK_RX, MW_CHUNK_DECODING, MW_CHUNK_WRITING },
	/* freed twice */
	{ MW_CHUNK_TX, MW_CHUNK_FREE, MW_CHUNK_FREE },
	{ MW_CHUNK_RX, MW_CHUNK_FREE, MW_CHUNK_FREE },
	/* the other side's states */
	{ MW_CHUNK_TX, MW_CHUNK_FILLING, MW_CHUNK_DECODING },
	{ MW_CHUNK_RX, MW_CHUNK_FILLING, MW_CHUNK_QUEUED },
	{ MW_CHUNK_RX, MW_CHUNK_READY, MW_CHUNK_SENDING },
	{ MW_CHUNK_TX, END, MW_CHUNK_FREE },
};

static void wrong_turns(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(wrong) / sizeof(wrong[0]); k++)
		assert_false(mw_chunk_state_ok(wrong[k].side, wrong[k].from,
					       wrong[k].to));
	assert_string_equal(mw_chunk_state_name(MW_CHUNK_WRITING), "WRITING");
	assert_string_equal(mw_chunk_state_name(MW_CHUNK_SENT), "SENT");
}

/*
 * A child takes a wrong turn (READY -> FREE on the receiver: a verified
 * chunk freed before it was written). A Debug build aborts in the child
 * and says which turn; a release build compiles the check out.
 */
static void wrong_turn_aborts_in_debug(void **state)
{
	char msg[512] = "";
	int fds[2], st;
	ssize_t n, got = 0;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct mw_chunk_pool p;
		struct mw_chunk *c;

		dup2(fds[1], STDERR_FILENO);
		if (mw_chunk_pool_init(&p, MW_CHUNK_RX, 1, 4096, 0, false))
			_exit(2);
		c = mw_chunk_pool_get(&p);
		c->seq = 7;
		mw_chunk_set_state(c, MW_CHUNK_READY);
		mw_chunk_pool_put(&p, &c);
		_exit(0);
	}
	close(fds[1]);
	while ((n = read(fds[0], msg + got, sizeof(msg) - 1 - (size_t)got)) > 0)
		got += n;
	close(fds[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
#ifdef MW_DEBUG
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
	assert_non_null(strstr(msg, "chunk 7 (recv): READY -> FREE"));
#else
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(got, 0);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pool_is_fixed),
		cmocka_unit_test(buffers_lazy_or_preallocated),
		cmocka_unit_test(life_cycles),
		cmocka_unit_test(wrong_turns),
		cmocka_unit_test(wrong_turn_aborts_in_debug),
	};

	return cmocka_run_group_tests_name("chunk/pool", tests, NULL, NULL);
}
