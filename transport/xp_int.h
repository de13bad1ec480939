/* SPDX-License-Identifier: MIT */
/*
 * Private to transport/: connections (socket + optional TLS session), the
 * session-wide failure latch, the bandwidth cap and stats helpers.
 */
#ifndef XP_INT_H
#define XP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "mw_err.h"
#include "mw_thread.h"
#include "mw_tls.h"
#include "mw_wire.h"
#include "mw_xport.h"

/* ---- connection: one TCP socket, optionally wrapped in TLS ---- */

#define MW_CONN_RX_CAP (256u << 10)
/* "host:port" of a peer, "[v6]:port" included */
#define MW_PEER_MAX 80u

struct mw_conn {
	int fd;
	struct mw_tls_sess *tls; /* NULL: plaintext */
	uint8_t *rx;		 /* bytes received and not consumed yet */
	size_t rx_off, rx_len, rx_cap;
	size_t rx_total;	/* bytes ever received by the blocking paths */
	char peer[MW_PEER_MAX]; /* "127.0.0.1:4444" */
	struct mw_err err;
};

/* peer: "host:port" the caller knows from connect() or accept() */
int mw_conn_init(struct mw_conn *c, int fd, const char *peer,
		 struct mw_tls_ctx *tls);
void mw_conn_destroy(struct mw_conn *c);
/* TLS handshake over the blocking socket, bounded by deadline (mw_now_ns
 * clock, 0 = none). Returns 0 or -errno/-MW_E_* with c->err set. */
int mw_conn_handshake(struct mw_conn *c, unsigned long long deadline);
/* Reads exactly n plaintext bytes, blocking until deadline. */
int mw_conn_read(struct mw_conn *c, void *dst, size_t n,
		 unsigned long long deadline);
/* Plaintext already received: copies up to n bytes without any syscall.
 * Returns bytes (0: none buffered) or -MW_E_TLS / 0-on-close via *closed. */
ssize_t mw_conn_read_buffered(struct mw_conn *c, void *dst, size_t n,
			      bool *closed);
/* Sends one frame (header + payload) with blocking writes. */
int mw_conn_send_frame(struct mw_conn *c, const struct mw_frame_hdr *h,
		       const void *payload, unsigned long long deadline);
/* Reads one control frame: header + payload (at most cap bytes). */
int mw_conn_recv_frame(struct mw_conn *c, struct mw_frame_hdr *h,
		       uint8_t *payload, size_t cap,
		       unsigned long long deadline);
/* Room for the next recv into c->rx (compacted when short): *len bytes at
 * the returned pointer. */
uint8_t *mw_conn_rx_room(struct mw_conn *c, size_t *len);
/* Best-effort ERROR frame with text; never blocks longer than 1 s. */
void mw_conn_send_error(struct mw_conn *c, const char *text);

/* ---- sockets ---- */
int mw_net_connect(const char *host, uint16_t port, unsigned long long deadline,
		   char *peer, size_t peer_cap, struct mw_err *err);
int mw_net_listen(const char *host, uint16_t port, struct mw_err *err);
/* Socket options every channel gets: nodelay, keepalive, user timeout,
 * larger buffers. */
void mw_net_tune(int fd, uint32_t timeout_s);
void mw_net_peer_name(int fd, char *buf, size_t cap);
/* "host:port" ("[v6]:port") of an address; "?:0" when it is neither. */
void mw_net_addr_name(const struct sockaddr_storage *ss, char *buf, size_t cap);
/* poll() for ev until deadline: 0, -MW_E_TIMEOUT or -errno. */
int mw_net_wait(int fd, short ev, unsigned long long deadline);

