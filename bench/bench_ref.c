/* SPDX-License-Identifier: MIT */
/*
 * bench_ref: the reference costs that bench/pipe.py holds `migwire send |
 * migwire recv` against, measured on the same corpus in the same run.
 *
 *  - codec: N threads compress every --chunk-size piece of the corpus (as
 *    the sender's pool does: into a bound-sized buffer; a chunk that does
 *    not shrink travels raw), then N threads decompress them, all in
 *    memory. Reports the wall time and the CPU seconds of each phase; the
 *    bare codec rate is corpus bytes / (compress wall + decompress wall).
 *  - cipher: one thread seals the wire bytes (what the codec produced,
 *    raw chunks at raw size) as TLS 1.3 does, in full 16 KiB records
 *    (AES-GCM, 5-byte record header as AAD, per-record nonce, 16-byte
 *    tag), then opens them again. AES-256-GCM by default: OpenSSL's first
 *    TLS 1.3 suite, which is what migwire's X.509 mode negotiates
 *    (TLS_AES_256_GCM_SHA384); --cipher aes-128-gcm matches PSK mode.
 *  - relay: one thread writes the wire bytes, chunk by chunk, into a TCP
 *    connection over 127.0.0.1 and another reads and discards them; the
 *    CPU of both threads (softirq work on loopback included, as it lands
 *    on them) and the wall time.
 *  - xxh3: the checksum of the raw corpus, which migwire computes once on
 *    each side; reported apart, as it is not part of "codec".
 *
 * One untimed warm-up pass (which also checks the round trip byte for
 * byte), then --runs timed passes, one JSON line each. CPU times come from
 * CLOCK_THREAD_CPUTIME_ID of each working thread.
 */
#include "datagen.h"
#include "mw_comp.h"
#include "mw_thread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <openssl/evp.h>

#define REF_MAX_THREADS 64
#define TLS_REC 16384u	 /* TLS 1.3 maximum record plaintext */
#define TLS_HDR 5u	 /* record header, the AEAD's additional data */
#define TLS_TAG 16u	 /* GCM tag */
#define CIPHER_BATCH 64u /* records sealed, then opened, per batch */

struct ref {
	uint8_t *corpus, *wire;
	size_t size, chunk, nchunks, bound;
	ssize_t *wire_len; /* per chunk; -1: travels raw */
	size_t wire_bytes;
	unsigned threads;
	enum mw_codec codec;
	int level;
	const char *cipher;
	struct mw_cpus cpus;
	bool check;
};

/* ---- codec ---- */

struct codec_run {
	struct ref *r;
	pthread_barrier_t start;
	atomic_size_t next; /* next chunk to take */
	enum mw_comp_dir dir;
	int failed;
};

struct codec_thread {
	struct codec_run *run;
	pthread_t tid;
	unsigned idx;
	double cpu_s;
	int ret;
};

static size_t chunk_len(const struct ref *r, size_t i)
{
	size_t left = r->size - i * r->chunk;

	return left < r->chunk ? left : r->chunk;
}

static int codec_one(struct ref *r, struct mw_codec_ctx *ctx,
		     enum mw_comp_dir dir, size_t i, uint8_t *out)
{
	const uint8_t *raw = r->corpus + i * r->chunk;
	uint8_t *wire = r->wire + i * r->bound;
	size_t n = chunk_len(r, i);
	struct mw_err err = { 0 };
	ssize_t w;

	if (dir == MW_COMP_COMPRESS) {
		w = mw_codec_compress(ctx, raw, n, wire, r->bound, &err);
		if (w < 0 && w != -MW_E_NOSPACE)
			goto fail;
		r->wire_len[i] = w < 0 ? -1 : w;
		return 0;
	}
	if (r->wire_len[i] < 0)
		return 0; /* raw: nothing to decode */
	w = mw_codec_decompress(ctx, wire, (size_t)r->wire_len[i], out, n,
				&err);
	if (w < 0)
		goto fail;
	if (r->check && memcmp(out, raw, n)) {
		fprintf(stderr, "bench_ref: chunk %zu differs\n", i);
		return -MW_E_CORRUPT;
	}
	return 0;
fail:
	fprintf(stderr, "bench_ref: chunk %zu: %s\n", i, err.msg);
	return (int)w;
}

