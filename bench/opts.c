/* SPDX-License-Identifier: MIT */
/*
 * `migwire bench` options: one table (b_opts) from which getopt_long's
 * array and --help are generated, and the item parsers of the comma lists
 * whose cartesian product is the sweep. Runs on the caller's thread,
 * before anything starts. Exit status 2 for any usage error.
 */
#include "bench_int.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mw_err.h"
#include "mw_cli.h"
#include "mw_parse.h"
#include "mw_wire.h"
#include "ref.h"

static int bad(const char *name, const char *arg)
{
	fprintf(stderr, "migwire bench: --%s: bad value '%s' (see --help)\n",
		name, arg);
	return -MW_E_USAGE;
}

typedef int item_fn(struct mw_bench *b, const char *tok, unsigned i);

/* Calls one() for each comma-separated item of arg, at most B_LIST_MAX. */
static int each_item(struct mw_bench *b, const char *name, const char *arg,
		     unsigned *n, item_fn *one)
{
	char buf[512], *save = NULL, *tok;
	unsigned i = 0;

	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		return bad(name, arg);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (i == B_LIST_MAX || one(b, tok, i))
			return bad(name, arg);
		i++;
	}
	if (!i)
		return bad(name, arg);
	*n = i;
	return 0;
}

static int i_codec(struct mw_bench *b, const char *t, unsigned i)
{
	return mw_codec_parse(t, &b->codec[i]);
}

static int i_level(struct mw_bench *b, const char *t, unsigned i)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(t, &end, 10);
	if (errno || *end || end == t || v < -1000 || v > 1000)
		return -EINVAL;
	b->level[i] = (int)v;
	return 0;
}

static int i_chans(struct mw_bench *b, const char *t, unsigned i)
{
	return mw_parse_u32(t, 1, MW_CHANNELS_MAX, &b->chans[i]);
}

/* the codec reference runs as many threads as the configuration */
static int i_threads(struct mw_bench *b, const char *t, unsigned i)
{
	return mw_parse_u32(t, 1, MW_BENCH_REF_THREADS, &b->threads[i]);
}

static int i_chunk(struct mw_bench *b, const char *t, unsigned i)
{
	uint64_t v;

	if (mw_parse_size(t, &v) || v < MW_CHUNK_MIN || v > MW_CHUNK_MAX)
		return -EINVAL;
	b->chunk[i] = (uint32_t)v;
	return 0;
}

static int i_tls(struct mw_bench *b, const char *t, unsigned i)
{
	if (!strcmp(t, "on") || !strcmp(t, "x509"))
		b->tls[i] = MW_BENCH_TLS_X509;
	else if (!strcmp(t, "psk"))
		b->tls[i] = MW_BENCH_TLS_PSK;
	else if (!strcmp(t, "off"))
		b->tls[i] = MW_BENCH_TLS_OFF;
	else
		return -EINVAL;
	return 0;
}

struct b_opt;
typedef int opt_fn(struct mw_bench *b, const struct b_opt *o, const char *a);

/*
 * One option. fn parses its value; off, item and kind tell the generic
 * parsers below which field of struct mw_bench the option sets.
 */
struct b_opt {
	const char *name;
	opt_fn *fn;
	size_t off;	 /* o_list: the item count; o_str, o_u32: the field */
	item_fn *item;	 /* o_list: one item of the comma list */
	int kind;	 /* o_weight: enum mw_datagen_kind */
	uint32_t lo, hi; /* o_u32: the range */
	const char *arg_name; /* NULL: takes no value */
	const char *help;
};

#define B_OFF(f) offsetof(struct mw_bench, f)

static void *field(struct mw_bench *b, const struct b_opt *o)
{
	return (char *)b + o->off;
}

static int o_list(struct mw_bench *b, const struct b_opt *o, const char *a)
{
	return each_item(b, o->name, a, field(b, o), o->item);
}

static int o_str(struct mw_bench *b, const struct b_opt *o, const char *a)
{
	*(const char **)field(b, o) = a;
	return 0;
}

