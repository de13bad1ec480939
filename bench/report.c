/* SPDX-License-Identifier: MIT */
/*
 * `migwire bench` output, once every repetition has run: medians over the
 * good repetitions (ratios: the median of the per-repetition ratios), the
 * tables on stdout, and on request JSON lines (--json), one CSV row per
 * configuration (--csv) and a gnuplot PNG of input MiB/s against channels
 * (--plot). Driver thread only; reads struct mw_bench, changes nothing.
 */
#include "bench_int.h"
#include "ref.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * 1024.0 * 1024.0)

const char *const mw_bench_tls_name[] = { "off", "x509", "psk" };

const char *const mw_bench_stage_name[B_STAGES] = {
	"read",	   "compress", "encrypt",    "send",
	"receive", "decrypt",  "decompress", "write",
};

static const char *const stage_short[B_STAGES] = {
	"read", "comp", "encr", "send", "recv", "decr", "decomp", "write",
};

int mw_bench_dbl_cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static double med(double *v, unsigned n)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), mw_bench_dbl_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median over the good repetitions of the double at offset off. */
static double conf_med(const struct mw_bench *b, const struct mw_bench_conf *c,
		       size_t off)
{
	double v[1000];
	unsigned i, n = 0;

	for (i = 0; i < b->reps; i++)
		if (c->run[i].ok)
			v[n++] = *(
				const double *)(const void *)((const char *)&c
								      ->run[i] +
							      off);
	return med(v, n);
}

static double ref_med(const struct mw_bench *b, const struct mw_bench_limit *f,
		      size_t off, bool per_gib, bool rate)
{
	double v[1000], x;
	unsigned i;

	for (i = 0; i < b->reps; i++) {
		x = *(const double *)(const void *)((const char *)&f->run[i] +
						    off);
		v[i] = rate    ? (double)b->n / x / MIB :
		       per_gib ? x * GIB / (double)b->n :
				 x;
	}
	return med(v, b->reps);
}

#define RUN_MED(c, f) conf_med(b, (c), offsetof(struct mw_bench_rep, f))
#define REF_MED(r, f, g, t) \
	ref_med(b, (r), offsetof(struct mw_bench_limit_rep, f), (g), (t))

struct conf_sum {
	double in, wire, ratio, stage[B_STAGES], cpu, p50, p99;
	double x_limit, x_relay, x_comp, x_decomp, x_unavoid;
	unsigned ok;
};

static void conf_summary(const struct mw_bench *b,
			 const struct mw_bench_conf *c, struct conf_sum *s)
{
	double in[1000], wi[1000], ra[1000], cp[1000], gib = (double)b->n / GIB;
	double st[1000];
	unsigned i, k, n = 0;

	for (i = 0; i < b->reps; i++) {
		const struct mw_bench_rep *r = &c->run[i];

		if (!r->ok)
			continue;
		in[n] = (double)b->n / r->wall_s / MIB;
		wi[n] = (double)r->wire / r->wall_s / MIB;
		ra[n] = (double)b->n / (double)r->wire;
		cp[n] = r->cpu_s / gib;
		n++;
	}
	s->ok = n;
	s->in = med(in, n);
	s->wire = med(wi, n);
	s->ratio = med(ra, n);
	s->cpu = med(cp, n);
	for (k = 0; k < B_STAGES; k++) {
		for (i = 0, n = 0; i < b->reps; i++)
			if (c->run[i].ok)
				st[n++] = c->run[i].stage[k] / gib;
		s->stage[k] = med(st, n);
	}
	s->p50 = RUN_MED(c, p50_ms);
	s->p99 = RUN_MED(c, p99_ms);
	s->x_limit = RUN_MED(c, x_limit);
	s->x_relay = RUN_MED(c, x_relay);
	s->x_comp = RUN_MED(c, x_comp);
	s->x_decomp = RUN_MED(c, x_decomp);
	s->x_unavoid = RUN_MED(c, x_unavoid);
}

