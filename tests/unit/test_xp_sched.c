/* SPDX-License-Identifier: MIT */
/*
 * sched: the sender's scheduler (transport/tx_sched.c). Per-stream
 * sequence order, credit, round robin, the pool's back-pressure, the idle
 * channel wake-up, END, the --adaptive claim against a real compress pool,
 * the return of a chunk whose compression failed, and resume: chunks kept
 * until confirmed, a lost channel's chunks and END sent again first.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mw_comp.h"
#include "mw_err.h"
#include "mw_fd.h"
#include "tx_sched.h"

#define NCHANS 2
#define BIG 1000000 /* credit that never binds */

struct fix {
	struct mw_sched *s;
	int efd[NCHANS];
	int end_efd;
	struct mw_sched_stream q[4];
	unsigned nq;
};

static void fix_new(struct fix *f, unsigned nchunks)
{
	struct mw_sched_cfg cfg = { .nchunks = nchunks, .chunk_size = 64 };
	unsigned i;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < NCHANS; i++) {
		f->efd[i] = mw_efd_new();
		assert_true(f->efd[i] >= 0);
	}
	f->end_efd = mw_efd_new();
	assert_true(f->end_efd >= 0);
	cfg.nr_chans = NCHANS;
	cfg.chan_efd = f->efd;
	cfg.end_efd = f->end_efd;
	assert_int_equal(mw_sched_new(&f->s, &cfg), 0);
}

static struct mw_sched_stream *fix_stream(struct fix *f, uint64_t limit)
{
	struct mw_sched_stream *q = &f->q[f->nq];

	assert_int_equal(mw_sched_stream_add(f->s, q, limit, -1), 0);
	assert_int_equal(q->id, f->nq);
	f->nq++;
	return q;
}

/* A scheduler of nchunks with one stream whose credit never binds. */
static struct mw_sched_stream *fix_one(struct fix *f, unsigned nchunks)
{
	fix_new(f, nchunks);
	return fix_stream(f, BIG);
}

static void fix_free(struct fix *f)
{
	unsigned i;

	for (i = 0; i < f->nq; i++)
		mw_sched_stream_destroy(&f->q[i]);
	mw_sched_free(f->s);
	for (i = 0; i < NCHANS; i++)
		close(f->efd[i]);
	close(f->end_efd);
}

/* A reader's step: a free chunk, one byte, the next seq. QUEUED. */
static struct mw_chunk *fill(struct fix *f, struct mw_sched_stream *q)
{
	struct mw_chunk *c = NULL;

	assert_int_equal(mw_sched_get_free(f->s, q, &c), 0);
	assert_non_null(c);
	assert_int_equal(c->state, MW_CHUNK_FILLING);
	c->raw[0] = (uint8_t)q->id;
	c->raw_len = 1;
	mw_sched_queue(f->s, c);
	assert_int_equal(c->state, MW_CHUNK_QUEUED);
	return c;
}

static void park(struct fix *f, struct mw_chunk *c)
{
	mw_chunk_set_raw(c);
	mw_sched_park(f->s, &c);
	assert_null(c); /* the scheduler's now */
}

/* Takes on channel chan and returns the chunk (SENDING) or NULL. */
static struct mw_chunk *take_on(struct fix *f, unsigned chan)
{
	struct mw_sched_stream *end = NULL;
	struct mw_chunk *c = mw_sched_take(f->s, chan, -1, &end);

	assert_null(end);
	if (c) {
		assert_int_equal(c->state, MW_CHUNK_SENDING);
		assert_int_equal(c->chan, chan);
	}
	return c;
}

static struct mw_chunk *take(struct fix *f)
{
	return take_on(f, 0);
}

/* Sent in full, then confirmed written by the receiver: FREE. */
static void sent_confirmed(struct fix *f, struct mw_chunk *c)
{
	struct mw_sched_stream *q = c->st.tx;
	struct mw_chunk *keep = c;

	mw_sched_sent(f->s, &c);
	assert_null(c);
	assert_int_equal(keep->state, MW_CHUNK_SENT);
	assert_int_equal(mw_sched_confirm(f->s, q, keep->seq + 1), 0);
	assert_int_equal(keep->state, MW_CHUNK_FREE);
}

static void take_expect(struct fix *f, struct mw_sched_stream *q, uint64_t seq)
{
	struct mw_chunk *c = take(f);

	assert_non_null(c);
	assert_ptr_equal(c->st.tx, q);
	assert_int_equal(c->seq, seq);
	assert_false(c->resend);
	sent_confirmed(f, c);
}