static int o_u32(struct mw_bench *b, const struct b_opt *o, const char *a)
{
	return mw_parse_u32(a, o->lo, o->hi, field(b, o)) ? bad(o->name, a) : 0;
}

static int o_weight(struct mw_bench *b, const struct b_opt *o, const char *a)
{
	return mw_datagen_weight_parse(a, &b->gen.weight[o->kind]) ?
		       bad(o->name, a) :
		       0;
}

static int o_size(struct mw_bench *b, const struct b_opt *o, const char *a)
{
	return mw_parse_size(a, &b->size) || !b->size ? bad(o->name, a) : 0;
}

static int o_seed(struct mw_bench *b, const struct b_opt *o, const char *a)
{
	char *end;

	errno = 0;
	b->gen.seed = strtoull(a, &end, 0);
	return errno || *end || end == a || *a == '-' ? bad(o->name, a) : 0;
}

static int o_window(struct mw_bench *b, const struct b_opt *o, const char *a)
{
	return mw_parse_size(a, &b->window) || b->window < (64 << 10) ?
		       bad(o->name, a) :
		       0;
}

static int o_keep(struct mw_bench *b, const struct b_opt *o, const char *a)
{
	b->keep = true;
	return 0;
}

static const struct b_opt b_opts[] = {
	{ .name = "input",
	  .fn = o_str,
	  .off = B_OFF(input),
	  .arg_name = "FILE",
	  .help = "corpus file, e.g. a guest memory dump (default: generate "
		  "one)" },
	{ .name = "size",
	  .fn = o_size,
	  .arg_name = "SIZE",
	  .help = "generated corpus bytes (default 256M)" },
	{ .name = "seed",
	  .fn = o_seed,
	  .arg_name = "N",
	  .help = "generator seed (default 0)" },
	{ .name = "zero",
	  .fn = o_weight,
	  .kind = MW_DATAGEN_ZERO,
	  .arg_name = "F",
	  .help = "fraction of zero pages (default 0.25)" },
	{ .name = "text",
	  .fn = o_weight,
	  .kind = MW_DATAGEN_TEXT,
	  .arg_name = "F",
	  .help = "fraction of text-like pages (default 0.25)" },
	{ .name = "code",
	  .fn = o_weight,
	  .kind = MW_DATAGEN_CODE,
	  .arg_name = "F",
	  .help = "fraction of code-like pages (default 0.15)" },
	{ .name = "random",
	  .fn = o_weight,
	  .kind = MW_DATAGEN_RANDOM,
	  .arg_name = "F",
	  .help = "fraction of random pages (default 0.35); the four sum to "
		  "1" },
	{ .name = "run",
	  .fn = o_u32,
	  .off = B_OFF(gen.run_pages),
	  .lo = 1,
	  .hi = 1u << 20,
	  .arg_name = "N",
	  .help = "pages in a row of one kind (default 1)" },
	{ .name = "compress",
	  .fn = o_list,
	  .off = B_OFF(n_codec),
	  .item = i_codec,
	  .arg_name = "LIST",
	  .help = "codecs: none,zlib,zstd (default zstd)" },
	{ .name = "compress-level",
	  .fn = o_list,
	  .off = B_OFF(n_level),
	  .item = i_level,
	  .arg_name = "LIST",
	  .help = "codec levels, as send's --compress-level (default: the "
		  "codec's, 1)" },
	{ .name = "channels",
	  .fn = o_list,
	  .off = B_OFF(n_chans),
	  .item = i_chans,
	  .arg_name = "LIST",
	  .help = "channels (default 2)" },
	{ .name = "compress-threads",
	  .fn = o_list,
	  .off = B_OFF(n_threads),
	  .item = i_threads,
	  .arg_name = "LIST",
	  .help = "send's --compress-threads and recv's "
		  "--decompress-threads, also the codec reference's "
		  "(default: online CPUs, at most 8)" },
	{ .name = "chunk-size",
	  .fn = o_list,
	  .off = B_OFF(n_chunk),
	  .item = i_chunk,
	  .arg_name = "LIST",
	  .help = "chunk sizes (default 256K)" },
	{ .name = "tls",
	  .fn = o_list,
	  .off = B_OFF(n_tls),
	  .item = i_tls,
	  .arg_name = "LIST",
	  .help = "TLS modes to compare: on (--tls-creds with a new PKI), "
		  "psk (--tls-psk), off (--no-tls) (default on)" },
	{ .name = "window",
	  .fn = o_window,
	  .arg_name = "SIZE",
	  .help = "migwire --window on both sides (default: migwire's)" },
	{ .name = "reps",
	  .fn = o_u32,
	  .off = B_OFF(reps),
	  .lo = 1,
	  .hi = 1000,
	  .arg_name = "N",
	  .help = "repetitions, interleaved (default 3)" },
	{ .name = "timeout",
	  .fn = o_u32,
	  .off = B_OFF(timeout_s),
	  .lo = 1,
	  .hi = 86400,
	  .arg_name = "SECS",
	  .help = "per run; then both are killed (default 300)" },
	{ .name = "json",
	  .fn = o_str,
	  .off = B_OFF(json),
	  .arg_name = "FILE",
	  .help = "write JSON lines: the run, each reference, each "
		  "configuration" },
	{ .name = "csv",
	  .fn = o_str,
	  .off = B_OFF(csv),
	  .arg_name = "FILE",
	  .help = "write one CSV row per configuration" },
	{ .name = "plot",
	  .fn = o_str,
	  .off = B_OFF(plot),
	  .arg_name = "FILE.png",
	  .help = "gnuplot: input MiB/s against channels, one line per codec, "
		  "dashed: its limit" },
	{ .name = "mkcerts",
	  .fn = o_str,
	  .off = B_OFF(mkcerts),
	  .arg_name = "PATH",
	  .help = "tools/mw-mkcerts for the X.509 PKI (default: $MW_MKCERTS, "
		  "next to the binary, the source tree, PATH)" },
	{ .name = "keep", .fn = o_keep, .help = "keep the temporary directory" },
};