/* ---- session failure latch: the first error wins and wakes everyone ---- */
struct mw_fail {
	atomic_int failed; /* 0, or the first error code */
	pthread_mutex_t lock;
	struct mw_err err;
	int wake_fd; /* eventfd the main thread polls */
};
int mw_fail_init(struct mw_fail *f);
void mw_fail_destroy(struct mw_fail *f);
/* Records the error if it is the first; always returns code. */
int mw_fail_set(struct mw_fail *f, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline bool mw_fail_is_set(struct mw_fail *f)
{
	return atomic_load_explicit(&f->failed, memory_order_acquire) != 0;
}
void mw_fail_wake(struct mw_fail *f);
/* Reads one pending signal from the signalfd and latches it as the
 * session's failure ("interrupted by ..."). */
void mw_fail_signal(struct mw_fail *f, int sfd);
/*
 * The main threads' wait: at most 200 ms or until *next (a mw_now_ns
 * deadline), latching a signal from sfd as the failure and consuming
 * wake-ups while the session is alive. Returns true when *next has passed
 * (a stats tick is due) and moves *next one second on.
 */
bool mw_fail_poll(struct mw_fail *f, int sfd, unsigned long long *next);

/* ---- bandwidth cap: token bucket shared by all channels ---- */
struct mw_rate {
	pthread_mutex_t lock;
	uint64_t rate; /* bytes per second; 0 = unlimited */
	double tokens, burst;
	unsigned long long last_ns;
};
void mw_rate_init(struct mw_rate *r, uint64_t rate);
/* Takes n bytes of budget; sleeps until the debt is paid. */
void mw_rate_take(struct mw_rate *r, size_t n);

/* ---- control queue: small frames a channel sends before bulk data ---- */
struct mw_ctl {
	struct mw_ctl *next;
	struct mw_frame_hdr h;
	uint8_t *payload; /* h.wire_len bytes, points into this allocation */
};
struct mw_ctlq {
	pthread_mutex_t lock;
	pthread_cond_t cv; /* producers waiting for room */
	struct mw_ctl *head, *tail;
	unsigned n;
	int efd; /* the consuming channel's eventfd, poked on push */
	bool stopped;
};
/* Allocates a frame with room for h->wire_len payload bytes (copied from
 * payload when not NULL). Returns NULL when out of memory. */
struct mw_ctl *mw_ctl_new(const struct mw_frame_hdr *h, const void *payload);
void mw_ctlq_init(struct mw_ctlq *q, int efd);
void mw_ctlq_destroy(struct mw_ctlq *q);
/* Takes c. With limit > 0, blocks while the queue holds >= limit frames
 * (back-pressure for bulk reverse data); returns -MW_E_CANCEL once stopped
 * (c is freed). */
int mw_ctlq_push(struct mw_ctlq *q, struct mw_ctl *c, unsigned limit);
/* Returns the oldest frame (caller frees it) or NULL. */
struct mw_ctl *mw_ctlq_pop(struct mw_ctlq *q);
/* Wakes blocked producers for good. */
void mw_ctlq_stop(struct mw_ctlq *q);

/* ---- local endpoints (QEMU side) ---- */
/* Listens on a unix: or tcp: endpoint; returns fd or -errno (text in err). */
int mw_ep_listen(const struct mw_endpoint *ep, struct mw_err *err);
/* Connects to an endpoint (blocking, bounded by deadline). */
int mw_ep_connect(const struct mw_endpoint *ep, unsigned long long deadline,
		  struct mw_err *err);
/* "unix:/path" or "tcp:host:port" */
const char *mw_ep_name(const struct mw_endpoint *ep, char *buf, size_t cap);
/* Half-close of a local stream direction: shutdown(SHUT_WR) for sockets,
 * close() for anything else (pipes under exec:). */
void mw_fd_close_write(int fd, bool is_sock);
bool mw_fd_is_sock(int fd);
/* Sniffs the kind of QEMU connection from its first forward bytes. */
unsigned mw_kind_sniff(const uint8_t *p, size_t n, bool reverse);

/* ---- channel sends (the rings are in ring.h) ---- */
struct mw_ring;

/* One frame on its way out: up to two pieces (header + payload, or one
 * sealed buffer), advanced over short sends. */
struct mw_sendq {
	struct iovec iov[2];
	struct msghdr msg;
};
/* Posts a sendmsg of what is left in sq (borrowed until its completion). */
void mw_sendq_post(struct mw_ring *ring, int fd, struct mw_sendq *sq,
		   uint64_t ud);
/* Accounts n sent bytes; returns true while bytes remain. */
bool mw_sendq_advance(struct mw_sendq *sq, size_t n);

/* ---- misc ---- */
/* A mw_now_ns() deadline s seconds from now; 0 (none) for s == 0. */
static inline unsigned long long mw_deadline_after(uint32_t s)
{
	return s ? mw_now_ns() + (unsigned long long)s * 1000000000ull : 0;
}

/*
 * Page-aligned buffer for bulk data, freed with free(). glibc's malloc puts
 * large blocks 16 bytes past a page boundary, and the kernel's copies into
 * such buffers ran 4-5x slower here (read stage 0.41 -> 0.21 s per 512 MiB
 * when aligned, bench/pipe.py).
 */
void *mw_buf_alloc(size_t n);
int mw_efd_new(void);
void mw_efd_poke(int fd);
/* Writes all of buf (blocking fd) or returns -errno. */
int mw_write_all(int fd, const void *buf, size_t n);
/* Blocks SIGINT/SIGTERM/SIGPIPE in the caller (before threads start) and
 * returns a signalfd for them. */
int mw_signals_block(void);

#endif
