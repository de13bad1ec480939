/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the worker pool: 1000-job round trips on 1 and 4 threads
 * with every done() counted, checksum and length verification of
 * decompress jobs, back-pressure at queue_cap, and stop/free with queued
 * and blocked work. A "gate" holds the only worker inside done() so the
 * tests can fill the queue deterministically. alarm() turns a hang into a
 * failure. Job data is seeded; the seed is printed and MW_TEST_SEED
 * replays it.
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

#define NR_JOBS 1000
#define JOB_MAX 8192

static uint64_t test_seed;

/* xorshift64*, seeded per job so any job can be rebuilt alone. */
static void fill_job_data(uint8_t *p, size_t n, uint64_t key)
{
	uint64_t x = (test_seed ^ (key * 0x9e3779b97f4a7c15ull)) | 1;
	size_t i;

	for (i = 0; i < n; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		/* Odd keys are random, even ones a small alphabet (shrinks). */
		p[i] = (uint8_t)((x * 0x2545f4914f6cdd1dull) >> 56);
		if (!(key & 1))
			p[i] = (uint8_t)('a' + p[i] % 4);
	}
}

/* Counts done() calls, and can hold the worker inside done() (the gate). */
struct tracker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned done_total; /* under lock */
	bool gate_closed;    /* under lock: done() waits while set */
	unsigned in_gate;    /* under lock: workers waiting at the gate */
	atomic_uint calls[NR_JOBS];
	unsigned order[NR_JOBS]; /* under lock: job indexes in done() order */
};

static struct tracker trk;

static void tracker_reset(bool gate_closed)
{
	unsigned i;

	pthread_mutex_lock(&trk.lock);
	trk.done_total = 0;
	trk.gate_closed = gate_closed;
	trk.in_gate = 0;
	for (i = 0; i < NR_JOBS; i++)
		atomic_store(&trk.calls[i], 0);
	pthread_mutex_unlock(&trk.lock);
}

static void job_done(struct mw_comp_job *job)
{
	uintptr_t idx = (uintptr_t)job->opaque;

	atomic_fetch_add(&trk.calls[idx], 1);
	pthread_mutex_lock(&trk.lock);
	if (trk.done_total + trk.in_gate < NR_JOBS)
		trk.order[trk.done_total + trk.in_gate] = (unsigned)idx;
	trk.in_gate++;
	pthread_cond_broadcast(&trk.cond);
	while (trk.gate_closed)
		pthread_cond_wait(&trk.cond, &trk.lock);
	trk.in_gate--;
	trk.done_total++;
	pthread_cond_broadcast(&trk.cond);
	pthread_mutex_unlock(&trk.lock);
}

static void gate_open(void)
{
	pthread_mutex_lock(&trk.lock);
	trk.gate_closed = false;
	pthread_cond_broadcast(&trk.cond);
	pthread_mutex_unlock(&trk.lock);
}

static void wait_in_gate(unsigned n)
{
	pthread_mutex_lock(&trk.lock);
	while (trk.in_gate < n)
		pthread_cond_wait(&trk.cond, &trk.lock);
	pthread_mutex_unlock(&trk.lock);
}

static void wait_done(unsigned n)
{
	pthread_mutex_lock(&trk.lock);
	while (trk.done_total < n)
		pthread_cond_wait(&trk.cond, &trk.lock);
	pthread_mutex_unlock(&trk.lock);
}

static unsigned done_total(void)
{
	unsigned n;

	pthread_mutex_lock(&trk.lock);
	n = trk.done_total;
	pthread_mutex_unlock(&trk.lock);
	return n;
}

struct chunk {
	struct mw_comp_job job;
	uint8_t raw[JOB_MAX];
	uint8_t wire[JOB_MAX + 1024];
	uint8_t out[JOB_MAX];
	size_t len;
};

static void job_prep(struct mw_comp_job *job, enum mw_comp_dir dir,
		     uintptr_t idx)
{
	memset(job, 0, sizeof(*job));
	job->dir = dir;
	job->done = job_done;
	job->opaque = (void *)idx;
}

/* A compress job of len bytes (0: a seeded length, 1 ... JOB_MAX). */
static void compress_job_prep_len(struct chunk *c, uintptr_t idx, size_t len)
{
	job_prep(&c->job, MW_COMP_COMPRESS, idx);
	c->len = len ? len : 1 + (size_t)((test_seed + idx * 7919) % JOB_MAX);
	fill_job_data(c->raw, c->len, idx);
	c->job.src = c->raw;
	c->job.src_len = c->len;
	c->job.dst = c->wire;
	c->job.dst_cap = sizeof(c->wire);
}

