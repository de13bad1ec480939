/* SPDX-License-Identifier: MIT */
/*
 * Stats: one JSON line per second and a final one to --stats-file, and the
 * -v summary. Counters are relaxed per-thread values summed by the main
 * thread; this file only formats them. Context: main thread.
 */
#include "stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mw_log.h"
#include "mw_pages.h"
#include "mw_thread.h"
#include "mw_wire.h"
#include "mw_xport.h"
#include "cpu_pace.h"

int mw_stats_open(struct mw_stats *st, const char *path, unsigned nchans)
{
	memset(st, 0, sizeof(*st));
	st->nchans = nchans;
	st->last_chan = calloc(nchans ? nchans : 1, sizeof(*st->last_chan));
	if (!st->last_chan)
		return -ENOMEM;
	if (!path)
		return 0;
	st->f = fopen(path, "ae");
	if (!st->f) {
		int ret = -errno;

		/* callers skip mw_stats_close when opening failed */
		free(st->last_chan);
		st->last_chan = NULL;
		return ret;
	}
	setvbuf(st->f, NULL, _IOLBF, 0);
	return 0;
}

/*
 * Rates are printed as MiB/s (bytes, binary: the unit of --max-bandwidth,
 * --window and virsh's --bandwidth) with Gbit/s (bits, decimal: the unit
 * of links, tc and iperf3) beside the wire rate.
 */
#define MIB 1048576.0

static double rate(uint64_t now, uint64_t before, double dt)
{
	return dt > 0 ? (double)(now - before) / dt / MIB : 0.0;
}

static double gbit(double mib_per_s)
{
	return mib_per_s * MIB * 8 / 1e9;
}

/*
 * What the process used against --cpu-budget: CPU seconds so far, and the
 * cores that makes over the line's interval (the final line: over the
 * whole run, as the budget is meant).
 */
static void write_cpu(struct mw_stats *st, const struct mw_stats_snap *s,
		      double dt)
{
	double cores =
		s->final ? (s->elapsed > 0 ? s->cpu_process / s->elapsed : 0) :
			   (dt > 0 ? (s->cpu_process - st->last_cpu) / dt : 0);

	fprintf(st->f, ",\"cpu_process_s\":%.3f,\"cores\":%.3f", s->cpu_process,
		cores);
	if (s->cpu_budget > 0)
		fprintf(st->f, ",\"cpu_budget\":%.3f,\"paced_s\":%.3f",
			s->cpu_budget, s->paced_s);
	st->last_cpu = s->cpu_process;
}

/* Resume figures (DESIGN.md 7): the sender's resends, the receiver's
 * duplicates dropped, both sides' time with no channel up. */
static void write_resume(struct mw_stats *st, const struct mw_stats_snap *s)
{
	if (!strcmp(s->side, "send"))
		fprintf(st->f,
			"\"reconnects\":%u,\"resent_chunks\":%llu,"
			"\"resent_bytes\":%llu,",
			s->reconnects, (unsigned long long)s->resent_chunks,
			(unsigned long long)s->resent_bytes);
	else
		fprintf(st->f,
			"\"lost\":%u,\"resumes\":%u,"
			"\"dup_dropped_chunks\":%llu,"
			"\"dup_dropped_bytes\":%llu,",
			s->lost, s->reconnects,
			(unsigned long long)s->dup_chunks,
			(unsigned long long)s->dup_bytes);
	fprintf(st->f, "\"paused_s\":%.3f,", s->paused_s);
}

/* send: per --to path, the channels up on it now, the wire bytes of
 * every connection it carried and the resumes that landed on it. */
static void write_paths(struct mw_stats *st, const struct mw_stats_snap *s)
{
	unsigned p, i;

	if (!s->npaths)
		return;
	fprintf(st->f, "\"paths\":[");
	for (p = 0; p < s->npaths && p < MW_STATS_PATHS_MAX; p++) {
		unsigned up = 0;

		for (i = 0; i < s->nchans; i++)
			up += s->chans[i].path == p && s->chans[i].up;
		fprintf(st->f,
			"%s{\"id\":%u,\"addr\":\"%s\",\"channels_up\":%u,"
			"\"bytes\":%llu,\"reconnects\":%u}",
			p ? "," : "", p, s->path_addr[p] ? s->path_addr[p] : "",
			up, (unsigned long long)s->path_bytes[p],
			s->path_reconnects[p]);
	}
	fprintf(st->f, "],");
}

/* send --pages: the page stage's counters; in_bytes - out_bytes is what
 * it took off the stream before the codec. */
static void write_pages(FILE *f, const struct mw_pages_stats *p)
{
	fprintf(f,
		",\"pages\":{\"full\":%llu,\"ref\":%llu,\"delta\":%llu,"
		"\"literal\":%llu,\"straddle\":%llu,\"chunks\":%llu,"
		"\"in_bytes\":%llu,\"out_bytes\":%llu,\"saved_bytes\":%lld}",
		(unsigned long long)p->pages, (unsigned long long)p->refs,
		(unsigned long long)p->deltas, (unsigned long long)p->literal,
		(unsigned long long)p->straddle, (unsigned long long)p->chunks,
		(unsigned long long)p->in_bytes,
		(unsigned long long)p->out_bytes,
		(long long)p->in_bytes - (long long)p->out_bytes);
}

