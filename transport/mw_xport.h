/* SPDX-License-Identifier: MIT */
/*
 * The transport: sessions of N channels between `migwire send` and
 * `migwire recv` (docs/protocol.md). The only module that touches sockets
 * and io_uring. tools/ fills a struct mw_xp_cfg and calls one run function.
 */
#ifndef MW_XPORT_H
#define MW_XPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "mw_comp.h"
#include "mw_err.h"
#include "mw_parse.h"
#include "mw_tls.h"
#include "mw_wire.h"

/* A local (QEMU-side) endpoint: send --listen, recv --connect. */
struct mw_endpoint {
	enum { MW_EP_UNIX, MW_EP_TCP } type;
	char addr[256]; /* socket path, or host */
	uint16_t port;
};

#define MW_ENDPOINTS_MAX 8
#define MW_PATHS_MAX 8 /* send --to addresses */

/* recv --allow-from: an IPv4 or IPv6 network. An IPv4 network also
 * matches IPv4-mapped IPv6 peers (::ffff:a.b.c.d) of a dual-stack
 * listener. */
struct mw_cidr {
	int af; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned bits;
};

#define MW_ALLOW_MAX 32

/* --io: how the channels wait for their sockets (transport/ring.h) */
enum mw_io {
	MW_IO_AUTO = 0, /* io_uring; poll(2) where the kernel refuses it */
	MW_IO_URING,
	MW_IO_POLL,
};

struct mw_xp_cfg {
	/* both sides */
	enum mw_codec codec; /* send: codec to use */
	int level;	     /* send: codec level */
	bool adaptive;	     /* send: raw when the codec is behind */
	uint32_t nr_chans;   /* send: channels to open */
	uint32_t chunk_size; /* send: bytes per chunk */
	uint64_t window;     /* bytes of chunk buffers on this side */
	uint32_t threads;    /* compress (send) / decompress (recv) workers */
	bool pages;	     /* --pages auto: send what changed (mw_pages.h) */
	uint64_t page_cache; /* --page-cache: bytes of page cache */
	struct mw_tls_cfg tls; /* mode MW_TLS_OFF only with --no-tls */
	struct mw_cpus cpus;   /* placement; n == 0: not pinned */
	uint64_t max_bw;       /* send: wire bytes per second; 0 = no cap */
	double cpu_budget;     /* cores this side may use; 0 = no budget */
	uint32_t timeout_s;    /* handshake, channel join and stall bound */
	uint32_t reconnect_s;  /* --reconnect-timeout: seconds a channel lost
				* after the session started may take to come
				* back (resume, DESIGN.md invariant 7);
				* 0: a lost channel fails the session */
	uint32_t wait_s;     /* recv: wait for the first channel; 0 = forever */
	uint32_t progress_s; /* --progress: seconds between lines; 0: none */
	bool progress_tty;   /* rewrite one line in place (stderr is a tty) */
	const char *stats_file;	  /* JSON lines, or NULL */
	const char *latency_file; /* "stream seq ns" per chunk read (send) or
				    * written (recv), CLOCK_MONOTONIC; or NULL */
	int verbose;		  /* -v: summary line at the end */
	enum mw_io io;		  /* the channels' I/O engine */
	int in_fd;		  /* send: stream source */
	int out_fd;		  /* recv: stream sink */
	int rev_fd;	/* exec mode: send: stdout, recv: stdin; -1: none */
	char host[256]; /* send: --to host; recv: --listen host */
	uint16_t port;
	/* send: every --to HOST:PORT, paths[0] the same as host/port; channel
	 * i's home path is i % nr_paths (0: host/port only) */
	unsigned nr_paths;
	struct {
		char host[256];
		uint16_t port;
	} paths[MW_PATHS_MAX];
	/* socket mode: send --listen / recv --connect, paired by position;
	 * none: exec mode, one stream over in_fd/out_fd and rev_fd */
	unsigned nr_eps;
	struct mw_endpoint eps[MW_ENDPOINTS_MAX];
	/* --join-token: the per-migration secret every channel proves it
	 * holds (join.h); NULL / 0: none. The caller owns the bytes. */
	const uint8_t *join_token;
	size_t join_token_len;
	/* recv: peers allowed to connect, checked right after accept();
	 * none: any address */
	unsigned nr_allow;
	struct mw_cidr allow[MW_ALLOW_MAX];
};