static void compress_job_prep(struct chunk *c, uintptr_t idx)
{
	compress_job_prep_len(c, idx, 0);
}

/* Turns a finished compress job into the matching decompress job. */
static void decompress_job_prep(struct chunk *c, uintptr_t idx)
{
	bool raw = c->job.raw;
	uint64_t csum = c->job.csum;
	size_t wire_len = c->job.out_len;

	job_prep(&c->job, MW_COMP_DECOMPRESS, idx);
	c->job.raw = raw;
	c->job.csum = csum;
	c->job.src = raw ? c->raw : c->wire;
	c->job.src_len = raw ? c->len : wire_len;
	c->job.dst = c->out;
	c->job.dst_cap = sizeof(c->out);
	c->job.raw_len = c->len;
}

static void assert_each_done_once(unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		assert_int_equal(atomic_load(&trk.calls[i]), 1);
}

static void pool_roundtrip(enum mw_codec codec, unsigned nthreads)
{
	struct mw_comp_pool *p;
	struct chunk *c = calloc(NR_JOBS, sizeof(*c));
	unsigned i, nraw = 0;

	assert_non_null(c);
	alarm(60);
	assert_int_equal(mw_comp_pool_new(&p, codec,
					  mw_codec_level_default(codec),
					  nthreads, 16, "mw-test", NULL, 0),
			 0);
	tracker_reset(false);
	for (i = 0; i < NR_JOBS; i++) {
		compress_job_prep(&c[i], i);
		assert_int_equal(mw_comp_pool_submit(p, &c[i].job), 0);
	}
	wait_done(NR_JOBS);
	assert_each_done_once(NR_JOBS);
	for (i = 0; i < NR_JOBS; i++) {
		assert_int_equal(c[i].job.ret, 0);
		assert_true(c[i].job.csum ==
			    mw_comp_checksum(c[i].raw, c[i].len));
		if (c[i].job.raw)
			nraw++;
		else
			assert_true(c[i].job.out_len < c[i].len);
	}
	/* Random odd jobs travel raw; the even ones mostly shrink. */
	if (codec == MW_CODEC_NONE)
		assert_int_equal(nraw, NR_JOBS);
	else
		assert_true(nraw >= NR_JOBS / 2 && nraw < NR_JOBS);

	tracker_reset(false);
	for (i = 0; i < NR_JOBS; i++) {
		decompress_job_prep(&c[i], i);
		assert_int_equal(mw_comp_pool_submit(p, &c[i].job), 0);
	}
	wait_done(NR_JOBS);
	assert_each_done_once(NR_JOBS);
	for (i = 0; i < NR_JOBS; i++) {
		assert_int_equal(c[i].job.ret, 0);
		assert_int_equal(c[i].job.out_len, c[i].len);
		if (!c[i].job.raw)
			assert_memory_equal(c[i].out, c[i].raw, c[i].len);
	}
	assert_true(mw_comp_pool_cpu_seconds(p) > 0);
	mw_comp_pool_free(p);
	free(c);
	alarm(0);
}

static void pool_zstd_1_thread(void **state)
{
	(void)state;
	pool_roundtrip(MW_CODEC_ZSTD, 1);
}

static void pool_zstd_4_threads(void **state)
{
	(void)state;
	pool_roundtrip(MW_CODEC_ZSTD, 4);
}

static void pool_zlib_4_threads(void **state)
{
	(void)state;
	pool_roundtrip(MW_CODEC_ZLIB, 4);
}

static void pool_none_1_thread(void **state)
{
	(void)state;
	pool_roundtrip(MW_CODEC_NONE, 1);
}

static void pool_new_rejects(void **state)
{
	struct mw_comp_pool *p = (void *)1;

	(void)state;
	assert_int_equal(mw_comp_pool_new(&p, MW_CODEC_ZSTD, 1, 0, 4, "t", NULL,
					  0),
			 -EINVAL);
	assert_null(p);
	assert_int_equal(mw_comp_pool_new(&p, MW_CODEC_ZSTD, 1, 1, 0, "t", NULL,
					  0),
			 -EINVAL);
	assert_int_equal(mw_comp_pool_new(&p, MW_CODEC_ZLIB, 42, 1, 4, "t",
					  NULL, 0),
			 -EINVAL);
	mw_comp_pool_free(NULL);
}

/* Runs one decompress job of c on p and waits for it. */
static int run_one(struct mw_comp_pool *p, struct chunk *c)
{
	tracker_reset(false);
	assert_int_equal(mw_comp_pool_submit(p, &c->job), 0);
	wait_done(1);
	return c->job.ret;
}

