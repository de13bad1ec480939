/* SPDX-License-Identifier: MIT */
/*
 * Private to control/ and its tests: the QMP client (qmp.c), the options
 * of `migwire migrate` (migrate_opts.c) and the steps of the driver
 * (preflight.c, migrate.c).
 */
#ifndef CONTROL_INT_H
#define CONTROL_INT_H

#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "mw_err.h"

/*
 * One QMP connection (QEMU Machine Protocol: JSON lines over a unix
 * socket). One command in flight at a time; replies are matched by id and
 * events in between are counted and dropped (the driver polls
 * query-migrate instead, which says the same and survives a missed event).
 * Locking: none; owned by the main thread.
 */
struct mw_qmp {
	int fd;
	pid_t peer_pid;		 /* QEMU's pid, from SO_PEERCRED; 0 unknown */
	uid_t peer_uid;		 /* and its user; (uid_t)-1 unknown */
	uint64_t next_id;	 /* id of the next command */
	uint64_t events;	 /* events read and dropped */
	int timeout_ms;		 /* how long a reply may take */
	int major, minor, micro; /* QEMU's version, from the greeting */
	size_t len;		 /* bytes in buf */
	char buf[1 << 16]; /* one reply line; QMP replies here are small */
};

/*
 * Connects to the QMP unix socket at path, reads the greeting and leaves
 * capability negotiation with qmp_capabilities. Returns 0 or -errno /
 * -MW_E_PROTO with the text in *err.
 */
int mw_qmp_connect(struct mw_qmp *q, const char *path, struct mw_err *err);
/* The same over an already connected fd (tests: a socketpair); takes fd. */
int mw_qmp_open_fd(struct mw_qmp *q, int fd, struct mw_err *err);
void mw_qmp_close(struct mw_qmp *q);
/*
 * Runs cmd with args (taken, may be NULL). On success *ret (when not NULL)
 * gets the "return" member, a reference the caller puts. QEMU's error
 * reply is -MW_E_PEER with "cmd: desc" in *err; a broken connection or a
 * reply slower than timeout_ms is -errno / -MW_E_PROTO / -MW_E_TIMEOUT.
 */
int mw_qmp_exec(struct mw_qmp *q, const char *cmd, struct json_object *args,
		struct json_object **ret, struct mw_err *err);

/* JSON members with defaults: NULL obj or a missing key give dflt. */
int64_t mw_json_int(struct json_object *obj, const char *key, int64_t dflt);
double mw_json_double(struct json_object *obj, const char *key, double dflt);
const char *mw_json_str(struct json_object *obj, const char *key,
			const char *dflt);
struct json_object *mw_json_obj(struct json_object *obj, const char *key);

#define MW_MIGRATE_SEND_MAX 32

/* What --timeout does (virsh migrate --timeout-*). */
enum mw_timeout_action {
	MW_TA_DEFAULT = 0, /* postcopy with --postcopy, else pause */
	MW_TA_PAUSE,	   /* stop the VM: the rest is sent while it waits */
	MW_TA_POSTCOPY,	   /* migrate-start-postcopy */
	MW_TA_CANCEL,	   /* migrate_cancel: the VM stays on the source */
};

/* The options of `migwire migrate`. Locking: none; main thread. */
struct migrate_opts {
	const char *qmp;	 /* --qmp SOCKET */
	const char *to;		 /* --to HOST:PORT */
	int64_t max_downtime_ms; /* --max-downtime; -1: QEMU's own */
	uint64_t max_bw;	 /* --max-bandwidth, bytes/s; 0 none */
	bool auto_converge;
	bool postcopy;
	int64_t postcopy_after; /* seconds; -1 never */
	int64_t timeout;	/* seconds; 0 none */
	int timeout_action;	/* enum mw_timeout_action */
	bool json;		/* --json: the result on stdout */
	uint32_t dirty_secs;	/* --dirty-rate-check; 0 skip */
	/* socket mode: send --listen unix:PATH, where QEMU migrates to;
	 * NULL: exec: mode */
	const char *listen;
	uint32_t qemu_multifd; /* --qemu-multifd N: channels; 0 off */
	/* `migwire send` options passed through, in the order given */
	int nsend;
	struct {
		const char *name; /* without "--" */
		const char *arg;  /* NULL: a flag */
	} send[MW_MIGRATE_SEND_MAX];
};