/* "auto" | "uring" | "poll" <-> enum mw_io. parse returns 0 or -EINVAL. */
int mw_io_parse(const char *s, enum mw_io *out);
const char *mw_io_name(enum mw_io io);

/* Parses "ADDR/BITS" (or a bare address: all its bits) of either family
 * into out. Returns 0 or -EINVAL. */
int mw_cidr_parse(const char *s, struct mw_cidr *out);

/* Parses "unix:/path" or "tcp:host:port". Returns 0 or -EINVAL. */
int mw_endpoint_parse(const char *s, struct mw_endpoint *out);

/*
 * Runs a whole session. Returns 0 only when the receiver acknowledged every
 * byte (send) / every byte was written and the output closed (recv).
 * Otherwise a negative code, with one line of text in *err naming the side's
 * channel, peer and cause. Installs its own SIGINT/SIGTERM handling.
 * Context: main thread.
 */
int mw_xp_send_run(const struct mw_xp_cfg *cfg, struct mw_err *err);
int mw_xp_recv_run(const struct mw_xp_cfg *cfg, struct mw_err *err);

/* What a receiver said to send --probe. Locking: none; the caller's. */
struct mw_xp_probe_res {
	struct mw_probe_ok ok;
	char peer[80];	   /* "127.0.0.1:4444" */
	char peer_id[512]; /* the receiver's certificate subject DN, or "" */
};
/*
 * The receiver at cfg's --to with cfg's credentials, asked with a PROBE
 * whether it would take this sender's session (probe.c): 0 when it would,
 * else a negative code with one line in *err naming the receiver and what
 * to change. Starts no session on either side. Context: main thread.
 */
int mw_xp_probe(const struct mw_xp_cfg *cfg, struct mw_xp_probe_res *res,
		struct mw_err *err);

/* ---- CPU placement (placement.c) ---- */
struct mw_placement {
	int qemu_pid;	       /* the QEMU whose vCPUs were found; 0: none */
	unsigned nr_vcpus;     /* its vCPU threads */
	struct mw_cpus vcpus;  /* CPUs those threads may run on */
	struct mw_cpus chosen; /* CPUs for migwire's threads; n == 0: none */
	bool shared;	       /* no CPU left beside the vCPUs' */
	bool warn;	       /* shared although the vCPUs are pinned */
	bool own_group;	       /* in the VM's session: mw_place_own_group() */
	char why[512];	       /* one line for -v and --print-config */
};
/*
 * Finds the VM's vCPU threads (QEMU pid qemu_pid, or with 0 an ancestor of
 * migwire as under exec:) and chooses the CPUs migwire may use that they
 * may not, preferring those of isolated. Returns 0 (p->chosen may be empty:
 * no QEMU, or no CPU left, p->why says which) or -ESRCH when qemu_pid has
 * no vCPU threads.
 */
int mw_place_auto(int qemu_pid, const struct mw_cpus *isolated,
		  struct mw_placement *p);
/* The QEMU among migwire's parents (QEMU runs exec: URIs through
 * /bin/sh -c), or 0. */
int mw_qemu_ancestor(void);
/*
 * p->own_group: migwire shares the VM's session, and with it the VM's
 * scheduler task group (autogroup). The kernel splits a group's weight over
 * the CPUs by where its load is, so migwire busy on its own CPUs would take
 * weight from the vCPUs on theirs: a session of its own (setsid) keeps it
 * apart. Returns 0 or -errno. Context: main thread, before any other.
 */
int mw_place_own_group(const struct mw_placement *p);

#endif