static void pool_detects_corruption(void **state)
{
	struct mw_comp_pool *p;
	struct chunk *c = calloc(1, sizeof(*c));
	struct mw_comp_job done; /* the finished compress job */
	uint64_t csum;

	(void)state;
	assert_non_null(c);
	alarm(30);
	assert_int_equal(
		mw_comp_pool_new(&p, MW_CODEC_ZSTD, 1, 1, 4, "t", NULL, 0), 0);
	/* even key: compressible; a fixed length, since a seeded one of a
	 * few bytes would not shrink and the job would travel raw */
	compress_job_prep_len(c, 0, JOB_MAX / 2);
	assert_int_equal(run_one(p, c), 0);
	assert_false(c->job.raw);
	csum = c->job.csum;
	done = c->job;

	/* Compressed payload, wrong checksum. */
	decompress_job_prep(c, 0);
	c->job.csum = csum ^ 1;
	assert_int_equal(run_one(p, c), -MW_E_CORRUPT);
	assert_non_null(strstr(c->job.err.msg, "checksum mismatch"));
	assert_int_equal(c->job.err.code, -MW_E_CORRUPT);

	/* The same job with the right checksum passes: nothing sticks. */
	c->job.csum = csum;
	assert_int_equal(run_one(p, c), 0);
	assert_int_equal(c->job.err.code, 0);
	assert_memory_equal(c->out, c->raw, c->len);

	/* Raw payload, one byte changed. */
	c->job.raw = true;
	c->job.src = c->raw;
	c->job.src_len = c->len;
	c->raw[c->len / 2] ^= 0x40;
	assert_int_equal(run_one(p, c), -MW_E_CORRUPT);
	assert_non_null(strstr(c->job.err.msg, "checksum mismatch"));
	c->raw[c->len / 2] ^= 0x40;
	assert_int_equal(run_one(p, c), 0);

	/* Raw payload whose length disagrees with raw_len. */
	c->job.src_len = c->len - 1;
	assert_int_equal(run_one(p, c), -MW_E_CORRUPT);

	/* raw_len larger than the destination buffer. */
	c->job = done;
	decompress_job_prep(c, 0);
	c->job.raw_len = c->job.dst_cap + 1;
	assert_int_equal(run_one(p, c), -MW_E_CORRUPT);

	/* A broken payload fails in the codec, before the checksum. */
	c->job = done;
	decompress_job_prep(c, 0);
	c->job.src_len--;
	assert_int_equal(run_one(p, c), -MW_E_CORRUPT);
	assert_null(strstr(c->job.err.msg, "checksum"));

	mw_comp_pool_free(p);
	free(c);
	alarm(0);
}

struct submitter {
	struct mw_comp_pool *p;
	struct mw_comp_job *job;
	atomic_int ret;
	atomic_bool returned;
};

static void *submit_thread(void *arg)
{
	struct submitter *s = arg;

	atomic_store(&s->ret, mw_comp_pool_submit(s->p, s->job));
	atomic_store(&s->returned, true);
	return NULL;
}

/*
 * A one-worker pool made full: job 0 is held at the gate, jobs 1..cap
 * fill the queue, and job cap + 1 is submitted by another thread, where
 * it must block. Returns the cap + 2 chunks (the caller frees them) with
 * a 30 s alarm running.
 */
static struct chunk *gated_fill(struct mw_comp_pool **p, unsigned cap,
				struct submitter *s, pthread_t *th)
{
	struct chunk *c = calloc(cap + 2, sizeof(*c));
	unsigned i;

	assert_non_null(c);
	alarm(30);
	assert_int_equal(
		mw_comp_pool_new(p, MW_CODEC_ZSTD, 1, 1, cap, "t", NULL, 0), 0);
	tracker_reset(true);
	for (i = 0; i < cap + 2; i++)
		compress_job_prep(&c[i], i);
	assert_int_equal(mw_comp_pool_submit(*p, &c[0].job), 0);
	wait_in_gate(1);
	for (i = 1; i <= cap; i++)
		assert_int_equal(mw_comp_pool_submit(*p, &c[i].job), 0);
	s->p = *p;
	s->job = &c[cap + 1].job;
	assert_int_equal(pthread_create(th, NULL, submit_thread, s), 0);
	usleep(200 * 1000);
	assert_false(atomic_load(&s->returned));
	assert_int_equal(done_total(), 0);
	return c;
}

