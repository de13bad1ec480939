/* SPDX-License-Identifier: MIT */
/*
 * The compress/decompress worker pool: N threads, each with its own codec
 * context, take chunk jobs from one bounded queue and report each through
 * the job's done() on the worker thread.
 *
 * DESIGN
 * The queue is a ring of job pointers under one mutex with two condition
 * variables (zstd's pool.c): job_ready wakes workers when a job arrives,
 * slot_free wakes submitters when one leaves. A full ring blocks submit,
 * which is the back-pressure that stops the reader from reading QEMU.
 * Jobs are borrowed, never copied: the pool holds the pointer from submit
 * until it calls done(), after which it never touches the job again.
 * Shutdown (QEMU multifd_send_terminate_threads): set stopping under the
 * lock, broadcast both conditions, join, free. A worker finishes the job in
 * its hands and exits; queued jobs are dropped without done().
 * Each worker publishes its own thread CPU clock after every job with a
 * relaxed store; mw_comp_pool_cpu_seconds() sums them, a statistic only.
 */
#include "comp_int.h"
#include "mw_log.h"
#include "mw_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct comp_worker {
	struct mw_comp_pool *pool;
	struct mw_codec_ctx *ctx; /* this worker's alone */
	pthread_t tid;
	unsigned idx;
	_Atomic uint64_t cpu_ns; /* relaxed: a statistic */
};

struct mw_comp_pool {
	pthread_mutex_t lock;
	pthread_cond_t job_ready; /* waited on by workers */
	pthread_cond_t slot_free; /* waited on by submitters */
	struct mw_comp_job **ring;
	unsigned cap, head, count; /* under lock */
	bool stopping;		   /* under lock */
	bool newest_first;	   /* under lock */
	unsigned nthreads, started;
	char prefix[12]; /* room for "<prefix><i>" in 15 chars */
	struct mw_cpus cpus;
	unsigned cpu_slot0;
	struct comp_worker w[];
};

static uint64_t comp_thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void comp_job_compress(struct mw_codec_ctx *ctx, struct mw_comp_job *job)
{
	ssize_t n;

	job->csum = mw_comp_checksum(job->src, job->src_len);
	job->raw = true;
	n = mw_codec_compress(ctx, job->src, job->src_len, job->dst,
			      job->dst_cap, &job->err);
	if (n == -MW_E_NOSPACE) {
		/* Not an error: the chunk travels raw. */
		memset(&job->err, 0, sizeof(job->err));
		return;
	}
	if (n < 0) {
		job->ret = (int)n;
		return;
	}
	job->raw = false;
	job->out_len = (size_t)n;
}

void mw_comp_job_verify(struct mw_comp_job *job)
{
	const uint8_t *out = job->raw ? job->src : job->dst;
	uint64_t got;

	if (job->raw && job->src_len != job->raw_len) {
		job->ret = mw_err_set(&job->err, -MW_E_CORRUPT,
				      "raw chunk of %zu bytes, "
				      "frame says %zu",
				      job->src_len, job->raw_len);
		return;
	}
	got = mw_comp_checksum(out, job->raw_len);
	if (got != job->csum) {
		job->ret = mw_err_set(&job->err, -MW_E_CORRUPT,
				      "checksum mismatch (got %016llx, frame "
				      "says %016llx)",
				      (unsigned long long)got,
				      (unsigned long long)job->csum);
		return;
	}
	job->out_len = job->raw_len;
}

static void comp_job_decompress(struct mw_codec_ctx *ctx,
				struct mw_comp_job *job)
{
	if (!job->raw && job->raw_len > job->dst_cap) {
		job->ret = mw_err_set(&job->err, -MW_E_CORRUPT,
				      "frame says %zu raw bytes, buffer holds "
				      "%zu",
				      job->raw_len, job->dst_cap);
		return;
	}
	if (!job->raw) {
		job->ret = mw_codec_decompress(ctx, job->src, job->src_len,
					       job->dst, job->raw_len,
					       &job->err);
		if (job->ret < 0)
			return;
	}
	mw_comp_job_verify(job);
}

static void comp_job_run(struct mw_codec_ctx *ctx, struct mw_comp_job *job)
{
	job->ret = 0;
	job->out_len = 0;
	memset(&job->err, 0, sizeof(job->err));
	if (job->dir == MW_COMP_COMPRESS)
		comp_job_compress(ctx, job);
	else
		comp_job_decompress(ctx, job);
}

