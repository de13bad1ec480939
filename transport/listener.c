/* SPDX-License-Identifier: MIT */
/*
 * The receiver's listener (mw-listen): accepts, applies what must hold
 * before a connection costs anything (--allow-from, the descriptors kept
 * for admitted channels, the table of unauthenticated connections in
 * preauth.h) and starts one thread per connection (admit.c's
 * mw_rx_conn_main). It runs for the whole session, since lost channels
 * resume and probes come through it after all channels joined; it stops
 * at teardown (r->stop_listen), when the session failed, or when --wait
 * or the join timeout runs out before every channel joined.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mw_log.h"
#include "mw_thread.h"
#include "net.h"
#include "recv_int.h"

/* --wait ran out before a session: say whether anyone tried, and why the
 * last one was turned away (operators read "no sender connected" as "the
 * source never started"). */
static void wait_expired(struct receiver *r)
{
	unsigned n;
	char last[sizeof(r->last_reject)];

	pthread_mutex_lock(&r->lock);
	n = r->nrejected;
	memcpy(last, r->last_reject, sizeof(last));
	pthread_mutex_unlock(&r->lock);
	if (!n)
		mw_fail_set(&r->fail, -MW_E_TIMEOUT,
			    "no sender connected within %u s", r->cfg->wait_s);
	else
		mw_fail_set(&r->fail, -MW_E_TIMEOUT,
			    "no sender authenticated within %u s (%u "
			    "connection%s rejected; last: %s)",
			    r->cfg->wait_s, n, n == 1 ? "" : "s", last);
}

/* A peer outside --allow-from: one line, unless the last one is less
 * than a second old (then it is counted for the next line). Listener
 * thread only. */
static void refuse_log(struct receiver *r, const struct sockaddr_storage *ss)
{
	char name[MW_PEER_MAX], more[64];
	unsigned quiet;

	pthread_mutex_lock(&r->lock);
	mw_rx_note_reject_locked(r, "address not in --allow-from");
	pthread_mutex_unlock(&r->lock);
	if (!mw_logrl_take(&r->refuse_rl, mw_now_ns(), &quiet))
		return;
	mw_net_addr_name(ss, name, sizeof(name));
	MW_LOG(MW_LOG_WARN,
	       "rejected connection from %s: address not in --allow-from%s",
	       name, mw_logrl_more(quiet, more, sizeof(more)));
}

/* No descriptor or memory for a connection, which poll() would report
 * again at once: evicts the worst unauthenticated one (its thread frees
 * its descriptors) and returns the listener's pause in ms. Said once, at
 * -v: under a flood this is routine. Listener thread. */
static int accept_starved(struct receiver *r, int err)
{
	bool evicted;

	if (!r->emfile_said)
		MW_LOG(MW_LOG_INFO,
		       "accept: %s: evicting unauthenticated connections, "
		       "and accepting more slowly while it lasts",
		       strerror(err));
	r->emfile_said = true;
	pthread_mutex_lock(&r->lock);
	evicted = mw_preauth_evict_worst(&r->pre);
	pthread_mutex_unlock(&r->lock);
	return evicted ? 10 : 100;
}

/* Accepts one connection and starts its thread. Returns 0, or how many
 * ms the listener pauses (accept_starved). */