/* Submit blocks at queue_cap and goes through once jobs drain. */
static void pool_submit_blocks_at_cap(void **state)
{
	struct mw_comp_pool *p;
	struct chunk *c;
	struct submitter s = { 0 };
	pthread_t th;

	(void)state;
	c = gated_fill(&p, 2, &s, &th);
	gate_open();
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&s.ret), 0);
	wait_done(4);
	assert_each_done_once(4);
	mw_comp_pool_free(p);
	free(c);
	alarm(0);
}

/*
 * Stop with the worker held and the queue full: the blocked submitter gets
 * -MW_E_CANCEL, later submits too, free returns, and the queued jobs are
 * dropped without done().
 */
static void pool_stop_and_free_with_queued_jobs(void **state)
{
	struct mw_comp_pool *p;
	struct chunk *c;
	struct submitter s = { 0 };
	pthread_t th;
	unsigned i;

	(void)state;
	c = gated_fill(&p, 4, &s, &th);
	mw_comp_pool_stop(p);
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&s.ret), -MW_E_CANCEL);
	assert_int_equal(mw_comp_pool_submit(p, &c[5].job), -MW_E_CANCEL);
	gate_open();
	mw_comp_pool_free(p);
	assert_int_equal(done_total(), 1);
	assert_int_equal(atomic_load(&trk.calls[0]), 1);
	for (i = 1; i < 6; i++)
		assert_int_equal(atomic_load(&trk.calls[i]), 0);
	free(c);
	alarm(0);
}

/*
 * claim takes back a queued job, from any place in the queue, but never one
 * a worker has; the freed slot lets a blocked submitter in. With
 * newest_first the worker then takes the newest job first.
 */
static void pool_claim_and_newest_first(void **state)
{
	static const unsigned want[] = { 0, 5, 4, 3, 1 };
	struct mw_comp_pool *p;
	struct chunk *c;
	struct submitter s = { 0 };
	pthread_t th;
	unsigned i;

	(void)state;
	c = gated_fill(&p, 4, &s, &th); /* 0 at the gate, 1-4 queued, 5 waits */
	assert_false(mw_comp_pool_claim(p, &c[0].job));
	assert_true(mw_comp_pool_claim(p, &c[2].job));
	assert_false(mw_comp_pool_claim(p, &c[2].job));
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&s.ret), 0); /* 5 is queued now */
	mw_comp_pool_newest_first(p);
	gate_open();
	wait_done(5);
	for (i = 0; i < 5; i++)
		assert_int_equal(trk.order[i], want[i]);
	assert_int_equal(atomic_load(&trk.calls[2]), 0);
	assert_int_equal(c[2].job.ret, 0); /* untouched by the pool */
	mw_comp_pool_free(p);
	free(c);
	alarm(0);
}

/* Free right after a burst of submits, without waiting: must not hang. */
static void pool_free_while_busy(void **state)
{
	struct mw_comp_pool *p;
	struct chunk *c = calloc(64, sizeof(*c));
	unsigned i;

	(void)state;
	assert_non_null(c);
	alarm(30);
	assert_int_equal(
		mw_comp_pool_new(&p, MW_CODEC_ZSTD, 3, 4, 64, "t", NULL, 0), 0);
	tracker_reset(false);
	for (i = 0; i < 64; i++) {
		compress_job_prep(&c[i], i);
		assert_int_equal(mw_comp_pool_submit(p, &c[i].job), 0);
	}
	mw_comp_pool_free(p);
	assert_true(done_total() <= 64);
	for (i = 0; i < 64; i++)
		assert_true(atomic_load(&trk.calls[i]) <= 1);
	free(c);
	alarm(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pool_new_rejects),
		cmocka_unit_test(pool_zstd_1_thread),
		cmocka_unit_test(pool_zstd_4_threads),
		cmocka_unit_test(pool_zlib_4_threads),
		cmocka_unit_test(pool_none_1_thread),
		cmocka_unit_test(pool_detects_corruption),
		cmocka_unit_test(pool_submit_blocks_at_cap),
		cmocka_unit_test(pool_stop_and_free_with_queued_jobs),
		cmocka_unit_test(pool_free_while_busy),
		cmocka_unit_test(pool_claim_and_newest_first),
	};
	const char *env = getenv("MW_TEST_SEED");

	test_seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	printf("comp/pool: seed %llu (replay with MW_TEST_SEED)\n",
	       (unsigned long long)test_seed);
	pthread_mutex_init(&trk.lock, NULL);
	pthread_cond_init(&trk.cond, NULL);
	return cmocka_run_group_tests_name("comp/pool", tests, NULL, NULL);
}