static const char *size_str(uint64_t v, char *buf, size_t cap)
{
	static const char unit[] = "KMGT";
	int u = -1;

	while (v >= 1024 && v % 1024 == 0 && u < 3) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, cap, "%" PRIu64, v);
	else
		snprintf(buf, cap, "%" PRIu64 "%c", v, unit[u]);
	return buf;
}

void mw_bench_conf_name(const struct mw_bench_conf *c, char *buf, size_t cap)
{
	char k[24];

	if (c->codec == MW_CODEC_NONE)
		snprintf(buf, cap, "none ch%u th%u %s %s", c->chans, c->threads,
			 size_str(c->chunk, k, sizeof(k)),
			 mw_bench_tls_name[c->tls]);
	else
		snprintf(buf, cap, "%s:%d ch%u th%u %s %s",
			 mw_codec_name(c->codec), c->level, c->chans,
			 c->threads, size_str(c->chunk, k, sizeof(k)),
			 mw_bench_tls_name[c->tls]);
}

void mw_bench_limit_name(const struct mw_bench_limit *f, char *buf, size_t cap)
{
	char k[24];

	if (f->relay)
		snprintf(buf, cap, "relay %s",
			 size_str(f->chunk, k, sizeof(k)));
	else
		snprintf(buf, cap, "codec %s:%d th%u %s",
			 mw_codec_name(f->codec), f->level, f->threads,
			 size_str(f->chunk, k, sizeof(k)));
}

/* " %6.2f", or "-" where there is no reference */
static void pnum(double v)
{
	if (isfinite(v))
		printf(" %6.2f", v);
	else
		printf(" %6s", "-");
}

void mw_bench_tables_print(const struct mw_bench *b)
{
	char name[96];
	struct conf_sum s;
	unsigned i, k;

	printf("\nreferences (medians of %u):\n", b->reps);
	for (i = 0; i < b->nref; i++) {
		const struct mw_bench_limit *f = &b->ref[i];

		mw_bench_limit_name(f, name, sizeof(name));
		if (f->relay)
			printf("  %-28s %8.1f MiB/s  %5.2f CPU s/GiB\n", name,
			       REF_MED(f, wall_s, false, true),
			       REF_MED(f, cpu_s, true, false));
		else
			printf("  %-28s %8.1f MiB/s  compress %.2f + decompress "
			       "%.2f CPU s/GiB, ratio %.3f\n",
			       name, REF_MED(f, wall_s, false, true),
			       REF_MED(f, c_cpu, true, false),
			       REF_MED(f, d_cpu, true, false),
			       (double)b->n / (double)f->run[0].wire);
	}
	printf("\n%-28s %8s %6s %8s %6s %6s %6s %7s %7s  %s\n", "configuration",
	       "in MiB/s", "x lim", "wire", "Gbit/s", "x rly", "ratio",
	       "p50 ms", "p99 ms", "verified");
	for (i = 0; i < b->nconf; i++) {
		const struct mw_bench_conf *c = &b->conf[i];

		mw_bench_conf_name(c, name, sizeof(name));
		conf_summary(b, c, &s);
		if (!s.ok) {
			printf("%-28s FAILED: %s\n", name, c->err);
			continue;
		}
		printf("%-28s %8.1f %6.2f %8.1f %6.2f %6.2f %6.3f %7.2f %7.2f  "
		       "%s\n",
		       name, s.in, s.x_limit, s.wire, s.wire * MIB * 8 / 1e9,
		       s.x_relay, s.ratio, s.p50, s.p99,
		       s.ok == b->reps ? "yes" : "FAILED");
	}
	printf("\nCPU seconds per GiB of input (x ref: against the codec "
	       "reference; total: both\nprocesses, x unav: against codec + "
	       "relay CPU)\n%-28s",
	       "configuration");
	for (k = 0; k < B_STAGES; k++)
		printf(" %6s", stage_short[k]);
	printf(" %6s %6s %6s %6s\n", "comp x", "dec x", "total", "x unav");
	for (i = 0; i < b->nconf; i++) {
		const struct mw_bench_conf *c = &b->conf[i];

		conf_summary(b, c, &s);
		if (!s.ok)
			continue;
		mw_bench_conf_name(c, name, sizeof(name));
		printf("%-28s", name);
		for (k = 0; k < B_STAGES; k++)
			printf(" %6.2f", s.stage[k]);
		pnum(s.x_comp);
		pnum(s.x_decomp);
		pnum(s.cpu);
		pnum(s.x_unavoid);
		printf("\n");
	}
}

