/* SPDX-License-Identifier: MIT */
/*
 * The references migwire's figures are divided by, measured in memory on
 * the same corpus (see ref.h). `migwire bench` runs the codec and the
 * relay of the raw corpus beside each configuration; bench_ref runs all
 * four on the wire bytes and prints them for bench/pipe.py; bench_comp
 * runs the per-chunk codec step on one thread.
 *
 *  - codec: N threads compress every chunk (as the sender's pool does:
 *    into a bound-sized buffer; a chunk that does not shrink travels raw),
 *    then N threads decompress them. Wall time and CPU seconds per phase.
 *  - cipher: one thread seals the wire bytes as TLS 1.3 does, in full
 *    16 KiB records (AES-GCM, 5-byte record header as AAD, per-record
 *    nonce, 16-byte tag), then opens them again.
 *  - relay: one thread writes chunk by chunk into a TCP connection over
 *    127.0.0.1, another reads and discards; the CPU of both threads
 *    (softirq work on loopback included, as it lands on them).
 *  - xxh3: the checksum of the raw corpus.
 *
 * Context: one caller thread; the passes start and join their own
 * workers, so nothing runs between calls. CPU times come from
 * CLOCK_THREAD_CPUTIME_ID of each working thread.
 */
#include "ref.h"

#include "mw_thread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <openssl/evp.h>

#define TLS_REC 16384u	 /* TLS 1.3 maximum record plaintext */
#define TLS_HDR 5u	 /* record header, the AEAD's additional data */
#define TLS_TAG 16u	 /* GCM tag */
#define CIPHER_BATCH 64u /* records sealed, then opened, per batch */

int mw_bench_ref_init(struct mw_bench_ref *r, bool with_wire)
{
	if (r->chunk > r->size)
		r->chunk = r->size;
	r->nchunks = (r->size + r->chunk - 1) / r->chunk;
	r->bound = mw_codec_bound(r->codec, r->chunk);
	r->wire = NULL;
	r->wire_len = NULL;
	if (!with_wire)
		return 0;
	r->wire = malloc(r->nchunks * r->bound);
	r->wire_len = calloc(r->nchunks, sizeof(*r->wire_len));
	if (!r->wire || !r->wire_len) {
		mw_bench_ref_destroy(r);
		return -ENOMEM;
	}
	memset(r->wire, 0, r->nchunks * r->bound); /* fault it in */
	return 0;
}

void mw_bench_ref_destroy(struct mw_bench_ref *r)
{
	free(r->wire);
	free(r->wire_len);
	r->wire = NULL;
	r->wire_len = NULL;
}

size_t mw_bench_ref_chunk_len(const struct mw_bench_ref *r, size_t i)
{
	size_t left = r->size - i * r->chunk;

	return left < r->chunk ? left : r->chunk;
}

/*
 * What travels for chunk i: its compressed bytes, or the raw chunk when it
 * did not shrink or r has no codec output at all.
 */
static const uint8_t *wire_piece(const struct mw_bench_ref *r, size_t i,
				 size_t *n)
{
	if (r->wire_len && r->wire_len[i] >= 0) {
		*n = (size_t)r->wire_len[i];
		return r->wire + i * r->bound;
	}
	*n = mw_bench_ref_chunk_len(r, i);
	return r->corpus + i * r->chunk;
}

size_t mw_bench_ref_wire_bytes(const struct mw_bench_ref *r)
{
	size_t i, n, sum = 0;

	for (i = 0; i < r->nchunks; i++) {
		wire_piece(r, i, &n);
		sum += n;
	}
	return sum;
}

/* ---- codec ---- */

int mw_bench_ref_chunk(struct mw_bench_ref *r, struct mw_codec_ctx *ctx,
		       enum mw_comp_dir dir, size_t i, uint8_t *out,
		       struct mw_err *err)
{
	const uint8_t *raw = r->corpus + i * r->chunk;
	uint8_t *wire = r->wire + i * r->bound;
	size_t n = mw_bench_ref_chunk_len(r, i);
	ssize_t w;
	int ret;