/*
 * Parses argv (argv[0] == "migrate"). Returns -1 to go on, else the exit
 * status to return at once (0 after --help, 2 after a usage error, which
 * it printed).
 */
int mw_migrate_parse(struct migrate_opts *o, int argc, char **argv);
void mw_migrate_usage(FILE *f);

/* What preflight learnt about the source. Locking: none; main thread. */
struct migrate_src {
	bool has_switchover_bw; /* avail-switchover-bandwidth (QEMU >= 8.2) */
	double dirty_mib_s;	/* -1: not measured */
};

/*
 * Checks, before anything changes, that the QEMU behind q can run the
 * migration o asks for (preflight.c), and measures its dirty rate. Prints
 * one line per failure saying what to fix. Returns 0 or the exit status.
 */
int mw_migrate_preflight(struct mw_qmp *q, const struct migrate_opts *o,
			 const char *self, struct migrate_src *src);

/*
 * The `migwire send` command line QEMU runs: self (this binary) send --to
 * ... with the passed-through options, and --qemu-pid qemu_pid when not
 * 0. Room is left for one more argument and the NULL. Returns 0 or
 * -E2BIG.
 * Locking: none; main thread.
 */
struct mw_send_argv {
	int argc;
	char *argv[2 * MW_MIGRATE_SEND_MAX + 10];
	size_t used;	  /* bytes of store taken */
	char store[8192]; /* the arguments argv points to */
};
int mw_migrate_send_argv(struct mw_send_argv *sa, const struct migrate_opts *o,
			 const char *self, pid_t qemu_pid);
/*
 * "exec:" and sa's words for QEMU's /bin/sh -c, each single-quoted (a
 * quote inside becomes '\''). Returns 0 or -E2BIG.
 */
int mw_migrate_exec_uri(char *out, size_t cap, const struct mw_send_argv *sa);
/*
 * After migrate_cancel of an exec: migration: QEMU waits (its main loop
 * too) for the exec: command to exit, and a send whose stream was cut
 * short still waits for the receiver. SIGTERMs the processes of binary
 * self among qemu_pid's children and grandchildren (/bin/sh -c); returns
 * how many.
 */
int mw_send_stop_exec(pid_t qemu_pid, const char *self);
/* One more argument, copied; 0 or -E2BIG. */
int mw_send_argv_add(struct mw_send_argv *sa, const char *a);
/* The last cap - 1 bytes of the file at path, NUL-terminated: the bytes
 * read, or -1. */
ssize_t mw_file_tail(const char *path, char *buf, size_t cap);
/* The last non-empty line of text (cut in place), without send's
 * "migwire send: " prefix. */
const char *mw_send_last_line(char *text);

/*
 * The stats file of the send QEMU runs (send_stats.c). Locking: none;
 * main thread.
 */
struct mw_send_stats {
	char path[4096]; /* "": none */
	char dir[4000];	 /* our private directory, removed at the end */
};
/*
 * Uses the --stats-file passed through, or, when QEMU runs as our user,
 * adds one in a private directory to o's send options. Returns 0 (no
 * file is no error: the progress line then has no wire figures).
 */
int mw_send_stats_setup(struct mw_send_stats *ss, struct migrate_opts *o,
			const struct mw_qmp *q);
void mw_send_stats_cleanup(struct mw_send_stats *ss);
/* The last complete line of the stats file, parsed (the caller puts it),
 * or NULL. */
struct json_object *mw_send_stats_last(const struct mw_send_stats *ss);

