/* SPDX-License-Identifier: MIT */
/*
 * Admission rules for unauthenticated connections (preauth.h). Pure
 * functions over the receiver's table, so the policy is tested on its own
 * (test_xp_preauth.c) and admit.c only applies it.
 *
 * DESIGN
 * Anyone who can reach the receiver's port can open connections; only an
 * authenticated one (TLS, then HELLO) may cost more than a bounded slot.
 * Refusing new connections when the table is full hands the port to
 * whoever fills it first (64 idle sockets used to turn the real sender
 * away). Evicting instead keeps the table open to newcomers: an address
 * pays with its own connections first, and across addresses the idle and
 * the old go before the fresh, so an honest handshake (milliseconds)
 * finishes unless a flood replaces the whole table within that time, and
 * a sender pushed out anyway dials again (send_chan.c).
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "preauth.h"

void mw_preauth_key(const struct sockaddr_storage *ss,
		    uint8_t key[MW_PREAUTH_KEY_LEN])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0,    0,
					    0, 0, 0, 0, 0xff, 0xff };

	memset(key, 0, MW_PREAUTH_KEY_LEN);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		memcpy(key + 12, &a->sin_addr, 4);
		key[0] = 4; /* never a valid IPv6 /64 of ours: ::/8 reserved */
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		if (!memcmp(a->sin6_addr.s6_addr, mapped, sizeof(mapped))) {
			memcpy(key + 12, a->sin6_addr.s6_addr + 12, 4);
			key[0] = 4;
		} else {
			memcpy(key, a->sin6_addr.s6_addr, 8);
		}
	}
}

/* a key no peer has (the first byte of a real one is 0 or 4) */
static const uint8_t e_none[MW_PREAUTH_KEY_LEN] = { 0xff };

/* Is a worse than b (evicted first)? */
static bool worse(const struct mw_preauth_ent *a,
		  const struct mw_preauth_ent *b)
{
	if (a->heard != b->heard)
		return !a->heard;
	return a->t_accept < b->t_accept;
}

/* The worst entry whose key is (same) or is not (!same) key; -1: none. */
static int worst_of(struct mw_preauth_ent *const *pend, unsigned n,
		    const uint8_t *key, bool same)
{
	int w = -1;
	unsigned i;

	for (i = 0; i < n; i++) {
		bool eq = key && !memcmp(pend[i]->key, key, MW_PREAUTH_KEY_LEN);

		if (key && eq != same)
			continue;
		if (w < 0 || worse(pend[i], pend[w]))
			w = (int)i;
	}
	return w;
}

int mw_preauth_victim(struct mw_preauth_ent *const *pend, unsigned n,
		      const uint8_t key[MW_PREAUTH_KEY_LEN],
		      const uint8_t *exempt, unsigned per_addr, unsigned cap)
{
	unsigned i, mine = 0;
	int w;

	for (i = 0; i < n; i++)
		mine += !memcmp(pend[i]->key, key, MW_PREAUTH_KEY_LEN);
	if (mine >= per_addr &&
	    !(exempt && !memcmp(exempt, key, MW_PREAUTH_KEY_LEN)))
		return worst_of(pend, n, key, true);
	if (n < cap)
		return -1;
	w = exempt ? worst_of(pend, n, exempt, false) : -1;
	return w >= 0 ? w : worst_of(pend, n, NULL, false);
}

static void evict(struct mw_preauth *t, int v)
{
	struct mw_preauth_ent *e;

	if (v < 0)
		return;
	e = t->ent[v];
	e->evicted = true;
	mw_preauth_drop(t, e);
	shutdown(e->fd, SHUT_RDWR);
}

void mw_preauth_add(struct mw_preauth *t, struct mw_preauth_ent *e)
{
	evict(t, mw_preauth_victim(t->ent, t->n, e->key,
				   t->has_exempt ? t->exempt : NULL,
				   t->per_addr, t->cap));
	if (t->n == MW_PREAUTH_MAX) /* a cap above the table's size */
		evict(t, worst_of(t->ent, t->n, NULL, false));
	e->in = true;
	t->ent[t->n++] = e;
}

bool mw_preauth_evict_worst(struct mw_preauth *t)
{
	int v = mw_preauth_victim(t->ent, t->n, e_none, NULL, ~0u, 0);

	evict(t, v);
	return v >= 0;
}

void mw_preauth_drop(struct mw_preauth *t, struct mw_preauth_ent *e)
{
	unsigned i;

	if (!e->in)
		return;
	e->in = false;
	for (i = 0; i < t->n; i++)
		if (t->ent[i] == e) {
			t->ent[i] = t->ent[--t->n];
			break;
		}
}

const char *mw_logrl_more(unsigned quiet, char *buf, size_t cap)
{
	buf[0] = '\0';
	if (quiet)
		snprintf(buf, cap, " (and %u more since the last such line)",
			 quiet);
	return buf;
}

bool mw_logrl_take(struct mw_logrl *rl, unsigned long long now, unsigned *quiet)
{
	unsigned long long secs;

	if (!rl->started) {
		rl->tokens = rl->burst;
		rl->last_ns = now;
		rl->started = true;
	}
	/* a line a second comes back, up to the burst */
	secs = (now - rl->last_ns) / 1000000000ull;
	if (secs) {
		rl->tokens = secs >= rl->burst - rl->tokens ?
				     rl->burst :
				     rl->tokens + (unsigned)secs;
		rl->last_ns += secs * 1000000000ull;
	}
	if (!rl->tokens) {
		rl->quiet++;
		return false;
	}
	rl->tokens--;
	*quiet = rl->quiet;
	rl->quiet = 0;
	return true;
}