	if (dir == MW_COMP_COMPRESS) {
		w = mw_codec_compress(ctx, raw, n, wire, r->bound, err);
		if (w < 0 && w != -MW_E_NOSPACE)
			return (int)w;
		r->wire_len[i] = w < 0 ? -1 : w;
		return 0;
	}
	if (r->wire_len[i] < 0)
		return 0; /* raw: nothing to decode */
	ret = mw_codec_decompress(ctx, wire, (size_t)r->wire_len[i], out, n,
				  err);
	if (ret < 0)
		return ret;
	if (r->check && memcmp(out, raw, n)) {
		err->msg[0] = 0;
		return -MW_E_CORRUPT;
	}
	return 0;
}

/*
 * What each thread of a pass reports to the caller that joins it.
 * Locking: written only by the thread itself (tid by pthread_create);
 * the caller reads after pthread_join, which orders the writes.
 */
struct ref_thread {
	pthread_t tid;
	double cpu_s; /* CPU of the timed work alone */
	int ret;      /* 0 or the thread's first error */
};

/*
 * One codec pass, shared by its workers and the caller.
 * Locking: r and dir are set before the workers start and then only read;
 * next and failed are atomics (relaxed is enough: a chunk index is handed
 * out once, and failed only stops workers early); start is the barrier
 * that lets the caller time from the moment every worker is ready.
 */
struct codec_pass {
	struct mw_bench_ref *r;
	enum mw_comp_dir dir;
	pthread_barrier_t start; /* the workers, and the timing caller */
	atomic_size_t next;	 /* next chunk to take */
	atomic_int failed;	 /* stops the others after one error */
};

struct codec_worker {
	struct codec_pass *p;
	unsigned idx; /* names and places the thread */
	struct ref_thread t;
};

static void *codec_main(void *arg)
{
	struct codec_worker *w = arg;
	struct codec_pass *p = w->p;
	struct mw_bench_ref *r = p->r;
	struct mw_codec_ctx *ctx = NULL;
	struct mw_err err = { 0 };
	uint8_t *out = malloc(r->chunk);
	size_t i = SIZE_MAX;
	char name[16];
	double cpu0;

	snprintf(name, sizeof(name), "ref-codec%u", w->idx);
	mw_thread_place(name, r->cpus, w->idx);
	w->t.ret = out ? mw_codec_ctx_new(&ctx, r->codec, r->level) : -ENOMEM;
	if (out)
		memset(out, 0, r->chunk); /* fault it in before timing */
	pthread_barrier_wait(&p->start);
	cpu0 = mw_thread_cpu_seconds();
	while (!w->t.ret &&
	       !atomic_load_explicit(&p->failed, memory_order_relaxed)) {
		i = atomic_fetch_add_explicit(&p->next, 1,
					      memory_order_relaxed);
		if (i >= r->nchunks)
			break;
		w->t.ret = mw_bench_ref_chunk(r, ctx, p->dir, i, out, &err);
	}
	w->t.cpu_s = mw_thread_cpu_seconds() - cpu0;
	if (w->t.ret) {
		atomic_store_explicit(&p->failed, 1, memory_order_relaxed);
		if (r->fail)
			r->fail(r, i, w->t.ret, &err);
	}
	mw_codec_ctx_free(ctx);
	free(out);
	return NULL;
}