void mw_stats_write(struct mw_stats *st, const struct mw_stats_snap *s)
{
	double dt = s->elapsed - st->last_elapsed;
	unsigned i;

	if (!st->f)
		return;
	if (s->final) {
		/* the final line reports averages over the session, from
		 * its first chunk */
		dt = s->first >= 0 ? s->elapsed - s->first : s->elapsed;
		st->last_raw = st->last_wire = 0;
		memset(st->last_chan, 0, st->nchans * sizeof(*st->last_chan));
	}
	fprintf(st->f,
		"{\"time\":%lld,\"side\":\"%s\",\"io\":\"%s\",\"final\":%s,"
		"\"elapsed_s\":%.3f,\"first_chunk_s\":%.3f,"
		"\"bytes_in\":%llu,\"bytes_wire\":%llu,\"ratio\":%.4f,"
		"\"chunks\":%llu,\"rate_in_MiBps\":%.1f,\"rate_wire_MiBps\":%.1f,"
		"\"rate_wire_Gbitps\":%.3f,",
		(long long)time(NULL), s->side, s->io ? s->io : "",
		s->final ? "true" : "false", s->elapsed, s->first,
		(unsigned long long)s->bytes_raw,
		(unsigned long long)s->bytes_wire,
		s->bytes_wire ? (double)s->bytes_raw / (double)s->bytes_wire :
				0.0,
		(unsigned long long)s->chunks,
		rate(s->bytes_raw, st->last_raw, dt),
		rate(s->bytes_wire, st->last_wire, dt),
		gbit(rate(s->bytes_wire, st->last_wire, dt)));
	if (s->adaptive)
		fprintf(st->f, "\"chunks_adaptive\":%llu,",
			(unsigned long long)s->chunks_adaptive);
	write_resume(st, s);
	fprintf(st->f, "\"channels\":[");
	for (i = 0; i < s->nchans && i < st->nchans; i++) {
		fprintf(st->f,
			"%s{\"id\":%u,\"bytes\":%llu,\"MiBps\":%.1f,"
			"\"cpu_s\":%.3f,\"up\":%s,\"reconnects\":%u",
			i ? "," : "", i, (unsigned long long)s->chans[i].bytes,
			rate(s->chans[i].bytes, st->last_chan[i], dt),
			s->chans[i].cpu, s->chans[i].up ? "true" : "false",
			s->chans[i].reconnects);
		if (s->npaths)
			fprintf(st->f, ",\"path\":%u", s->chans[i].path);
		fprintf(st->f, "}");
		st->last_chan[i] = s->chans[i].bytes;
	}
	fprintf(st->f, "],");
	write_paths(st, s);
	fprintf(st->f, "\"channels_up\":%u", s->chans_up);
	fprintf(st->f, ",\"streams\":[");
	for (i = 0; i < s->nstreams; i++)
		fprintf(st->f,
			"%s{\"id\":%u,\"kind\":\"%s\",\"fwd\":%llu,"
			"\"rev\":%llu}",
			i ? "," : "", i,
			mw_stream_kind_name(s->streams[i].kind),
			(unsigned long long)s->streams[i].fwd,
			(unsigned long long)s->streams[i].rev);
	fprintf(st->f, "],\"cpu_s\":{");
	for (i = 0; i < MW_STATS_STAGES && s->stage_name[i]; i++)
		fprintf(st->f, "%s\"%s\":%.3f", i ? "," : "", s->stage_name[i],
			s->stage_cpu[i]);
	fprintf(st->f, "}");
	write_cpu(st, s, dt);
	if (s->final && s->pages)
		write_pages(st->f, s->pages);
	if (s->final) {
		fprintf(st->f, ",\"result\":\"");
		for (const char *p = s->result ? s->result : ""; *p; p++)
			fprintf(st->f,
				(*p == '"' || *p == '\\') ?
					"\\%c" :
					((unsigned char)*p < 0x20 ? "?" : "%c"),
				*p);
		fprintf(st->f, "\"");
	}
	fprintf(st->f, "}\n");
	st->last_elapsed = s->elapsed;
	st->last_raw = s->bytes_raw;
	st->last_wire = s->bytes_wire;
}

