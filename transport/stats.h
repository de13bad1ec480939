/* SPDX-License-Identifier: MIT */
/* Private to transport/: the JSON stats writer shared by send and recv. */
#ifndef XP_STATS_H
#define XP_STATS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define MW_STATS_STAGES 4

struct mw_stats_chan {
	uint64_t bytes;	     /* wire bytes on this channel so far */
	double cpu;	     /* CPU seconds of its thread */
	bool up;	     /* connected now */
	unsigned reconnects; /* resumes of this channel */
	unsigned path;	     /* send: index of its --to path */
};

#define MW_STATS_PATHS_MAX 8

struct mw_stats_stream {
	unsigned kind; /* enum mw_stream_kind */
	uint64_t fwd;  /* raw bytes source -> destination */
	uint64_t rev;  /* raw bytes destination -> source */
};

struct mw_pages_stats;

struct mw_stats_snap {
	const char *side;
	const char *io; /* the channels' I/O engine: "uring" or "poll" */
	double elapsed;
	uint64_t bytes_raw;  /* send: bytes from QEMU; recv: bytes to QEMU */
	uint64_t bytes_wire; /* frame bytes (headers + payloads) */
	uint64_t chunks;
	bool adaptive;		  /* send --adaptive: report chunks_adaptive */
	uint64_t chunks_adaptive; /* chunks sent raw because the codec lagged */
	unsigned nchans;
	const struct mw_stats_chan *chans;
	unsigned nstreams;
	const struct mw_stats_stream *streams;
	const char *stage_name[MW_STATS_STAGES];
	double stage_cpu[MW_STATS_STAGES];
	unsigned chans_up;     /* channels connected now */
	const char *wire_note; /* "" or " incl. TLS" / " excl. TLS": what
				* bytes_wire counts on this side */
	double first;	       /* elapsed at the first chunk; < 0: none yet */
	bool final;
	const char *result; /* final: "ok" or the error text */
	/* the whole process, every thread: what --cpu-budget bounds */
	double cpu_process; /* CPU seconds since the process started */
	double cpu_budget;  /* --cpu-budget in cores; 0: none */
	double paced_s;	    /* seconds intake waited for the budget */
	/* resume (DESIGN.md 7). send: reconnects (resumes admitted),
	 * resent chunks and their wire bytes; recv: channels lost, resumes
	 * admitted, duplicate chunks dropped and their bytes; both: seconds
	 * with no channel up */
	unsigned reconnects, lost;
	uint64_t resent_chunks, resent_bytes;
	uint64_t dup_chunks, dup_bytes;
	double paused_s;
	/* send: the --to paths (0: not reported); chans[i].path indexes:
	 * the wire bytes every connection on the path carried, and the
	 * resumes that landed on it */
	unsigned npaths;
	const char *path_addr[MW_STATS_PATHS_MAX];
	uint64_t path_bytes[MW_STATS_PATHS_MAX];
	unsigned path_reconnects[MW_STATS_PATHS_MAX];
	/* send --pages, final line only (the reader has stopped): what the
	 * page stage did; NULL: --pages off */
	const struct mw_pages_stats *pages;
};

struct mw_stats {
	FILE *f;
	double last_elapsed;
	uint64_t last_raw, last_wire;
	double last_cpu; /* cpu_process of the last line */
	uint64_t *last_chan;
	unsigned nchans;
};

int mw_stats_open(struct mw_stats *st, const char *path, unsigned nchans);
void mw_stats_write(struct mw_stats *st, const struct mw_stats_snap *s);
/* The -v summary line. */
void mw_stats_summary(const struct mw_stats_snap *s);
/*
 * --progress: one line about bytes moved, input and wire rates, ratio and
 * channels. tty: rewritten in place (\r), else one line each call. done:
 * the session ended: a terminal's line is kept with a newline.
 */
void mw_stats_progress(const struct mw_stats_snap *s, bool tty, bool done);
/* A snapshot with its constant parts set and every figure 0: side "send"
 * or "recv", the I/O engine's name, elapsed since t0, the stage names. */
void mw_stats_snap_init(struct mw_stats_snap *sn, const char *side,
			const char *io, double t0, struct mw_stats_chan *chs,
			struct mw_stats_stream *sts,
			const char *const stages[MW_STATS_STAGES]);
struct mw_xp_cfg;
/* A second of the session: the stats line, and the progress line every
 * --progress seconds (*ticks counts the calls). */
void mw_stats_tick(struct mw_stats *st, const struct mw_stats_snap *sn,
		   const struct mw_xp_cfg *cfg, unsigned *ticks);
/* The session's end: the final stats line, the last progress line and, at
 * -v, the summary; result is "ok" or the error text. */
void mw_stats_final(struct mw_stats *st, struct mw_stats_snap *sn,
		    const struct mw_xp_cfg *cfg, const char *result);
/* seconds of mw_now_ns() since t0, or -1 for 0 ("not yet") */
double mw_stats_since(unsigned long long ns, double t0);
void mw_stats_close(struct mw_stats *st);
/* CPU seconds used so far by another thread of this process. */
double mw_stats_thread_cpu(pthread_t th);

#endif