/* What migrate did, for the --json report. Locking: none; main thread. */
struct mw_migrate_outcome {
	double wall_s;	    /* from migrate to the end */
	bool postcopy;	    /* we switched to postcopy */
	bool paused;	    /* --timeout paused the VM ... */
	double paused_s;    /* ... for this long */
	bool cancelled;	    /* we cancelled (Ctrl-C, --timeout-action) */
	double dirty_mib_s; /* the preflight's dirty rate; -1 none */
	/* socket mode: QEMU completed but our send did not (its line) */
	const char *send_error;
	uint64_t switchover_bps; /* last measured switchover bandwidth; 0 */
};
/*
 * Prints the result as one JSON line: m is QEMU's last query-migrate,
 * send send's last stats line (NULL: none). Borrows both (report.c).
 */
void mw_migrate_report_json(FILE *f, struct json_object *m,
			    struct json_object *send,
			    const struct mw_migrate_outcome *out);

/*
 * Socket mode (sockmode.c): the `migwire send --listen` that migrate runs
 * itself, since QEMU connects to a socket instead of starting it.
 * Locking: none; main thread.
 */
struct mw_send_bg {
	pid_t pid;	  /* 0: not running */
	int status;	  /* its wait status, once reaped */
	char dir[4000];	  /* private directory for its log */
	char log[4096];	  /* its stderr */
	char reason[512]; /* its last line, once it failed */
};
/*
 * Starts send (sa) with its stderr in a private log and waits until it
 * listens on o->listen. Returns 0, or 1 having said why.
 */
int mw_send_bg_start(struct mw_send_bg *bg, const struct migrate_opts *o,
		     const struct mw_send_argv *sa);
/*
 * Waits up to secs for send to exit (0: do not wait); with stop, ends it
 * first (SIGTERM). Returns its exit status, or -1 while it still runs.
 * Fills bg->reason from its log when it failed.
 */
int mw_send_bg_wait(struct mw_send_bg *bg, int secs, bool stop);
/* Removes the log and its directory. */
void mw_send_bg_cleanup(struct mw_send_bg *bg);

/*
 * avail-switchover-bandwidth from send's measured input rate
 * (switchover.c). Locking: none; main thread.
 */
#define MW_SWITCHOVER_SAMPLES 8
struct mw_switchover {
	bool on;	  /* QEMU has the parameter, and took our last one */
	bool measured;	  /* set_bps is from a measurement */
	uint64_t set_bps; /* the value QEMU has from us, bytes/s; 0 none */
	int n;		  /* samples held, oldest first */
	double t[MW_SWITCHOVER_SAMPLES]; /* send's elapsed_s */
	double b[MW_SWITCHOVER_SAMPLES]; /* its bytes_in then */
	double rate_bps; /* the last input rate measured; 0 none yet */
	double span_s;	 /* ... over this many seconds */
};
/* initial: what set_params gave QEMU (--max-bandwidth), or 0. */
void mw_switchover_init(struct mw_switchover *sw, bool on, uint64_t initial);
/*
 * Takes one of send's stats lines (borrowed; NULL, a repeated or the
 * final line add nothing) and returns the input rate, bytes/s, over the
 * last few seconds when it differs by more than a tenth from set_bps;
 * else 0.
 */
uint64_t mw_switchover_feed(struct mw_switchover *sw, struct json_object *line);
/* The same, and sets a returned rate in QEMU (migrate-set-parameters).
 * Without the parameter (QEMU < 8.2) it still measures rate_bps. */
void mw_switchover_tick(struct mw_switchover *sw, struct mw_qmp *q,
			struct json_object *line);

/*
 * Whether precopy converges with the dirty rate d (MiB/s) at the rate
 * migwire carries, bw MiB/s of guest memory, measured (what) or given by
 * --max-bandwidth: one line, with what to do when it will not
 * (preflight.c).
 */
void mw_migrate_predict(const struct migrate_opts *o, double d, double bw,
			const char *what);

/* Set from the SIGINT/SIGTERM handler; read by the loops. */
extern volatile sig_atomic_t mw_migrate_interrupted;

/* Sleeps ms unless a signal arrives first. */
void mw_migrate_nap(int ms);

#endif