void mw_stats_summary(const struct mw_stats_snap *s)
{
	double busy = s->first >= 0 ? s->elapsed - s->first : s->elapsed;
	double cpu = 0, in = rate(s->bytes_raw, 0, busy);
	char ratio[32] = "no chunks";
	unsigned i;

	char budget[96] = "", resume[160] = "";

	for (i = 0; i < MW_STATS_STAGES; i++)
		cpu += s->stage_cpu[i];
	if (s->cpu_budget > 0)
		snprintf(budget, sizeof(budget),
			 " (process %.2f CPU s, %.2f cores of a %.2g budget, "
			 "paced %.1f s)",
			 s->cpu_process,
			 s->elapsed > 0 ? s->cpu_process / s->elapsed : 0,
			 s->cpu_budget, s->paced_s);
	if (s->reconnects || s->lost)
		snprintf(resume, sizeof(resume),
			 !strcmp(s->side, "send") ?
				 ", %u reconnects, %llu chunks (%.1f MiB) "
				 "resent, paused %.1f s" :
				 ", %u resumes, %llu duplicate chunks "
				 "(%.1f MiB) dropped, paused %.1f s",
			 s->reconnects,
			 (unsigned long long)s->resent_chunks +
				 (unsigned long long)s->dup_chunks,
			 (double)(s->resent_bytes + s->dup_bytes) / MIB,
			 s->paused_s);
	/* a session that carried no chunk has only frame overhead on the
	 * wire: a ratio of that means nothing */
	if (s->chunks && s->bytes_wire)
		snprintf(ratio, sizeof(ratio), "ratio %.2f",
			 (double)s->bytes_raw / (double)s->bytes_wire);
	mw_log_emit(MW_LOG_INFO,
		    "%s %llu bytes in %.2f s (%.1f MiB/s, %.2f Gbit/s), %llu "
		    "on the wire%s (%s), %llu chunks, %u channels (io %s), "
		    "%.2f CPU s%s%s: %s",
		    strcmp(s->side, "send") ? "wrote" : "read",
		    (unsigned long long)s->bytes_raw, busy, in, gbit(in),
		    (unsigned long long)s->bytes_wire,
		    s->wire_note ? s->wire_note : "", ratio,
		    (unsigned long long)s->chunks, s->nchans,
		    s->io ? s->io : "?", cpu, budget, resume,
		    s->result ? s->result : "ok");
}

double mw_stats_since(unsigned long long ns, double t0)
{
	return ns ? (double)ns / 1e9 - t0 : -1.0;
}

/* "1.23 GiB", "512.0 MiB", "4.0 KiB" */
static void iec(char *buf, size_t cap, uint64_t n)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", v, unit[u]);
}

void mw_stats_progress(const struct mw_stats_snap *s, bool tty, bool done)
{
	/* rates over the time since the first chunk: a receiver that waited
	 * for its sender has not been slow */
	double busy = s->first >= 0 ? s->elapsed - s->first : 0;
	double in = rate(s->bytes_raw, 0, busy);
	double wire = rate(s->bytes_wire, 0, busy);
	unsigned secs = (unsigned)s->elapsed;
	char moved[32], ratio[24] = "-";

	iec(moved, sizeof(moved), s->bytes_raw);
	if (s->chunks && s->bytes_wire)
		snprintf(ratio, sizeof(ratio), "%.2f",
			 (double)s->bytes_raw / (double)s->bytes_wire);
	mw_log_progress(tty, done,
			"%s %s, in %.1f MiB/s, wire %.1f MiB/s (%.2f Gbit/s), "
			"ratio %s, %u/%u channels, %u:%02u",
			strcmp(s->side, "send") ? "wrote" : "read", moved, in,
			wire, gbit(wire), ratio, s->chans_up, s->nchans,
			secs / 60, secs % 60);
}

void mw_stats_close(struct mw_stats *st)
{
	if (st->f)
		fclose(st->f);
	free(st->last_chan);
	st->f = NULL;
	st->last_chan = NULL;
}

double mw_stats_thread_cpu(pthread_t th)
{
	clockid_t cid;
	struct timespec ts;

	if (pthread_getcpuclockid(th, &cid) || clock_gettime(cid, &ts))
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void mw_stats_final(struct mw_stats *st, struct mw_stats_snap *sn,
		    const struct mw_xp_cfg *cfg, const char *result)
{
	sn->final = true;
	sn->result = result;
	sn->cpu_budget = cfg->cpu_budget;
	mw_stats_write(st, sn);
	if (cfg->progress_s)
		mw_stats_progress(sn, cfg->progress_tty, true);
	if (cfg->verbose)
		mw_stats_summary(sn);
}

void mw_stats_tick(struct mw_stats *st, const struct mw_stats_snap *sn,
		   const struct mw_xp_cfg *cfg, unsigned *ticks)
{
	struct mw_stats_snap s = *sn;

	s.cpu_budget = cfg->cpu_budget;
	mw_stats_write(st, &s);
	if (cfg->progress_s && ++*ticks % cfg->progress_s == 0)
		mw_stats_progress(sn, cfg->progress_tty, false);
}

void mw_stats_snap_init(struct mw_stats_snap *sn, const char *side,
			const char *io, double t0, struct mw_stats_chan *chs,
			struct mw_stats_stream *sts,
			const char *const stages[MW_STATS_STAGES])
{
	unsigned i;

	memset(sn, 0, sizeof(*sn));
	sn->side = side;
	sn->io = io;
	sn->elapsed = (double)mw_now_ns() / 1e9 - t0;
	sn->cpu_process = mw_process_cpu_seconds();
	sn->chans = chs;
	sn->streams = sts;
	for (i = 0; i < MW_STATS_STAGES; i++)
		sn->stage_name[i] = stages[i];
}
