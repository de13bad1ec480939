/* SPDX-License-Identifier: MIT */
/*
 * The receiver's rules for connections that have not authenticated yet
 * (preauth.c): which one gives up its place when a new one comes and the
 * table is full, and how often a refusal may be logged. admit.c applies
 * them under the receiver's lock.
 */
#ifndef MW_PREAUTH_H
#define MW_PREAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MW_PREAUTH_KEY_LEN 16u
#define MW_PREAUTH_MAX 256u /* the largest table */

/*
 * One unauthenticated connection, as the policy sees it.
 *
 * Locking: none here; the receiver keeps one in each connection (struct
 * rx_chan) and reads or writes it under r->lock only, like the table.
 */
struct mw_preauth_ent {
	/* the peer's address: an IPv4 address (mapped or not), or the /64
	 * of an IPv6 one, which is what one host can easily change */
	uint8_t key[MW_PREAUTH_KEY_LEN];
	unsigned long long t_accept; /* mw_now_ns() at accept */
	int fd;			     /* shut down when evicted */
	bool heard;		     /* the peer has sent a byte */
	bool in;		     /* holds a place in the table */
	bool evicted;		     /* pushed out to make room */
};

/*
 * The places of the unauthenticated connections: at most cap, per_addr
 * from one address, unless it is exempt (the session's source, whose
 * channels come together).
 *
 * Locking: the owner's lock (r->lock) around every call.
 */
struct mw_preauth {
	struct mw_preauth_ent *ent[MW_PREAUTH_MAX];
	unsigned n, cap, per_addr;
	bool has_exempt;
	uint8_t exempt[MW_PREAUTH_KEY_LEN];
};

/* The address key of a peer (IPv4-mapped IPv6 counts as its IPv4). */
void mw_preauth_key(const struct sockaddr_storage *ss,
		    uint8_t key[MW_PREAUTH_KEY_LEN]);

/*
 * A new connection from key arrives while the n connections of pend are
 * authenticating. Returns the index in pend of the one to evict so the new
 * one fits, or -1 when it fits as it is. An address that already holds
 * per_addr places gives up its own worst one, unless it is the exempt one
 * (NULL: none). Else, when cap places are taken, the worst one of all
 * goes, taken from other addresses than the exempt one if any. Worst: a
 * peer that has sent nothing before one that has, then the oldest. So a
 * flood evicts its own idle connections, and a sender whose handshake
 * takes milliseconds is never the one pushed out by a flood slower than
 * cap connections per handshake.
 */
int mw_preauth_victim(struct mw_preauth_ent *const *pend, unsigned n,
		      const uint8_t key[MW_PREAUTH_KEY_LEN],
		      const uint8_t *exempt, unsigned per_addr, unsigned cap);
/* Gives e (key, t_accept, fd set) a place, evicting the victim, which is
 * marked and whose socket is shut down so its thread leaves. */
void mw_preauth_add(struct mw_preauth *t, struct mw_preauth_ent *e);
/* Frees the worst place (accept() out of file descriptors); false when
 * there was none. */
bool mw_preauth_evict_worst(struct mw_preauth *t);
/* e leaves its place, if it holds one (authenticated, admitted, gone). */
void mw_preauth_drop(struct mw_preauth *t, struct mw_preauth_ent *e);

/*
 * A log line budget: a burst of lines, then one a second; what was held
 * back is counted for the next line.
 *
 * Locking: none; one thread uses it, or its owner's lock guards it.
 */
struct mw_logrl {
	unsigned long long last_ns; /* last refill */
	unsigned tokens, burst;
	unsigned quiet; /* lines held back since the last one printed */
	bool started;
};

/* May a line be printed at now? If so, *quiet is how many were held back
 * since the last one (then reset); if not, this one is counted. */
bool mw_logrl_take(struct mw_logrl *rl, unsigned long long now,
		   unsigned *quiet);
/* " (and N more since the last such line)", or "" when quiet is 0 */
const char *mw_logrl_more(unsigned quiet, char *buf, size_t cap);

#endif