static bool efd_poked(int fd)
{
	uint64_t v;

	return read(fd, &v, sizeof(v)) == sizeof(v);
}

static void strict_order(void **state)
{
	struct mw_chunk *c[3];
	struct mw_sched_stream *q;
	struct fix f;
	unsigned i;

	(void)state;
	fix_new(&f, 8);
	q = fix_stream(&f, BIG);
	for (i = 0; i < 3; i++)
		c[i] = fill(&f, q);
	assert_int_equal(c[2]->seq, 2);
	park(&f, c[2]);
	park(&f, c[1]);
	assert_null(take(&f)); /* 0 is still compressing */
	park(&f, c[0]);
	take_expect(&f, q, 0);
	take_expect(&f, q, 1);
	take_expect(&f, q, 2);
	assert_null(take(&f));
	fix_free(&f);
}

static void credit_blocks_one_stream(void **state)
{
	struct mw_sched_stream *a, *b;
	struct fix f;

	(void)state;
	fix_new(&f, 8);
	a = fix_stream(&f, 1);
	b = fix_stream(&f, BIG);
	park(&f, fill(&f, a));
	park(&f, fill(&f, b));
	park(&f, fill(&f, b));
	take_expect(&f, a, 0);
	take_expect(&f, b, 0);
	take_expect(&f, b, 1); /* a's seq 1 has no credit; b goes on */
	assert_null(take(&f));
	mw_sched_credit(f.s, a, 0); /* never lowers */
	assert_null(take(&f));
	mw_sched_credit(f.s, a, 3);
	park(&f, fill(&f, a));
	take_expect(&f, a, 1);
	fix_free(&f);
}

static void round_robin(void **state)
{
	struct mw_sched_stream *q[3];
	struct fix f;
	unsigned i, k;

	(void)state;
	fix_new(&f, 16);
	for (i = 0; i < 3; i++)
		q[i] = fix_stream(&f, BIG);
	for (k = 0; k < 2; k++)
		for (i = 0; i < 3; i++)
			park(&f, fill(&f, q[i]));
	for (k = 0; k < 2; k++)
		for (i = 0; i < 3; i++)
			take_expect(&f, q[i], k);
	fix_free(&f);
}

struct getter {
	struct fix *f;
	struct mw_sched_stream *q;
	struct mw_chunk *c;
	int ret;
	atomic_bool done;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;