/* JSON number or null (NaN: no such reference). */
static void jnum(FILE *f, const char *key, double v, bool comma)
{
	if (isfinite(v))
		fprintf(f, "\"%s\":%.4f%s", key, v, comma ? "," : "");
	else
		fprintf(f, "\"%s\":null%s", key, comma ? "," : "");
}

/* "key":"value" with the value escaped as JSON wants. */
static void jstr(FILE *f, const char *key, const char *v)
{
	fprintf(f, "\"%s\":\"", key);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fprintf(f, "\\%c", *v);
		else if ((unsigned char)*v < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*v);
		else
			fputc(*v, f);
	}
	fputc('"', f);
}

static void corpus_desc(const struct mw_bench *b, FILE *f)
{
	if (b->input) {
		fprintf(f, "\"corpus\":{");
		jstr(f, "file", b->input);
		fprintf(f, "}");
	} else
		fprintf(f,
			"\"corpus\":{\"seed\":%" PRIu64 ",\"zero\":%g,"
			"\"text\":%g,\"code\":%g,\"random\":%g,\"run\":%u}",
			b->gen.seed, b->gen.weight[0], b->gen.weight[1],
			b->gen.weight[2], b->gen.weight[3], b->gen.run_pages);
}

int mw_bench_json_write(const struct mw_bench *b)
{
	FILE *f = fopen(b->json, "we");
	char kernel[128];
	const char *sha;
	struct conf_sum s;
	unsigned i, k;

	if (!f)
		return -errno;
	sha = mw_bench_host(kernel, sizeof(kernel));
	fprintf(f,
		"{\"bench\":\"migwire\",\"kind\":\"run\",\"version\":\"%s\","
		"\"sha\":\"%s\",\"kernel\":\"%s\",\"cpus\":%ld,\"size\":%zu,"
		"\"reps\":%u,",
		MW_VERSION, sha, kernel, sysconf(_SC_NPROCESSORS_ONLN), b->n,
		b->reps);
	corpus_desc(b, f);
	fprintf(f, "}\n");
	for (i = 0; i < b->nref; i++) {
		const struct mw_bench_limit *r = &b->ref[i];

		fprintf(f,
			"{\"bench\":\"migwire\",\"kind\":\"ref\","
			"\"ref\":\"%s\",\"chunk\":%u,",
			r->relay ? "relay" : "codec", r->chunk);
		if (!r->relay)
			fprintf(f,
				"\"codec\":\"%s\",\"level\":%d,\"threads\":"
				"%u,\"ratio\":%.4f,",
				mw_codec_name(r->codec), r->level, r->threads,
				(double)b->n / (double)r->run[0].wire);
		jnum(f, "MiBps", REF_MED(r, wall_s, false, true), true);
		jnum(f, "cpu_s_per_gib", REF_MED(r, cpu_s, true, false), true);
		jnum(f, "compress_cpu_s_per_gib",
		     r->relay ? NAN : REF_MED(r, c_cpu, true, false), true);
		jnum(f, "decompress_cpu_s_per_gib",
		     r->relay ? NAN : REF_MED(r, d_cpu, true, false), false);
		fprintf(f, "}\n");
	}
	for (i = 0; i < b->nconf; i++) {
		const struct mw_bench_conf *c = &b->conf[i];

		conf_summary(b, c, &s);
		fprintf(f,
			"{\"bench\":\"migwire\",\"kind\":\"config\","
			"\"codec\":\"%s\",\"level\":%d,\"channels\":%u,"
			"\"threads\":%u,\"chunk\":%u,\"tls\":\"%s\","
			"\"window\":%" PRIu64 ",\"reps_ok\":%u,"
			"\"verified\":%s,",
			mw_codec_name(c->codec), c->level, c->chans, c->threads,
			c->chunk, mw_bench_tls_name[c->tls], b->window, s.ok,
			s.ok == b->reps ? "true" : "false");
		if (c->err[0]) {
			jstr(f, "error", c->err);
			fprintf(f, ",");
		}
		jnum(f, "in_MiBps", s.in, true);
		jnum(f, "in_x_limit", s.x_limit, true);
		jnum(f, "wire_MiBps", s.wire, true);
		jnum(f, "wire_Gbitps", s.wire * MIB * 8 / 1e9, true);
		jnum(f, "wire_x_relay", s.x_relay, true);
		jnum(f, "ratio", s.ratio, true);
		jnum(f, "latency_p50_ms", s.p50, true);
		jnum(f, "latency_p99_ms", s.p99, true);
		fprintf(f, "\"cpu_s_per_gib\":{");
		for (k = 0; k < B_STAGES; k++)
			jnum(f, mw_bench_stage_name[k], s.stage[k], true);
		jnum(f, "total", s.cpu, false);
		fprintf(f, "},");
		jnum(f, "compress_x_ref", s.x_comp, true);
		jnum(f, "decompress_x_ref", s.x_decomp, true);
		jnum(f, "cpu_x_unavoidable", s.x_unavoid, false);
		fprintf(f, "}\n");
	}
	return fclose(f) ? -errno : 0;
}