static void *codec_main(void *arg)
{
	struct codec_thread *t = arg;
	struct codec_run *run = t->run;
	struct ref *r = run->r;
	struct mw_codec_ctx *ctx = NULL;
	uint8_t *out = malloc(r->chunk);
	char name[16];
	double cpu0;
	size_t i;

	snprintf(name, sizeof(name), "ref-codec%u", t->idx);
	mw_thread_place(name, &r->cpus, t->idx);
	t->ret = out ? mw_codec_ctx_new(&ctx, r->codec, r->level) : -ENOMEM;
	if (out)
		memset(out, 0, r->chunk); /* fault it in before timing */
	pthread_barrier_wait(&run->start);
	cpu0 = mw_thread_cpu_seconds();
	while (!t->ret && !run->failed) {
		i = atomic_fetch_add(&run->next, 1);
		if (i >= r->nchunks)
			break;
		t->ret = codec_one(r, ctx, run->dir, i, out);
	}
	t->cpu_s = mw_thread_cpu_seconds() - cpu0;
	if (t->ret)
		run->failed = 1;
	mw_codec_ctx_free(ctx);
	free(out);
	return NULL;
}

/* One parallel pass; *wall_s and *cpu_s are set. Returns 0 or < 0. */
static int codec_pass(struct ref *r, enum mw_comp_dir dir, double *wall_s,
		      double *cpu_s)
{
	struct codec_thread t[REF_MAX_THREADS];
	struct codec_run run = { .r = r, .dir = dir };
	unsigned long long t0;
	unsigned i, started = 0;
	int ret = 0;

	atomic_init(&run.next, 0);
	if (pthread_barrier_init(&run.start, NULL, r->threads + 1))
		return -ENOMEM;
	for (i = 0; i < r->threads; i++) {
		t[i] = (struct codec_thread){ .run = &run, .idx = i };
		if (pthread_create(&t[i].tid, NULL, codec_main, &t[i]))
			break;
		started++;
	}
	if (started < r->threads) {
		/* Cannot start the pass: let the others past the barrier. */
		fprintf(stderr, "bench_ref: cannot start threads\n");
		exit(1);
	}
	pthread_barrier_wait(&run.start);
	t0 = mw_now_ns();
	*cpu_s = 0;
	for (i = 0; i < started; i++) {
		pthread_join(t[i].tid, NULL);
		*cpu_s += t[i].cpu_s;
		if (t[i].ret && !ret)
			ret = t[i].ret;
	}
	*wall_s = (double)(mw_now_ns() - t0) / 1e9;
	pthread_barrier_destroy(&run.start);
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

/*
 * Seals then opens batches of full records from the wire bytes, as one
 * TLS 1.3 session would (the record's content type byte included). The
 * CPU of each half is added up separately. Returns 0 or -MW_E_TLS.
 */
static int cipher_pass(struct ref *r, double *seal_s, double *open_s)
{
	const EVP_CIPHER *ciph = EVP_get_cipherbyname(r->cipher);
	EVP_CIPHER_CTX *ectx = EVP_CIPHER_CTX_new();
	EVP_CIPHER_CTX *dctx = EVP_CIPHER_CTX_new();
	size_t rec_ct = TLS_HDR + TLS_REC + 1 + TLS_TAG;
	uint8_t key[32], iv[12], nonce[12], *plain = malloc(TLS_REC + 1);
	uint8_t *ct = malloc(CIPHER_BATCH * rec_ct);
	size_t ct_len[CIPHER_BATCH];
	uint64_t seq = 0, oseq = 0;
	size_t ci = 0, off = 0, left, take, nrec, k, total;
	const uint8_t *src = NULL;
	double t;
	int len, ret = -MW_E_TLS;

	*seal_s = *open_s = 0;
	if (!ciph || !ectx || !dctx || !plain || !ct) {
		fprintf(stderr, "bench_ref: cipher %s unavailable\n",
			r->cipher);
		goto out;
	}
	memset(key, 0x5a, sizeof(key));
	memset(iv, 0xa5, sizeof(iv));
	if (EVP_EncryptInit_ex(ectx, ciph, NULL, key, iv) != 1 ||
	    EVP_DecryptInit_ex(dctx, ciph, NULL, key, iv) != 1)
		goto out;
	memset(plain, 0, TLS_REC + 1);
	memset(ct, 0, CIPHER_BATCH * rec_ct);
	/*
	 * Walk the wire bytes of every chunk as one stream; each record is
	 * encrypted straight from the chunks into the ciphertext buffer (a
	 * record may straddle chunks: GCM takes it in pieces).
	 */
	left = 0;
	total = r->wire_bytes;
	for (;;) {
		t = mw_thread_cpu_seconds();
		for (nrec = 0; nrec < CIPHER_BATCH && total; nrec++) {
			uint8_t *rec = ct + nrec * rec_ct, *p = rec + TLS_HDR;
			size_t n = total < TLS_REC ? total : TLS_REC, got = 0;
			static const uint8_t ctype = 23; /* application data */

			total -= n;
			rec[0] = 23;
			rec[1] = 3;
			rec[2] = 3;
			rec[3] = (uint8_t)((n + 1 + TLS_TAG) >> 8);
			rec[4] = (uint8_t)(n + 1 + TLS_TAG);
			record_nonce(nonce, iv, seq++);
			if (EVP_EncryptInit_ex(ectx, NULL, NULL, NULL, nonce) !=
				    1 ||
			    EVP_EncryptUpdate(ectx, NULL, &len, rec, TLS_HDR) !=
				    1)
				goto out;
			while (got < n) {
				if (!left) {
					off = 0;
					left = r->wire_len[ci] < 0 ?
						       chunk_len(r, ci) :
						       (size_t)r->wire_len[ci];
					src = r->wire_len[ci] < 0 ?
						      r->corpus +
							      ci * r->chunk :
						      r->wire + ci * r->bound;
					ci++;
				}
				take = left < n - got ? left : n - got;
				if (EVP_EncryptUpdate(ectx, p + got, &len,
						      src + off,
						      (int)take) != 1 ||
				    (size_t)len != take)
					goto out;
				got += take;
				off += take;
				left -= take;
			}
			if (EVP_EncryptUpdate(ectx, p + n, &len, &ctype, 1) !=
				    1 ||
			    EVP_EncryptFinal_ex(ectx, p + n + 1, &len) != 1 ||
			    EVP_CIPHER_CTX_ctrl(ectx, EVP_CTRL_AEAD_GET_TAG,
						TLS_TAG, p + n + 1) != 1)
				goto out;
			ct_len[nrec] = n + 1;
		}
		*seal_s += mw_thread_cpu_seconds() - t;
		t = mw_thread_cpu_seconds();
		for (k = 0; k < nrec; k++) {
			uint8_t *rec = ct + k * rec_ct, *p = rec + TLS_HDR;
			size_t n = ct_len[k];

			record_nonce(nonce, iv, oseq++);
			if (EVP_DecryptInit_ex(dctx, NULL, NULL, NULL, nonce) !=
				    1 ||
			    EVP_DecryptUpdate(dctx, NULL, &len, rec, TLS_HDR) !=
				    1 ||
			    EVP_DecryptUpdate(dctx, plain, &len, p, (int)n) !=
				    1 ||
			    EVP_CIPHER_CTX_ctrl(dctx, EVP_CTRL_AEAD_SET_TAG,
						TLS_TAG, p + n) != 1 ||
			    EVP_DecryptFinal_ex(dctx, plain + len, &len) != 1) {
				fprintf(stderr,
					"bench_ref: record %llu does "
					"not open\n",
					(unsigned long long)(oseq - 1));
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

struct relay {
	struct ref *r;
	int fd;
	double cpu_s;
	size_t bytes;
	int ret;
};

static void *relay_writer(void *arg)
{
	struct relay *w = arg;
	struct ref *r = w->r;
	double cpu0;
	size_t i, n, done;
	const uint8_t *p;
	ssize_t k;

	mw_thread_place("ref-relay-tx", &w->r->cpus, 0);
	cpu0 = mw_thread_cpu_seconds();
	for (i = 0; i < r->nchunks && !w->ret; i++) {
		if (r->wire_len[i] < 0) {
			p = r->corpus + i * r->chunk;
			n = chunk_len(r, i);
		} else {
			p = r->wire + i * r->bound;
			n = (size_t)r->wire_len[i];
		}
		for (done = 0; done < n; done += (size_t)k) {
			k = send(w->fd, p + done, n - done, MSG_NOSIGNAL);
			if (k < 0) {
				if (errno == EINTR) {
					k = 0;
					continue;
				}
				w->ret = -errno;
				break;
			}
		}
		w->bytes += n;
	}
	shutdown(w->fd, SHUT_WR);
	w->cpu_s = mw_thread_cpu_seconds() - cpu0;
	return NULL;
}

static void *relay_reader(void *arg)
{
	struct relay *rd = arg;
	size_t cap = rd->r->chunk;
	uint8_t *buf = malloc(cap);
	double cpu0;
	ssize_t k;

	mw_thread_place("ref-relay-rx", &rd->r->cpus, 1);
	if (!buf) {
		rd->ret = -ENOMEM;
		return NULL;
	}
	memset(buf, 0, cap);
	cpu0 = mw_thread_cpu_seconds();
	for (;;) {
		k = recv(rd->fd, buf, cap, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k < 0)
				rd->ret = -errno;
			break;
		}
		rd->bytes += (size_t)k;
	}
	rd->cpu_s = mw_thread_cpu_seconds() - cpu0;
	free(buf);
	return NULL;
}

static int relay_pass(struct ref *r, double *wall_s, double *cpu_s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct relay w = { .r = r, .fd = -1 }, rd = { .r = r, .fd = -1 };
	pthread_t wt, rt;
	unsigned long long t0;
	int lfd, ret;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen))
		goto err;
	w.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (w.fd < 0 || connect(w.fd, (struct sockaddr *)&a, sizeof(a)))
		goto err;
	rd.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (rd.fd < 0)
		goto err;
	t0 = mw_now_ns();
	ret = -pthread_create(&rt, NULL, relay_reader, &rd);
	if (ret)
		goto out;
	ret = -pthread_create(&wt, NULL, relay_writer, &w);
	if (ret) {
		shutdown(rd.fd, SHUT_RDWR);
		pthread_join(rt, NULL);
		goto out;
	}
	pthread_join(wt, NULL);
	pthread_join(rt, NULL);
	*wall_s = (double)(mw_now_ns() - t0) / 1e9;
	*cpu_s = w.cpu_s + rd.cpu_s;
	ret = w.ret ? w.ret : rd.ret;
	if (!ret && rd.bytes != r->wire_bytes) {
		fprintf(stderr, "bench_ref: relay got %zu of %zu bytes\n",
			rd.bytes, r->wire_bytes);
		ret = -EIO;
	}
	goto out;
err:
	ret = -errno;
out:
	if (w.fd >= 0)
		close(w.fd);
	if (rd.fd >= 0)
		close(rd.fd);
	close(lfd);
	return ret;
}

/* ---- xxh3 ---- */

static double xxh3_pass(struct ref *r)
{
	volatile uint64_t sink = 0;
	double t = mw_thread_cpu_seconds();
	size_t i;

	for (i = 0; i < r->nchunks; i++)
		sink ^= mw_comp_checksum(r->corpus + i * r->chunk,
					 chunk_len(r, i));
	(void)sink;
	return mw_thread_cpu_seconds() - t;
}

/* ---- driver ---- */

struct result {
	double c_wall, c_cpu, d_wall, d_cpu, seal, open, r_wall, r_cpu, xxh3;
};

static int run_once(struct ref *r, struct result *res)
{
	size_t i;
	int ret;

	ret = codec_pass(r, MW_COMP_COMPRESS, &res->c_wall, &res->c_cpu);
	if (!ret)
		ret = codec_pass(r, MW_COMP_DECOMPRESS, &res->d_wall,
				 &res->d_cpu);
	if (ret)
		return ret;
	r->wire_bytes = 0;
	for (i = 0; i < r->nchunks; i++)
		r->wire_bytes += r->wire_len[i] < 0 ? chunk_len(r, i) :
						      (size_t)r->wire_len[i];
	ret = cipher_pass(r, &res->seal, &res->open);
	if (!ret)
		ret = relay_pass(r, &res->r_wall, &res->r_cpu);
	res->xxh3 = xxh3_pass(r);
	return ret;
}

static void print_result(const struct ref *r, const char *sha,
			 const char *kernel, unsigned run,
			 const struct result *x)
{
	double gib = (double)r->size / (double)(1u << 30);
	double codec_cpu = x->c_cpu + x->d_cpu;
	double unavoid = codec_cpu + x->seal + x->open + x->r_cpu;

	printf("{\"bench\":\"ref\",\"sha\":\"%s\",\"kernel\":\"%s\","
	       "\"run\":%u,\"size\":%zu,\"codec\":\"%s\",\"level\":%d,"
	       "\"chunk\":%zu,\"threads\":%u,\"cipher\":\"%s\","
	       "\"wire_bytes\":%zu,\"ratio\":%.4f,"
	       "\"comp_wall_s\":%.4f,\"comp_cpu_s\":%.4f,"
	       "\"decomp_wall_s\":%.4f,\"decomp_cpu_s\":%.4f,"
	       "\"codec_mbps\":%.1f,"
	       "\"seal_cpu_s\":%.4f,\"open_cpu_s\":%.4f,"
	       "\"relay_wall_s\":%.4f,\"relay_cpu_s\":%.4f,"
	       "\"xxh3_cpu_s\":%.4f,"
	       "\"unavoidable_cpu_s\":%.4f,"
	       "\"unavoidable_cpu_s_per_gib\":%.4f}\n",
	       sha, kernel, run, r->size, mw_codec_name(r->codec), r->level,
	       r->chunk, r->threads, r->cipher, r->wire_bytes,
	       (double)r->wire_bytes / (double)r->size, x->c_wall, x->c_cpu,
	       x->d_wall, x->d_cpu,
	       (double)r->size / 1e6 / (x->c_wall + x->d_wall), x->seal,
	       x->open, x->r_wall, x->r_cpu, x->xxh3, unavoid, unavoid / gib);
	fflush(stdout);
}

static int load_file(struct ref *r, const char *path)
{
	struct stat st;
	size_t got = 0;
	ssize_t k;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) || st.st_size <= 0) {
		fprintf(stderr, "bench_ref: %s: %s\n", path,
			fd < 0 ? strerror(errno) : "empty or unreadable");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	r->size = (size_t)st.st_size;
	r->corpus = malloc(r->size);
	while (r->corpus && got < r->size) {
		k = read(fd, r->corpus + got, r->size - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	if (!r->corpus || got != r->size) {
		fprintf(stderr, "bench_ref: cannot read %s\n", path);
		return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_ref [options]\n"
		"  --input FILE       corpus file (default: generate --size)\n"
		"  --size SIZE        generated corpus bytes (default 256M)\n"
		"  --seed N           mw-datagen seed (default 0)\n"
		"  --compress CODEC   zstd|zlib|none (default zstd)\n"
		"  --compress-level L (default 1)\n"
		"  --chunk-size SIZE  (default 256K)\n"
		"  --threads N        codec threads, 1..%d (default 2)\n"
		"  --cipher NAME      aes-256-gcm (X.509 TLS) | aes-128-gcm "
		"(PSK TLS)\n"
		"  --runs N           timed runs after one warm-up (default 1)\n"
		"  --cpus LIST        pin threads round-robin to these CPUs\n"
		"Prints one JSON line per timed run. MW_GIT_SHA names the "
		"build.\n",
		REF_MAX_THREADS);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "size", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "compress", required_argument, NULL, 'c' },
		{ "compress-level", required_argument, NULL, 'l' },
		{ "chunk-size", required_argument, NULL, 'k' },
		{ "threads", required_argument, NULL, 't' },
		{ "cipher", required_argument, NULL, 'C' },
		{ "runs", required_argument, NULL, 'r' },
		{ "cpus", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ref r = { .size = 256u << 20,
			 .chunk = 256u << 10,
			 .threads = 2,
			 .codec = MW_CODEC_ZSTD,
			 .level = 1,
			 .cipher = "aes-256-gcm" };
	const char *input = NULL, *sha;
	struct mw_datagen_cfg cfg;
	struct result res;
	struct utsname u;
	char kernel[128] = "unknown", *end;
	uint64_t seed = 0, v;
	unsigned runs = 1, i;
	uint32_t n;
	int c, ret = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			input = optarg;
			break;
		case 's':
			if (mw_parse_size(optarg, &v) || !v)
				goto usage;
			r.size = (size_t)v;
			break;
		case 'S':
			seed = strtoull(optarg, &end, 0);
			if (*end)
				goto usage;
			break;
		case 'c':
			if (mw_codec_parse(optarg, &r.codec))
				goto usage;
			break;
		case 'l':
			r.level = (int)strtol(optarg, &end, 10);
			if (*end)
				goto usage;
			break;
		case 'k':
			if (mw_parse_size(optarg, &v) || v < 4096 ||
			    v > (16u << 20))
				goto usage;
			r.chunk = (size_t)v;
			break;
		case 't':
			if (mw_parse_u32(optarg, 1, REF_MAX_THREADS, &n))
				goto usage;
			r.threads = n;
			break;
		case 'C':
			r.cipher = optarg;
			break;
		case 'r':
			if (mw_parse_u32(optarg, 1, 1000, &n))
				goto usage;
			runs = n;
			break;
		case 'p':
			if (mw_parse_cpus(optarg, &r.cpus))
				goto usage;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto usage;
		}
	}
	if (optind < argc)
		goto usage;
	sha = getenv("MW_GIT_SHA") ? getenv("MW_GIT_SHA") : "unknown";
	if (!uname(&u))
		snprintf(kernel, sizeof(kernel), "%s", u.release);
	if (input) {
		if (load_file(&r, input))
			return 1;
	} else {
		r.corpus = malloc(r.size);
		if (!r.corpus)
			return 1;
		mw_datagen_cfg_default(&cfg);
		cfg.seed = seed;
		mw_datagen_fill(r.corpus, r.size, &cfg, 0);
	}
	if (r.chunk > r.size)
		r.chunk = r.size;
	r.nchunks = (r.size + r.chunk - 1) / r.chunk;
	r.bound = mw_codec_bound(r.codec, r.chunk);
	if (r.bound < r.chunk)
		r.bound = r.chunk;
	r.wire = malloc(r.nchunks * r.bound);
	r.wire_len = calloc(r.nchunks, sizeof(*r.wire_len));
	if (!r.wire || !r.wire_len) {
		fprintf(stderr, "bench_ref: out of memory\n");
		free(r.wire);
		free(r.wire_len);
		return 1;
	}
	memset(r.wire, 0, r.nchunks * r.bound);
	/* Warm-up: faults every buffer in and checks the round trip. */
	r.check = true;
	ret = run_once(&r, &res);
	r.check = false;
	for (i = 0; !ret && i < runs; i++) {
		ret = run_once(&r, &res);
		if (!ret)
			print_result(&r, sha, kernel, i, &res);
	}
	if (ret)
		fprintf(stderr, "bench_ref: %s\n", mw_strerror(ret));
	free(r.corpus);
	free(r.wire);
	free(r.wire_len);
	return ret ? 1 : 0;
usage:
	usage(stderr);
	return 2;
}