static int accept_one(struct receiver *r)
{
	struct sockaddr_storage peer = { 0 };
	socklen_t plen = sizeof(peer);
	uint8_t key[MW_PREAUTH_KEY_LEN];
	char name[MW_PEER_MAX];
	struct rx_chan *ch;
	pthread_attr_t attr;
	pthread_t th;
	int fd, ret;

	/* the address from accept: getpeername() fails once a peer reset */
	fd = accept4(r->listen_fd, (struct sockaddr *)&peer, &plen,
		     SOCK_CLOEXEC);
	if (fd < 0)
		return errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
				       errno == ENOMEM ?
			       accept_starved(r, errno) :
			       0;
	/* descriptors come lowest first: fd is about how many are open.
	 * Unauthenticated ones leave some to admitted channels (rings,
	 * streams), or a flood makes the sender's channel fail its setup */
	if (fd >= r->fd_limit - r->fd_spare) {
		close(fd);
		return accept_starved(r, EMFILE);
	}
	if (r->cfg->nr_allow &&
	    !mw_cidr_match(r->cfg->allow, r->cfg->nr_allow, &peer)) {
		close(fd);
		refuse_log(r, &peer);
		return 0;
	}
	mw_preauth_key(&peer, key);
	mw_net_tune(fd, r->cfg->timeout_s);
	ch = calloc(1, sizeof(*ch));
	mw_net_addr_name(&peer, name, sizeof(name));
	if (!ch) {
		close(fd);
		return 0;
	}
	ch->r = r;
	ch->idx = -1;
	memcpy(ch->pa.key, key, sizeof(ch->pa.key));
	ch->pa.t_accept = mw_now_ns();
	ch->pa.fd = fd;
	ret = mw_chan_init(
		&ch->io, 1,
		r->tls ? mw_tls_seal_bound(MW_FRAME_HDR_LEN + MW_REVERSE_MAX) :
			 0);
	if (!ret)
		ret = mw_conn_init(&ch->io.conn, fd, name, r->tls);
	if (ret) {
		close(fd);
		ch->io.conn.fd = -1;
		mw_rx_chan_free(ch);
		/* no eventfd or buffer for it: the same starvation */
		return ret == -EMFILE || ret == -ENFILE || ret == -ENOMEM ?
			       accept_starved(r, -ret) :
			       0;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&r->lock);
	if (r->nlive == MAX_LIVE) {
		/* evicted threads still leaving: the sender dials again */
		pthread_mutex_unlock(&r->lock);
		pthread_attr_destroy(&attr);
		mw_rx_chan_free(ch);
		return 0;
	}
	mw_preauth_add(&r->pre, &ch->pa);
	r->live[r->nlive++] = ch;
	ret = pthread_create(&th, &attr, mw_rx_conn_main, ch);
	if (ret) {
		mw_preauth_drop(&r->pre, &ch->pa);
		r->nlive--;
		mw_rx_chan_free(ch);
	} else {
		ch->th = th;
	}
	pthread_mutex_unlock(&r->lock);
	pthread_attr_destroy(&attr);
	return 0;
}

static void *listener_main(void *arg)
{
	struct receiver *r = arg;
	const struct mw_xp_cfg *cfg = r->cfg;
	unsigned long long wait_dl = mw_deadline_after(cfg->wait_s);

	mw_thread_place("mw-listen", &cfg->cpus, 0);
	for (;;) {
		struct pollfd p[2] = { { .fd = r->listen_fd, .events = POLLIN },
				       { .fd = r->lst_efd, .events = POLLIN } };
		unsigned long long dl, now = mw_now_ns();
		unsigned joined, count;
		bool stop;
		int ms;

		pthread_mutex_lock(&r->lock);
		joined = r->joined;
		count = r->have_session ? r->sess.chan_count : 0;
		dl = r->have_session ?
			     r->first_join_ns +
				     (unsigned long long)cfg->timeout_s *
					     1000000000ull :
			     wait_dl;
		if (count && joined == count)
			dl = 0; /* all joined: resumes may come until the end */
		stop = r->stop_listen;
		pthread_mutex_unlock(&r->lock);
		if (mw_fail_is_set(&r->fail) || stop)
			break;
		if (dl && now >= dl) {
			if (count)
				mw_fail_set(&r->fail, -MW_E_TIMEOUT,
					    "only %u of %u channels joined "
					    "within %u s",
					    joined, count, cfg->timeout_s);
			else
				wait_expired(r);
			break;
		}
		ms = dl ? (int)((dl - now) / 1000000ull) + 1 : 1000;
		if (ms > 1000)
			ms = 1000;
		if (poll(p, 2, ms) <= 0)
			continue;
		if (p[1].revents & POLLIN) {
			uint64_t v;

			/* a wake-up: the top of the loop says what for */
			if (read(r->lst_efd, &v, sizeof(v)) < 0)
				v = 0;
		}
		if ((p[0].revents & POLLIN) && (ms = accept_one(r)))
			poll(&p[1], 1, ms);
	}
	close(r->listen_fd);
	r->listen_fd = -1;
	return NULL;
}

int mw_rx_listener_start(struct receiver *r)
{
	struct rlimit nofile;
	int ret;

	/* a quarter of RLIMIT_NOFILE, at most 64, is for admitted channels */
	r->fd_limit = getrlimit(RLIMIT_NOFILE, &nofile) ||
				      nofile.rlim_cur > INT_MAX ?
			      INT_MAX :
			      (int)nofile.rlim_cur;
	r->fd_spare = r->fd_limit / 4 < 64 ? r->fd_limit / 4 : 64;
	r->pre.cap = MAX_PENDING;
	r->pre.per_addr = MAX_PER_ADDR;
	r->refuse_rl.burst = 1;
	r->reject_rl.burst = 8; /* a sender's channels refused together */
	ret = pthread_create(&r->listener, NULL, listener_main, r);
	r->listener_started = !ret;
	return -ret;
}