static void *comp_worker_main(void *arg)
{
	struct comp_worker *w = arg;
	struct mw_comp_pool *p = w->pool;
	struct mw_comp_job *job;
	char name[32];
	int ret;

	snprintf(name, sizeof(name), "%s%u", p->prefix, w->idx);
	name[15] = '\0'; /* the kernel's limit for a thread name */
	ret = mw_thread_place(name, &p->cpus, p->cpu_slot0 + w->idx);
	if (ret < 0)
		MW_LOG(MW_LOG_WARN, "%s: cannot pin: %s", name,
		       mw_strerror(ret));

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->count && !p->stopping)
			pthread_cond_wait(&p->job_ready, &p->lock);
		if (p->stopping)
			break;
		if (p->newest_first) {
			job = p->ring[(p->head + p->count - 1) % p->cap];
		} else {
			job = p->ring[p->head];
			p->head = (p->head + 1) % p->cap;
		}
		p->count--;
		pthread_cond_signal(&p->slot_free);
		pthread_mutex_unlock(&p->lock);

		comp_job_run(w->ctx, job);
		atomic_store_explicit(&w->cpu_ns, comp_thread_cpu_ns(),
				      memory_order_relaxed);
		if (job->done)
			job->done(job); /* the job is the caller's again */

		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	atomic_store_explicit(&w->cpu_ns, comp_thread_cpu_ns(),
			      memory_order_relaxed);
	return NULL;
}

int mw_comp_pool_new(struct mw_comp_pool **out, enum mw_codec c, int level,
		     unsigned nthreads, unsigned queue_cap, const char *prefix,
		     const struct mw_cpus *cpus, unsigned cpu_slot0)
{
	struct mw_comp_pool *p;
	unsigned i;
	int ret;

	*out = NULL;
	if (!nthreads || !queue_cap || nthreads > 1024)
		return -EINVAL;
	p = calloc(1, sizeof(*p) + nthreads * sizeof(p->w[0]));
	if (!p)
		return -ENOMEM;
	p->ring = calloc(queue_cap, sizeof(*p->ring));
	if (!p->ring) {
		free(p);
		return -ENOMEM;
	}
	p->cap = queue_cap;
	p->nthreads = nthreads;
	snprintf(p->prefix, sizeof(p->prefix), "%s",
		 prefix ? prefix : "mw-comp");
	if (cpus)
		p->cpus = *cpus;
	p->cpu_slot0 = cpu_slot0;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->job_ready, NULL);
	pthread_cond_init(&p->slot_free, NULL);

	for (i = 0; i < nthreads; i++) {
		p->w[i].pool = p;
		p->w[i].idx = i;
		ret = mw_codec_ctx_new(&p->w[i].ctx, c, level);
		if (ret < 0)
			goto err_pool;
	}
	for (i = 0; i < nthreads; i++) {
		ret = -pthread_create(&p->w[i].tid, NULL, comp_worker_main,
				      &p->w[i]);
		if (ret < 0)
			goto err_pool;
		p->started++;
	}
	*out = p;
	return 0;
err_pool:
	mw_comp_pool_free(p); /* joins and frees what was made */
	return ret;
}

void mw_comp_pool_stop(struct mw_comp_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->job_ready);
	pthread_cond_broadcast(&p->slot_free);
	pthread_mutex_unlock(&p->lock);
}

int mw_comp_pool_submit(struct mw_comp_pool *p, struct mw_comp_job *job)
{
	pthread_mutex_lock(&p->lock);
	while (p->count == p->cap && !p->stopping)
		pthread_cond_wait(&p->slot_free, &p->lock);
	if (p->stopping) {
		pthread_mutex_unlock(&p->lock);
		return -MW_E_CANCEL;
	}
	p->ring[(p->head + p->count) % p->cap] = job;
	p->count++;
	pthread_cond_signal(&p->job_ready);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void mw_comp_pool_newest_first(struct mw_comp_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->newest_first = true;
	pthread_mutex_unlock(&p->lock);
}

bool mw_comp_pool_claim(struct mw_comp_pool *p, struct mw_comp_job *job)
{
	unsigned i, k;
	bool found = false;

	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->count && !found; i++)
		found = p->ring[(p->head + i) % p->cap] == job;
	if (found) {
		/* close the gap: later jobs keep their order */
		for (k = i - 1; k + 1 < p->count; k++)
			p->ring[(p->head + k) % p->cap] =
				p->ring[(p->head + k + 1) % p->cap];
		p->count--;
		pthread_cond_signal(&p->slot_free);
	}
	pthread_mutex_unlock(&p->lock);
	return found;
}

void mw_comp_pool_free(struct mw_comp_pool *p)
{
	unsigned i;

	if (!p)
		return;
	mw_comp_pool_stop(p);
	for (i = 0; i < p->started; i++)
		pthread_join(p->w[i].tid, NULL);
	for (i = 0; i < p->nthreads; i++)
		mw_codec_ctx_free(p->w[i].ctx);
	pthread_cond_destroy(&p->slot_free);
	pthread_cond_destroy(&p->job_ready);
	pthread_mutex_destroy(&p->lock);
	free(p->ring);
	free(p);
}

double mw_comp_pool_cpu_seconds(struct mw_comp_pool *p)
{
	uint64_t ns = 0;
	unsigned i;

	for (i = 0; i < p->nthreads; i++)
		ns += atomic_load_explicit(&p->w[i].cpu_ns,
					   memory_order_relaxed);
	return (double)ns / 1e9;
}