int mw_bench_csv_write(const struct mw_bench *b)
{
	FILE *f = fopen(b->csv, "we");
	struct conf_sum s;
	unsigned i, k;

	if (!f)
		return -errno;
	fprintf(f, "codec,level,channels,threads,chunk,tls,verified,in_MiBps,"
		   "in_x_limit,wire_MiBps,wire_x_relay,ratio,latency_p50_ms,"
		   "latency_p99_ms");
	for (k = 0; k < B_STAGES; k++)
		fprintf(f, ",cpu_%s", mw_bench_stage_name[k]);
	fprintf(f, ",cpu_total,compress_x_ref,decompress_x_ref,"
		   "cpu_x_unavoidable,limit_MiBps,relay_MiBps\n");
	for (i = 0; i < b->nconf; i++) {
		const struct mw_bench_conf *c = &b->conf[i];

		conf_summary(b, c, &s);
		fprintf(f,
			"%s,%d,%u,%u,%u,%s,%d,%.4f,%.4f,%.4f,%.4f,%.4f,"
			"%.3f,%.3f",
			mw_codec_name(c->codec), c->level, c->chans, c->threads,
			c->chunk, mw_bench_tls_name[c->tls], s.ok == b->reps,
			s.in, s.x_limit, s.wire, s.x_relay, s.ratio, s.p50,
			s.p99);
		for (k = 0; k < B_STAGES; k++)
			fprintf(f, ",%.4f", s.stage[k]);
		fprintf(f, ",%.4f,", s.cpu);
		if (isfinite(s.x_comp))
			fprintf(f, "%.4f,%.4f", s.x_comp, s.x_decomp);
		else
			fprintf(f, ",");
		fprintf(f, ",%.4f,%.4f,%.4f\n", s.x_unavoid,
			REF_MED(&b->ref[c->cref >= 0 ? c->cref : c->rref],
				wall_s, false, true),
			REF_MED(&b->ref[c->rref], wall_s, false, true));
	}
	return fclose(f) ? -errno : 0;
}

/* Series of the plot: configurations equal but for channels and TLS. */
static bool same_series(const struct mw_bench_conf *x,
			const struct mw_bench_conf *y)
{
	return x->codec == y->codec && x->level == y->level &&
	       x->threads == y->threads && x->chunk == y->chunk &&
	       x->tls == y->tls;
}