#define B_NOPTS (sizeof(b_opts) / sizeof(b_opts[0]))

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"usage: migwire bench [options]\n\n"
		"Runs `migwire recv` and `migwire send` as child processes over "
		"127.0.0.1 on one\ncorpus, for every combination of the lists "
		"given (e.g. --compress none,zstd\n--channels 1,2,4: six "
		"configurations), and measures in the same repetitions\nthe "
		"limits each figure is divided by:\n"
		"  codec  bare codec rate: compress, then decompress, the corpus in chunk-size\n"
		"         pieces on --compress-threads threads in memory; corpus / (both\n"
		"         wall times)\n"
		"  relay  plain TCP relay: the corpus through a loopback socket, two threads\n"
		"\n"
		"Per configuration (medians over --reps; ratios are medians of per-repetition\n"
		"ratios): input MiB/s (corpus / wall, from the sender's start to both exits;\n"
		"1 MiB = 1048576 bytes) and its ratio to the limit (codec rate; relay rate for\n"
		"codec none), wire MiB/s (and Gbit/s in --json) and its ratio to the relay,\n"
		"compression ratio (input / wire), chunk latency p50/p99 (read by send to\n"
		"written by recv, --latency-file), CPU seconds per GiB of input of each stage\n"
		"(--stats-file: read, compress, encrypt, send; receive, decrypt, decompress,\n"
		"write), compress and decompress against the codec reference, the CPU of both\n"
		"processes (wait4) against the unavoidable CPU (codec CPU + relay CPU scaled to\n"
		"the wire bytes; there is no cipher reference here: bench/bench_ref has one),\n"
		"and byte-for-byte verification of recv's output (a pipe, as under QEMU's\n"
		"exec:). send reads the corpus file on stdin. Certificates: tools/mw-mkcerts\n"
		"into a temporary directory; PSK: a random keys.psk.\n"
		"\n"
		"options:\n");
	for (i = 0; i < B_NOPTS; i++) {
		char left[40];

		snprintf(left, sizeof(left), "--%s%s%s", b_opts[i].name,
			 b_opts[i].arg_name ? " " : "",
			 b_opts[i].arg_name ? b_opts[i].arg_name : "");
		mw_help_opt(f, left, b_opts[i].help);
	}
	mw_help_opt(f, "-h, --help", "this text");
	fprintf(f,
		"\nexample: migwire bench --size 512M --compress none,zlib,zstd "
		"--channels 1,2,4 \\\n           --json b.json --csv b.csv "
		"--plot b.png\n"
		"Exit status: 0 every run byte-exact, 1 a run failed, 2 usage "
		"error.\n");
}