int mw_bench_ref_codec(struct mw_bench_ref *r, enum mw_comp_dir dir,
		       double *wall_s, double *cpu_s)
{
	struct codec_worker w[MW_BENCH_REF_THREADS];
	struct codec_pass p = { .r = r, .dir = dir };
	unsigned long long t0;
	unsigned i;
	int ret = 0;

	atomic_init(&p.next, 0);
	atomic_init(&p.failed, 0);
	if (pthread_barrier_init(&p.start, NULL, r->threads + 1))
		return -ENOMEM;
	for (i = 0; i < r->threads; i++) {
		w[i] = (struct codec_worker){ .p = &p, .idx = i };
		if (pthread_create(&w[i].t.tid, NULL, codec_main, &w[i])) {
			fprintf(stderr, "%s: cannot start threads\n", r->who);
			exit(1); /* the barrier would never open */
		}
	}
	pthread_barrier_wait(&p.start);
	t0 = mw_now_ns();
	*cpu_s = 0;
	for (i = 0; i < r->threads; i++) {
		pthread_join(w[i].t.tid, NULL);
		*cpu_s += w[i].t.cpu_s;
		if (w[i].t.ret && !ret)
			ret = w[i].t.ret;
	}
	*wall_s = (double)(mw_now_ns() - t0) / 1e9;
	pthread_barrier_destroy(&p.start);
	return ret;
}

/* ---- cipher ---- */

/* TLS 1.3 per-record nonce: the static IV XOR the record sequence number. */
static void record_nonce(uint8_t nonce[12], const uint8_t iv[12], uint64_t seq)
{
	unsigned k;

	memcpy(nonce, iv, 12);
	for (k = 0; k < 8; k++)
		nonce[4 + k] ^= (uint8_t)(seq >> (56 - 8 * k));
}

/* The stream of wire bytes, read record by record across chunks. */
struct wire_cursor {
	const struct mw_bench_ref *r;
	size_t ci, off, left;
	const uint8_t *src;
};

/*
 * Seals the next n wire bytes, the content type and the tag into one
 * record at rec (header included). Returns 0 or -MW_E_TLS.
 */