int mw_bench_plot_write(const struct mw_bench *b)
{
	const struct mw_bench_limit *lims[1024];
	char dat[PATH_MAX], gp[PATH_MAX], k[64];
	struct mw_bench_argv a = { .n = 0 };
	unsigned lo = b->chans[0], hi = b->chans[0];
	bool head[1024] = { false };
	struct conf_sum s;
	unsigned i, j, nser = 0, sid[1024];
	FILE *d, *g;
	int ret;

	if (!mw_bench_in_path("gnuplot")) {
		printf("gnuplot not found (apt-get install gnuplot-nox): no "
		       "plot\n");
		return 0;
	}
	mw_bench_path(b, dat, "plot.dat");
	mw_bench_path(b, gp, "plot.gp");
	d = fopen(dat, "we");
	g = fopen(gp, "we");
	if (!d || !g || b->nconf > 1024) {
		ret = b->nconf > 1024 ? -E2BIG : -errno;
		if (d)
			fclose(d);
		if (g)
			fclose(g);
		return ret;
	}
	for (i = 0; i < b->nconf; i++) {
		for (j = 0; j < i && !same_series(&b->conf[i], &b->conf[j]);
		     j++)
			;
		head[i] = j == i;
		sid[i] = j == i ? nser++ : sid[j];
	}
	fprintf(g,
		"set terminal pngcairo size 800,500 noenhanced font ',10'\n"
		"set output '%s'\nset title 'migwire bench: %zu MiB %s, "
		"median of %u'\nset xlabel 'channels'\nset ylabel 'input MiB/s'"
		"\nset logscale x 2\nset xtics (",
		b->plot, b->n >> 20, b->input ? "file" : "generated", b->reps);
	for (i = 0; i < b->n_chans; i++)
		fprintf(g, "%s%u", i ? "," : "", b->chans[i]);
	for (i = 0; i < b->n_chans; i++) {
		lo = b->chans[i] < lo ? b->chans[i] : lo;
		hi = b->chans[i] > hi ? b->chans[i] : hi;
	}
	fprintf(g,
		")\nset xrange [%g:%g]\nset yrange [0:*]\nset grid\n"
		"set key below horizontal\nplot ",
		lo * 0.8, hi * 1.25);
	for (j = 0; j < nser; j++) {
		const struct mw_bench_conf *c = NULL;
		const struct mw_bench_limit *lim;

		for (i = 0; i < b->nconf && (!head[i] || sid[i] != j); i++)
			;
		c = &b->conf[i];
		lim = &b->ref[c->cref >= 0 ? c->cref : c->rref];
		/* one data block per series, blocks split by two blank lines */
		for (i = 0; i < b->nconf; i++) {
			if (sid[i] != j)
				continue;
			conf_summary(b, &b->conf[i], &s);
			if (s.ok)
				fprintf(d, "%u %.4f\n", b->conf[i].chans, s.in);
		}
		fprintf(d, "\n\n");
		if (c->codec == MW_CODEC_NONE)
			snprintf(k, sizeof(k), "none");
		else
			snprintf(k, sizeof(k), "%s:%d", mw_codec_name(c->codec),
				 c->level);
		fprintf(g,
			"%s'%s' index %u with linespoints lw 2 pt 7 lc %u "
			"title '%s",
			j ? ", " : "", dat, j, j + 1, k);
		if (b->n_threads > 1)
			fprintf(g, " th%u", c->threads);
		if (b->n_chunk > 1)
			fprintf(g, " %s", size_str(c->chunk, k, sizeof(k)));
		if (b->n_tls > 1)
			fprintf(g, " %s", mw_bench_tls_name[c->tls]);
		fprintf(g, "'");
		for (i = 0; i < j && lims[i] != lim; i++)
			;
		lims[j] = lim;
		if (i < j)
			continue; /* its limit is drawn already */
		mw_bench_limit_name(lim, k, sizeof(k));
		fprintf(g, ", %.4f with lines dt 2 lw 1.5 lc %u title '%s'",
			REF_MED(lim, wall_s, false, true), j + 1, k);
	}
	fprintf(g, "\n");
	fclose(d);
	if (fclose(g))
		return -errno;
	mw_bench_argv_add(&a, "gnuplot");
	mw_bench_argv_add(&a, "%s", gp);
	ret = mw_bench_tool_run(a.v);
	if (ret)
		fprintf(stderr,
			"migwire bench: gnuplot failed (%d); script "
			"%s\n",
			ret, gp);
	else
		printf("plot: %s\n", b->plot);
	return ret ? -EIO : 0;
}
