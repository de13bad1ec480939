/* SPDX-License-Identifier: MIT */
/*
 * The in-memory references that migwire's figures are divided by, one
 * implementation for `migwire bench`, bench_ref and bench_comp
 * (bench/ref.c): the bare codec on N threads, an AES-GCM seal and open in
 * TLS 1.3 records, a loopback TCP relay, and the XXH3 checksum.
 */
#ifndef MW_BENCH_REF_H
#define MW_BENCH_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mw_comp.h"
#include "mw_err.h"
#include "mw_parse.h"

struct mw_bench_ref;

/*
 * Called on the worker thread that failed, once per failing worker: chunk
 * is the chunk it was on (SIZE_MAX when it failed before taking one, e.g.
 * no codec context), err the codec's text (msg empty when the chunk
 * decoded but differs from the corpus, or when there is no text).
 */
typedef void mw_bench_ref_fail_fn(const struct mw_bench_ref *r, size_t chunk,
				  int ret, const struct mw_err *err);

/*
 * One corpus cut into chunk-size pieces, and what the codec made of each.
 *
 * Locking: the caller's thread owns every field between passes. During
 * mw_bench_ref_codec() the workers only read the configuration; chunk i's
 * wire bytes and wire_len[i] are written only by the worker that took i
 * from the pass's atomic counter, and the pass joins every worker before
 * it returns (the join orders those writes before the caller's reads).
 */
struct mw_bench_ref {
	/* set by the caller before mw_bench_ref_init() */
	const uint8_t *corpus; /* borrowed; size bytes */
	size_t size, chunk;
	enum mw_codec codec;
	int level;
	unsigned threads;	    /* codec workers, 1..MW_BENCH_REF_THREADS */
	const struct mw_cpus *cpus; /* NULL or empty: not pinned */
	bool check;		    /* decompress compares with the corpus */
	const char *who;	    /* message prefix, e.g. "bench_ref" */
	mw_bench_ref_fail_fn *fail; /* NULL: failures are not reported */
	/* set by mw_bench_ref_init() */
	size_t nchunks, bound; /* bound: room for one compressed chunk */
	uint8_t *wire;	       /* nchunks * bound, or NULL */
	ssize_t *wire_len;     /* per chunk; -1: travels raw */
};

#define MW_BENCH_REF_THREADS 64

/*
 * Cuts the corpus into chunks; with_wire also allocates (and faults in)
 * the codec's output, which a relay of the raw corpus does not need.
 * Returns 0 or -ENOMEM. Context: the caller's thread.
 */
int mw_bench_ref_init(struct mw_bench_ref *r, bool with_wire);
void mw_bench_ref_destroy(struct mw_bench_ref *r);

/* Bytes in chunk i (the last one may be short). */
size_t mw_bench_ref_chunk_len(const struct mw_bench_ref *r, size_t i);

/*
 * Compresses chunk i into its wire slot, or decompresses it into out
 * (chunk bytes; a raw chunk is skipped) and, with r->check, compares it
 * with the corpus. Returns 0, or < 0 with the text in *err (msg empty for
 * -MW_E_CORRUPT from the comparison). Context: any one thread per chunk.
 */
int mw_bench_ref_chunk(struct mw_bench_ref *r, struct mw_codec_ctx *ctx,
		       enum mw_comp_dir dir, size_t i, uint8_t *out,
		       struct mw_err *err);

/*
 * One pass of every chunk on r->threads threads, as the sender's and the
 * receiver's pools do. Sets the wall time and the CPU seconds of all the
 * workers. Returns 0 or the first worker's error. Exits the process when a
 * worker cannot be started (the others would wait at the start barrier).
 */
int mw_bench_ref_codec(struct mw_bench_ref *r, enum mw_comp_dir dir,
		       double *wall_s, double *cpu_s);

/* Bytes after the last compress pass, raw chunks at raw size. */
size_t mw_bench_ref_wire_bytes(const struct mw_bench_ref *r);

/*
 * Seals then opens the wire bytes (raw chunks raw) in full TLS 1.3 records
 * with cipher (OpenSSL name, e.g. "aes-256-gcm") on this thread; sets the
 * CPU seconds of each half. Returns 0 or -MW_E_TLS (reported).
 */
int mw_bench_ref_cipher(struct mw_bench_ref *r, const char *cipher,
			double *seal_s, double *open_s);

/*
 * One thread writes, chunk by chunk, the wire bytes (the raw corpus when r
 * was initialised without wire) into a TCP connection over 127.0.0.1,
 * another reads chunk-size pieces and discards them. Sets the wall time,
 * both threads' CPU and the bytes the reader got. Returns 0 or -errno.
 */
int mw_bench_ref_relay(const struct mw_bench_ref *r, double *wall_s,
		       double *cpu_s, size_t *got);

/* CPU seconds of the XXH3 checksum of every raw chunk. */
double mw_bench_ref_xxh3(const struct mw_bench_ref *r);

/*
 * What every benchmark JSON line names the run by: returns $MW_GIT_SHA
 * (or "unknown") and writes the kernel release (uname) into kernel.
 */
const char *mw_bench_host(char *kernel, size_t cap);

#endif