static int seal_record(EVP_CIPHER_CTX *ectx, struct wire_cursor *wc,
		       uint8_t *rec, size_t n, const uint8_t nonce[12])
{
	static const uint8_t ctype = 23; /* application data */
	uint8_t *p = rec + TLS_HDR;
	size_t got = 0, take;
	int len;

	rec[0] = 23;
	rec[1] = 3;
	rec[2] = 3;
	rec[3] = (uint8_t)((n + 1 + TLS_TAG) >> 8);
	rec[4] = (uint8_t)(n + 1 + TLS_TAG);
	if (EVP_EncryptInit_ex(ectx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(ectx, NULL, &len, rec, TLS_HDR) != 1)
		return -MW_E_TLS;
	/* a record may straddle chunks: GCM takes it in pieces */
	while (got < n) {
		if (!wc->left) {
			wc->off = 0;
			wc->src = wire_piece(wc->r, wc->ci++, &wc->left);
		}
		take = wc->left < n - got ? wc->left : n - got;
		if (EVP_EncryptUpdate(ectx, p + got, &len, wc->src + wc->off,
				      (int)take) != 1 ||
		    (size_t)len != take)
			return -MW_E_TLS;
		got += take;
		wc->off += take;
		wc->left -= take;
	}
	if (EVP_EncryptUpdate(ectx, p + n, &len, &ctype, 1) != 1 ||
	    EVP_EncryptFinal_ex(ectx, p + n + 1, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ectx, EVP_CTRL_AEAD_GET_TAG, TLS_TAG,
				p + n + 1) != 1)
		return -MW_E_TLS;
	return 0;
}

/* Opens the record at rec (n bytes of plaintext) into plain. */
static int open_record(EVP_CIPHER_CTX *dctx, uint8_t *rec, size_t n,
		       uint8_t *plain, const uint8_t nonce[12])
{
	uint8_t *p = rec + TLS_HDR;
	int len;

	if (EVP_DecryptInit_ex(dctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(dctx, NULL, &len, rec, TLS_HDR) != 1 ||
	    EVP_DecryptUpdate(dctx, plain, &len, p, (int)n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(dctx, EVP_CTRL_AEAD_SET_TAG, TLS_TAG, p + n) !=
		    1 ||
	    EVP_DecryptFinal_ex(dctx, plain + len, &len) != 1)
		return -MW_E_TLS;
	return 0;
}

/*
 * Seals then opens batches of full records from the wire bytes, as one
 * TLS 1.3 session would (the record's content type byte included). The
 * CPU of each half is added up separately. Returns 0 or -MW_E_TLS.
 */
int mw_bench_ref_cipher(struct mw_bench_ref *r, const char *cipher,
			double *seal_s, double *open_s)
{
	const EVP_CIPHER *ciph = EVP_get_cipherbyname(cipher);
	EVP_CIPHER_CTX *ectx = EVP_CIPHER_CTX_new();
	EVP_CIPHER_CTX *dctx = EVP_CIPHER_CTX_new();
	size_t rec_ct = TLS_HDR + TLS_REC + 1 + TLS_TAG;
	uint8_t key[32], iv[12], nonce[12], *plain = malloc(TLS_REC + 1);
	uint8_t *ct = malloc(CIPHER_BATCH * rec_ct);
	size_t ct_len[CIPHER_BATCH];
	struct wire_cursor wc = { .r = r };
	uint64_t seq = 0, oseq = 0;
	size_t nrec, k, n, total = mw_bench_ref_wire_bytes(r);
	double t;
	int ret = -MW_E_TLS;

	*seal_s = *open_s = 0;
	if (!ciph || !ectx || !dctx || !plain || !ct) {
		fprintf(stderr, "%s: cipher %s unavailable\n", r->who, cipher);
		goto out;
	}
	memset(key, 0x5a, sizeof(key));
	memset(iv, 0xa5, sizeof(iv));
	if (EVP_EncryptInit_ex(ectx, ciph, NULL, key, iv) != 1 ||
	    EVP_DecryptInit_ex(dctx, ciph, NULL, key, iv) != 1)
		goto out;
	memset(plain, 0, TLS_REC + 1);
	memset(ct, 0, CIPHER_BATCH * rec_ct);
	for (;;) {
		t = mw_thread_cpu_seconds();
		for (nrec = 0; nrec < CIPHER_BATCH && total; nrec++) {
			n = total < TLS_REC ? total : TLS_REC;
			total -= n;
			record_nonce(nonce, iv, seq++);
			if (seal_record(ectx, &wc, ct + nrec * rec_ct, n,
					nonce))
				goto out;
			ct_len[nrec] = n + 1;
		}
		*seal_s += mw_thread_cpu_seconds() - t;
		t = mw_thread_cpu_seconds();
		for (k = 0; k < nrec; k++) {
			record_nonce(nonce, iv, oseq++);
			if (open_record(dctx, ct + k * rec_ct, ct_len[k], plain,
					nonce)) {
				fprintf(stderr,
					"%s: record %llu does not open\n",
					r->who, (unsigned long long)(oseq - 1));
				goto out;
			}
		}
		*open_s += mw_thread_cpu_seconds() - t;
		if (!total)
			break;
	}
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ectx);
	EVP_CIPHER_CTX_free(dctx);
	free(plain);
	free(ct);
	return ret;
}

/* ---- loopback TCP relay ---- */

/*
 * One end of the relay. Locking: r and fd are set before its thread
 * starts; bytes and t are written only by that thread and read by the
 * caller after pthread_join.
 */
struct relay_side {
	const struct mw_bench_ref *r;
	int fd;
	size_t bytes; /* sent or received */
	struct ref_thread t;
};

static void *relay_tx(void *arg)
{
	struct relay_side *s = arg;
	const struct mw_bench_ref *r = s->r;
	double cpu0;
	size_t i, n, done;
	const uint8_t *p;
	ssize_t k;

	mw_thread_place("ref-relay-tx", r->cpus, 0);
	cpu0 = mw_thread_cpu_seconds();
	for (i = 0; i < r->nchunks && !s->t.ret; i++) {
		p = wire_piece(r, i, &n);
		for (done = 0; done < n; done += (size_t)k) {
			k = send(s->fd, p + done, n - done, MSG_NOSIGNAL);
			if (k < 0) {
				if (errno == EINTR) {
					k = 0;
					continue;
				}
				s->t.ret = -errno;
				break;
			}
		}
		s->bytes += done;
	}
	shutdown(s->fd, SHUT_WR);
	s->t.cpu_s = mw_thread_cpu_seconds() - cpu0;
	return NULL;
}

static void *relay_rx(void *arg)
{
	struct relay_side *s = arg;
	size_t cap = s->r->chunk;
	uint8_t *buf = malloc(cap);
	double cpu0;
	ssize_t k;

	mw_thread_place("ref-relay-rx", s->r->cpus, 1);
	if (!buf) {
		s->t.ret = -ENOMEM;
		shutdown(s->fd, SHUT_RDWR); /* or the writer blocks */
		return NULL;
	}
	memset(buf, 0, cap);
	cpu0 = mw_thread_cpu_seconds();
	for (;;) {
		k = recv(s->fd, buf, cap, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k < 0)
				s->t.ret = -errno;
			break;
		}
		s->bytes += (size_t)k;
	}
	s->t.cpu_s = mw_thread_cpu_seconds() - cpu0;
	free(buf);
	return NULL;
}

/* A connected pair over 127.0.0.1: tx->fd writes, rx->fd reads. */
static int relay_connect(struct relay_side *tx, struct relay_side *rx)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int lfd, ret = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen))
		goto err;
	tx->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (tx->fd < 0 || connect(tx->fd, (struct sockaddr *)&a, sizeof(a)))
		goto err;
	rx->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (rx->fd < 0)
		goto err;
	goto out;