	g->ret = mw_sched_get_free(g->f->s, g->q, &g->c);
	atomic_store(&g->done, true);
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* Starts a get_free on another thread and checks it is still blocked. */
static void getter_start(struct getter *g, pthread_t *th, struct fix *f,
			 struct mw_sched_stream *q)
{
	memset(g, 0, sizeof(*g));
	g->f = f;
	g->q = q;
	atomic_init(&g->done, false);
	assert_int_equal(pthread_create(th, NULL, getter_main, g), 0);
	sleep_ms(50);
	assert_false(atomic_load(&g->done));
}

static void no_credit_blocks_no_other(void **state)
{
	struct mw_sched_stream *a, *b;
	struct mw_chunk *c[4];
	struct getter g;
	pthread_t th;
	struct fix f;
	unsigned i;

	(void)state;
	fix_new(&f, 8);
	a = fix_stream(&f, 0); /* the destination reads nothing of a */
	b = fix_stream(&f, BIG);
	getter_start(&g, &th, &f, a);
	/* b fills and sends chunks meanwhile... */
	for (i = 0; i < 4; i++) {
		park(&f, fill(&f, b));
		take_expect(&f, b, i);
	}
	/* ...and holds unsent chunks, and a still finds a free one once
	 * it has credit */
	for (i = 0; i < 4; i++)
		c[i] = fill(&f, b);
	assert_false(atomic_load(&g.done));
	mw_sched_credit(f.s, a, 1);
	pthread_join(th, NULL);
	assert_int_equal(g.ret, 0);
	assert_ptr_equal(g.c->st.tx, a);
	mw_sched_put(f.s, &g.c);
	for (i = 0; i < 4; i++)
		park(&f, c[i]);
	fix_free(&f);
}

static void exhaustion_blocks_until_put(void **state)
{
	struct mw_chunk *c[4];
	struct mw_sched_stream *q;
	struct getter g;
	pthread_t th;
	struct fix f;
	unsigned i;

	(void)state;
	fix_new(&f, 4);
	q = fix_stream(&f, BIG);
	for (i = 0; i < 3; i++) { /* its share, all sent, none confirmed */
		park(&f, fill(&f, q));
		c[i] = take(&f);
		assert_non_null(c[i]);
		mw_sched_sent(f.s, &c[i]);
	}
	/* a chunk is free, but the kept ones are the stream's until the
	 * receiver confirms them */
	getter_start(&g, &th, &f, q);
	assert_int_equal(mw_sched_confirm(f.s, q, 1), 0);
	pthread_join(th, NULL);
	assert_int_equal(g.ret, 0);
	assert_int_equal(g.c->state, MW_CHUNK_FILLING);
	mw_sched_put(f.s, &g.c);
	assert_int_equal(mw_sched_confirm(f.s, q, 3), 0);
	/* and stop frees a blocked reader for good */
	for (i = 0; i < 3; i++) {
		park(&f, fill(&f, q));
		c[i] = take(&f);
	}
	c[3] = NULL;
	getter_start(&g, &th, &f, q);
	mw_sched_stop(f.s);
	pthread_join(th, NULL);
	assert_int_equal(g.ret, -MW_E_CANCEL);
	assert_null(g.c);
	for (i = 0; i < 4; i++)
		mw_sched_put(f.s, &c[i]);
	fix_free(&f);
}

static void idle_channel_woken(void **state)
{
	struct mw_sched_stream *q, *end = NULL;
	struct mw_chunk *c;
	struct fix f;

	(void)state;
	fix_new(&f, 4);
	q = fix_stream(&f, BIG);
	c = fill(&f, q);
	assert_null(mw_sched_take(f.s, 1, -1, &end)); /* channel 1 idles */
	assert_false(efd_poked(f.efd[1]));
	park(&f, c);
	assert_true(efd_poked(f.efd[1]));
	take_expect(&f, q, 0);
	/* END only once every chunk is taken, and only once */
	mw_sched_input_end(f.s, q, 1);
	assert_true(efd_poked(f.end_efd));
	assert_null(mw_sched_take(f.s, 0, -1, &end));
	assert_ptr_equal(end, q);
	assert_int_equal(q->total_chunks, 1);
	assert_int_equal(q->total_bytes, 1);
	assert_true(mw_sched_end_taken(f.s, q));
	assert_null(mw_sched_take(f.s, 0, -1, &end));
	assert_null(end);
	fix_free(&f);
}

static void failed_chunk_returns(void **state)
{
	struct mw_sched_stream *q;
	struct mw_chunk *c, *again;
	struct fix f;

	(void)state;
	fix_new(&f, 4);
	q = fix_stream(&f, BIG);
	c = fill(&f, q); /* QUEUED: its compression fails */
	again = c;
	mw_sched_put(f.s, &c);
	assert_null(c);
	assert_int_equal(again->state, MW_CHUNK_FREE);
	assert_null(q->ring[0]);
	assert_null(take(&f)); /* the hole stalls the stream, no more */
	c = fill(&f, q);       /* and the chunk is in the pool again */
	assert_int_equal(c->seq, 1);
	mw_sched_put(f.s, &c);
	fix_free(&f);
}

/* ---- --adaptive against a real pool ---- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool started, release;
	struct mw_sched *s;
} gate = { .lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* Holds the pool's only worker until the test lets it go. */
static void gate_done(struct mw_comp_job *job)
{
	(void)job;
	pthread_mutex_lock(&gate.lock);
	gate.started = true;
	pthread_cond_broadcast(&gate.cv);
	while (!gate.release)
		pthread_cond_wait(&gate.cv, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
}

static void parked_done(struct mw_comp_job *job)
{
	struct mw_chunk *c = job->opaque;

	if (job->ret) /* no cmocka asserts off the test's thread */
		abort();
	mw_sched_park(gate.s, &c);
}

static void adaptive_claims_oldest(void **state)
{
	static uint8_t gate_src[16];
	struct mw_comp_job gate_job = { .dir = MW_COMP_COMPRESS,
					.src = gate_src,
					.src_len = sizeof(gate_src),
					.done = gate_done };
	struct mw_comp_pool *pool;
	struct mw_sched_stream *q;
	struct mw_chunk *c;
	struct fix f;
	unsigned i;

	(void)state;
	fix_new(&f, 8);
	gate.s = f.s;
	assert_int_equal(mw_comp_pool_new(&pool, MW_CODEC_NONE, 0, 1, 8, "mw-t",
					  NULL, 0),
			 0);
	mw_comp_pool_newest_first(pool);
	mw_sched_adaptive(f.s, pool);
	q = fix_stream(&f, BIG);
	assert_int_equal(mw_comp_pool_submit(pool, &gate_job), 0);
	pthread_mutex_lock(&gate.lock);
	while (!gate.started)
		pthread_cond_wait(&gate.cv, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
	for (i = 0; i < 3; i++) {
		c = fill(&f, q);
		memset(&c->job, 0, sizeof(c->job));
		c->job.dir = MW_COMP_COMPRESS;
		c->job.src = c->raw;
		c->job.src_len = c->raw_len;
		c->job.done = parked_done;
		c->job.opaque = c;
		assert_int_equal(mw_comp_pool_submit(pool, &c->job), 0);
	}
	/* sock -1: SIOCOUTQ fails, so the network counts as ahead */
	c = take(&f);
	assert_non_null(c);
	assert_int_equal(c->seq, 0);
	assert_true(c->job.raw);
	assert_true(c->job.csum == mw_comp_checksum(c->raw, c->raw_len));
	assert_int_equal(mw_sched_chunks_adaptive(f.s), 1);
	mw_sched_put(f.s, &c);
	pthread_mutex_lock(&gate.lock);
	gate.release = true;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.lock);
	/* the worker parks 2 then 1, or a claim gets there first: either
	 * way they leave in order */
	for (i = 1; i < 3;) {
		c = take(&f);
		if (!c) {
			sleep_ms(1);
			continue;
		}
		assert_int_equal(c->seq, i);
		mw_sched_put(f.s, &c);
		i++;
	}
	assert_int_equal(mw_sched_chunks_taken(f.s), 3);
	mw_comp_pool_free(pool);
	fix_free(&f);
}

/* ---- resume ---- */

static void kept_until_confirmed(void **state)
{
	struct mw_sched_stream *q;
	struct mw_chunk *c[3], *k[3];
	struct fix f;
	unsigned i;

	(void)state;
	q = fix_one(&f, 8);
	for (i = 0; i < 3; i++) {
		park(&f, fill(&f, q));
		k[i] = c[i] = take(&f);
	}
	mw_sched_sent(f.s, &c[0]);
	mw_sched_sent(f.s, &c[1]);
	assert_int_equal(k[0]->state, MW_CHUNK_SENT);
	assert_ptr_equal(q->ring[0], k[0]); /* still in the ring */
	/* beyond every chunk taken: the receiver lies */
	assert_int_equal(mw_sched_confirm(f.s, q, 4), -MW_E_PROTO);
	/* 0 and 2 confirmed while 2 is still on its channel */
	assert_int_equal(mw_sched_confirm(f.s, q, 3), 0);
	assert_int_equal(k[0]->state, MW_CHUNK_FREE);
	assert_int_equal(k[1]->state, MW_CHUNK_FREE);
	assert_int_equal(k[2]->state, MW_CHUNK_SENDING);
	assert_null(q->ring[2]);
	/* an older WINDOW from a slower channel changes nothing */
	assert_int_equal(mw_sched_confirm(f.s, q, 1), 0);
	assert_int_equal(q->confirmed, 3);
	mw_sched_sent(f.s, &c[2]); /* its channel is done: FREE now */
	assert_int_equal(k[2]->state, MW_CHUNK_FREE);
	/* likewise a chunk confirmed while its frame could not go */
	park(&f, fill(&f, q));
	k[0] = c[0] = take(&f);
	assert_int_equal(mw_sched_confirm(f.s, q, 4), 0);
	mw_sched_unsend(f.s, &c[0]);
	assert_null(c[0]);
	assert_int_equal(k[0]->state, MW_CHUNK_FREE);
	assert_null(take(&f));
	fix_free(&f);
}

static void lost_channel_resends_first(void **state)
{
	struct mw_sched_stream *q, *end = NULL;
	struct mw_chunk *c[4], *k[4];
	uint64_t n = 0, bytes = 0, rc, rb;
	struct fix f;
	unsigned i;

	(void)state;
	q = fix_one(&f, 8);
	for (i = 0; i < 3; i++)
		park(&f, fill(&f, q));
	k[0] = c[0] = take_on(&f, 0);
	k[1] = c[1] = take_on(&f, 1);
	k[2] = c[2] = take_on(&f, 0);
	mw_sched_sent(f.s, &c[0]);
	mw_sched_sent(f.s, &c[1]);
	/* channel 0 is lost with 0 sent and 2 in a slot */
	mw_sched_unsend(f.s, &c[2]);
	assert_int_equal(k[2]->state, MW_CHUNK_READY);
	mw_sched_chan_lost(f.s, 0, &n, &bytes);
	assert_int_equal(n, 1); /* 0; 2 came back through unsend */
	assert_int_equal(bytes, 1);
	assert_int_equal(k[0]->state, MW_CHUNK_READY);
	assert_int_equal(k[1]->state, MW_CHUNK_SENT); /* channel 1's */
	park(&f, fill(&f, q));			      /* 3: new */
	/* channel 1 sends 0 and 2 again, then 3 */
	for (i = 0; i < 3; i++) {
		c[i] = take_on(&f, 1);
		assert_non_null(c[i]);
		assert_int_equal(c[i]->seq, i ? i + 1 : 0);
		assert_int_equal(c[i]->resend, i < 2);
	}
	mw_sched_resent(f.s, &rc, &rb);
	assert_int_equal(rc, 2);
	assert_int_equal(rb, 2);
	/* 1 confirmed written before 0 could go again: no need for it */
	for (i = 0; i < 3; i++)
		mw_sched_sent(f.s, &c[i]);
	assert_int_equal(mw_sched_confirm(f.s, q, 4), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(k[i]->state, MW_CHUNK_FREE);
	/* a READY chunk to send again that gets confirmed is freed */
	park(&f, fill(&f, q));
	k[0] = c[0] = take_on(&f, 1);
	mw_sched_sent(f.s, &c[0]);
	n = 0;
	mw_sched_chan_lost(f.s, 1, &n, &bytes);
	assert_int_equal(n, 1);
	assert_int_equal(mw_sched_confirm(f.s, q, 5), 0);
	assert_int_equal(k[0]->state, MW_CHUNK_FREE);
	assert_null(mw_sched_take(f.s, 0, -1, &end));
	assert_null(end);
	fix_free(&f);
}

static void lost_end_claimed_again(void **state)
{
	struct mw_sched_stream *q, *end = NULL;
	uint64_t n = 0, bytes = 0;
	struct fix f;

	(void)state;
	q = fix_one(&f, 4);
	park(&f, fill(&f, q));
	take_expect(&f, q, 0);
	mw_sched_input_end(f.s, q, 1);
	assert_null(mw_sched_take(f.s, 1, -1, &end));
	assert_ptr_equal(end, q);
	assert_false(q->end_resent);
	/* channel 0's loss leaves channel 1's END alone */
	mw_sched_chan_lost(f.s, 0, &n, &bytes);
	assert_true(mw_sched_end_taken(f.s, q));
	mw_sched_chan_lost(f.s, 1, &n, &bytes);
	assert_int_equal(n, 0);
	assert_false(mw_sched_end_taken(f.s, q));
	assert_null(mw_sched_take(f.s, 0, -1, &end));
	assert_ptr_equal(end, q);
	assert_true(q->end_resent);
	assert_true(mw_sched_end_taken(f.s, q));
	fix_free(&f);
}

static void lost_channel_leaves_idle_stack(void **state)
{
	struct mw_sched_stream *q, *end = NULL;
	uint64_t n = 0, bytes = 0;
	struct fix f;

	(void)state;
	q = fix_one(&f, 4);
	assert_null(mw_sched_take(f.s, 0, -1, &end));
	assert_null(mw_sched_take(f.s, 1, -1, &end)); /* on top */
	mw_sched_chan_lost(f.s, 1, &n, &bytes);
	park(&f, fill(&f, q));
	/* the work goes to the channel that is up */
	assert_false(efd_poked(f.efd[1]));
	assert_true(efd_poked(f.efd[0]));
	take_expect(&f, q, 0);
	fix_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(strict_order),
		cmocka_unit_test(credit_blocks_one_stream),
		cmocka_unit_test(round_robin),
		cmocka_unit_test(no_credit_blocks_no_other),
		cmocka_unit_test(exhaustion_blocks_until_put),
		cmocka_unit_test(idle_channel_woken),
		cmocka_unit_test(failed_chunk_returns),
		cmocka_unit_test(adaptive_claims_oldest),
		cmocka_unit_test(kept_until_confirmed),
		cmocka_unit_test(lost_channel_resends_first),
		cmocka_unit_test(lost_end_claimed_again),
		cmocka_unit_test(lost_channel_leaves_idle_stack),
	};

	return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