static unsigned default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
}

static int parse_args(struct mw_bench *b, int argc, char **argv)
{
	struct option lo[B_NOPTS + 2];
	double sum = 0;
	size_t i;
	int c, k;

	for (i = 0; i < B_NOPTS; i++)
		lo[i] = (struct option){ b_opts[i].name,
					 b_opts[i].arg_name != NULL, NULL,
					 (int)(1000 + i) };
	lo[i++] = (struct option){ "help", 0, NULL, 'h' };
	lo[i] = (struct option){ 0 };
	optind = 1;
	opterr = 0;
	while ((c = mw_getopt_exact(argc, argv, "+h", lo, "migwire bench")) !=
	       -1) {
		if (c == -2) /* an abbreviation, already said */
			return -MW_E_USAGE;
		if (c == 'h') {
			usage(stdout);
			return 1;
		}
		if (c < 1000 || c >= 1000 + (int)B_NOPTS) {
			fprintf(stderr,
				"migwire bench: %s option '%s' (see "
				"--help)\n",
				optopt >= 1000 ? "missing value "
						 "for" :
						 "unknown",
				argv[optind - 1]);
			return -MW_E_USAGE;
		}
		if (b_opts[c - 1000].fn(b, &b_opts[c - 1000], optarg))
			return -MW_E_USAGE;
	}
	if (optind < argc) {
		fprintf(stderr, "migwire bench: unexpected argument '%s'\n",
			argv[optind]);
		return -MW_E_USAGE;
	}
	for (k = 0; k < MW_DATAGEN_KINDS; k++)
		sum += b->gen.weight[k];
	if (fabs(sum - 1.0) > 1e-6) {
		fprintf(stderr,
			"migwire bench: --zero, --text, --code and "
			"--random sum to %g, not 1\n",
			sum);
		return -MW_E_USAGE;
	}
	for (i = 0; i < b->n_codec; i++) {
		int lmin, lmax;

		mw_codec_level_range(b->codec[i], &lmin, &lmax);
		for (k = 0; b->codec[i] && k < (int)b->n_level; k++)
			if (b->level[k] < lmin || b->level[k] > lmax) {
				fprintf(stderr,
					"migwire bench: level %d is "
					"not in %d..%d for %s\n",
					b->level[k], lmin, lmax,
					mw_codec_name(b->codec[i]));
				return -MW_E_USAGE;
			}
	}
	return 0;
}

int mw_bench_opts_parse(struct mw_bench *b, int argc, char **argv)
{
	int ret = parse_args(b, argc, argv);

	if (ret)
		return ret;
	if (!b->n_codec)
		b->codec[b->n_codec++] = MW_CODEC_ZSTD;
	if (!b->n_level) {
		b->n_level = 1;
		b->level_default = true;
	}
	if (!b->n_chans)
		b->chans[b->n_chans++] = 2;
	if (!b->n_threads)
		b->threads[b->n_threads++] = default_threads();
	if (!b->n_chunk)
		b->chunk[b->n_chunk++] = 256u << 10;
	if (!b->n_tls)
		b->tls[b->n_tls++] = MW_BENCH_TLS_X509;
	return 0;
}