err:
	ret = -errno;
out:
	close(lfd);
	return ret;
}

int mw_bench_ref_relay(const struct mw_bench_ref *r, double *wall_s,
		       double *cpu_s, size_t *got)
{
	struct relay_side tx = { .r = r, .fd = -1 };
	struct relay_side rx = { .r = r, .fd = -1 };
	unsigned long long t0;
	int ret;

	*got = 0;
	ret = relay_connect(&tx, &rx);
	if (ret)
		goto out;
	t0 = mw_now_ns();
	ret = -pthread_create(&rx.t.tid, NULL, relay_rx, &rx);
	if (ret)
		goto out;
	ret = -pthread_create(&tx.t.tid, NULL, relay_tx, &tx);
	if (ret) {
		shutdown(rx.fd, SHUT_RDWR);
		pthread_join(rx.t.tid, NULL);
		goto out;
	}
	pthread_join(tx.t.tid, NULL);
	pthread_join(rx.t.tid, NULL);
	*wall_s = (double)(mw_now_ns() - t0) / 1e9;
	*cpu_s = tx.t.cpu_s + rx.t.cpu_s;
	*got = rx.bytes;
	ret = tx.t.ret ? tx.t.ret : rx.t.ret;
out:
	if (tx.fd >= 0)
		close(tx.fd);
	if (rx.fd >= 0)
		close(rx.fd);
	return ret;
}

/* ---- the run's identity ---- */

const char *mw_bench_host(char *kernel, size_t cap)
{
	const char *sha = getenv("MW_GIT_SHA");
	struct utsname u;

	snprintf(kernel, cap, "%s", uname(&u) ? "unknown" : u.release);
	return sha ? sha : "unknown";
}

/* ---- xxh3 ---- */

double mw_bench_ref_xxh3(const struct mw_bench_ref *r)
{
	volatile uint64_t sink = 0;
	double t = mw_thread_cpu_seconds();
	size_t i;

	for (i = 0; i < r->nchunks; i++)
		sink ^= mw_comp_checksum(r->corpus + i * r->chunk,
					 mw_bench_ref_chunk_len(r, i));
	(void)sink;
	return mw_thread_cpu_seconds() - t;
}
