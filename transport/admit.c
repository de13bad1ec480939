/* SPDX-License-Identifier: MIT */
/*
 * The receiver's door: the listener, one thread per accepted connection,
 * and the HELLO admission that decides whether a connection belongs to the
 * session.
 *
 * DESIGN
 * The listener (mw-listen) accepts and starts a detached connection thread
 * (mw-rxhs while it authenticates, then mw-rxN) for each connection. A
 * connection is admitted only after TLS and a HELLO that matches the
 * session (the first admitted HELLO defines it and creates the decompress
 * pool). A connection that fails either step gets an ERROR frame, is closed
 * and never touches session state. Before any of that, an address outside
 * --allow-from is closed straight after accept(), before any allocation.
 * TLS refuses a peer whose identity is not in --tls-authz (tls_authz.c)
 * before its HELLO is read; with --join-token, every HELLO must come with
 * the proof of the token (join.c) before it counts. The session keeps the identity of the
 * connection that defined it, and a later channel of another identity is
 * refused even when authorized. At most MAX_PENDING connections may be
 * unauthenticated at once, MAX_PER_ADDR of them from one address: a new
 * connection evicts the worst of them instead of being refused
 * (preauth.h), so whoever fills the table first cannot keep the sender
 * out, and a quarter of RLIMIT_NOFILE stays for admitted channels. A peer
 * that goes away or is evicted before its HELLO is a line at -v; refusals
 * are WARN lines, a burst then one a second. The listener that accepts
 * and applies those limits is listener.c. An admitted connection runs
 * r->chan_loop (recv_chan.c) on its thread; every connection thread stays on
 * r->live until its last touch of r, which is what teardown waits for.
 * Resume (docs/protocol.md): a channel whose loop ends with a loss the
 * network explains leaves its index to the sender (chan_lost); a HELLO
 * with RESUME proves the session's resume secret instead of the join token
 * and takes the index over (chan_resume), cutting the old connection if
 * this side has not noticed yet that it is dead.
 */
#include <errno.h>
#include <poll.h>
#include <time.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "join.h"
#include "mw_fd.h"
#include "mw_log.h"
#include "mw_tls.h"
#include "mw_thread.h"
#include "net.h"
#include "recv_int.h"

/* an unauthenticated connection's time limit: an honest TLS handshake
 * and HELLO take a few round trips */
#define JOIN_SECS 5

/* ---- session setup (first admitted HELLO) ---- */

/* "16 MiB", "300 KiB" or "1000 B": sizes in refusal lines */
static const char *size_name(unsigned long long n, char *buf, size_t cap)
{
	if (n >= (1ull << 20) && !(n & ((1ull << 20) - 1)))
		snprintf(buf, cap, "%llu MiB", n >> 20);
	else if (n >= 1024 && !(n & 1023))
		snprintf(buf, cap, "%llu KiB", n >> 10);
	else
		snprintf(buf, cap, "%llu B", n);
	return buf;
}

/*
 * The one memory budget: --window bytes of chunk slots for the whole
 * session, whatever the sender announces. A slot is a chunk buffer plus,
 * with a codec, a buffer for its compressed form: budget = window / slot
 * size, in r->slots_free until streams take them (sink.c). exec: mode has
 * one stream, which gets the whole budget from the start. In socket mode
 * every stream starts with MW_RX_MIN_CREDIT slots of credit (HELLO_OK's
 * stream window) and takes more slots when it is created, as long as the
 * budget has them (sink.c says how many); a stream for which not even
 * MW_RX_MIN_CREDIT are left is refused. A HELLO whose chunk size leaves
 * room for fewer than MW_RX_MIN_CREDIT slots is refused.
 */
static int session_init_locked(struct receiver *r, const struct mw_hello *h,
			       const char *id, struct mw_err *err)
{
	const struct mw_xp_cfg *cfg = r->cfg;
	enum mw_codec codec = (enum mw_codec)h->codec;
	char a[32], b[32], c[32];
	uint64_t per, slots;
	int ret;

	r->wire_cap = codec == MW_CODEC_NONE ?
			      0 :
			      mw_codec_bound(codec, h->chunk_size);
	per = h->chunk_size + r->wire_cap;
	slots = cfg->window / per;
	if (slots < MW_RX_MIN_CREDIT)
		return mw_err_set(
			err, -MW_E_PROTO,
			"chunk size %s needs at least %s of "
			"--window on the receiver (have %s)",
			size_name(h->chunk_size, a, sizeof(a)),
			/* rounded up: a --window that works */
			size_name((MW_RX_MIN_CREDIT * per + (1u << 20) - 1) &
					  ~((1ull << 20) - 1),
				  b, sizeof(b)),
			size_name(cfg->window, c, sizeof(c)));
	/* the key of every resume proof: only admitted channels learn it */
	ret = mw_tls_random(r->secret, sizeof(r->secret), err);
	if (!ret)
		ret = mw_rx_pages_init(r, h, err);
	if (ret)
		return ret;
	r->slots_free = r->slots_total = slots;
	r->credit = cfg->nr_eps	 ? MW_RX_MIN_CREDIT :
		    slots > 4096 ? 4096 :
				   (uint32_t)slots;
	ret = mw_comp_pool_new(&r->pool, codec, mw_codec_level_default(codec),
			       cfg->threads, r->credit * MW_STREAMS_MAX,
			       codec == MW_CODEC_ZSTD ? "mw-unzstd" :
			       codec == MW_CODEC_ZLIB ? "mw-unzlib" :
							"mw-sum",
			       &cfg->cpus, 1);
	if (ret)
		return mw_err_set(err, ret, "decompress pool: %s",
				  mw_strerror(ret));
	r->sess = *h;
	snprintf(r->peer_id, sizeof(r->peer_id), "%s", id);
	r->have_session = true;
	r->first_join_ns = mw_now_ns();
	MW_LOG(MW_LOG_INFO,
	       "session: %u channels, %s, chunk %u, %llu chunk slots of "
	       "%llu bytes within --window, %u of credit per stream to start",
	       h->chan_count, mw_codec_name(codec), h->chunk_size,
	       (unsigned long long)slots, (unsigned long long)per, r->credit);
	return 0;
}

/* A HELLO of another version is refused by name (both versions). */
static int version_check(const struct mw_hello *h, struct mw_err *err)
{
	if (h->version != MW_PROTO_VERSION)
		return mw_err_set(err, -MW_E_AUTH,
				  "protocol version %u not supported (this "
				  "receiver speaks %u)",
				  h->version, MW_PROTO_VERSION);
	return 0;
}

/* Whether h's parameters (all but index and RESUME) differ from those of
 * the session's first HELLO. Lock held, a session fixed. */
static bool params_differ_locked(const struct receiver *r,
				 const struct mw_hello *h)
{
	return h->chan_count != r->sess.chan_count ||
	       h->codec != r->sess.codec ||
	       h->chunk_size != r->sess.chunk_size ||
	       (h->flags & ~MW_HELLO_F_RESUME) != r->sess.flags ||
	       h->page_cache_slots != r->sess.page_cache_slots;
}

/* Decides whether a HELLO from a peer of identity id (mw_tls_peer_id, ""
 * without TLS) joins the session. Returns 0 or a code with the reason in
 * *err (sent to the peer). Context: connection thread, lock held. */
static int admit_locked(struct receiver *r, const struct mw_hello *h,
			const char *id, struct mw_err *err)
{
	int ret = version_check(h, err);

	if (ret)
		return ret;
	if (h->codec >= MW_CODEC_MAX)
		return mw_err_set(err, -MW_E_PROTO, "unknown codec %u",
				  h->codec);
	if (!r->have_session)
		return session_init_locked(r, h, id, err);
	/* the session id is a bearer token; the identity is what TLS proved */
	if (strcmp(id, r->peer_id))
		return mw_err_set(err, -MW_E_AUTH,
				  "client '%s' is not the session's source "
				  "('%s')",
				  id, r->peer_id);
	if (memcmp(h->session, r->sess.session, sizeof(h->session)))
		return mw_err_set(err, -MW_E_AUTH,
				  "channel belongs to another session");
	/* a first HELLO's flags never have RESUME (chan_join) */
	if (params_differ_locked(r, h))
		return mw_err_set(
			err, -MW_E_PROTO,
			"channel parameters differ from the session's");
	if (r->chans[h->chan_index])
		return mw_err_set(err, -MW_E_PROTO, "channel %u joined twice",
				  h->chan_index);
	return 0;
}

/* ---- resume (docs/protocol.md, "Resume") ---- */

/* Whether a HELLO with MW_HELLO_F_RESUME may resume its channel of the
 * live session: 0 or a code with the line for the peer in *err. Context:
 * connection thread, lock held. */
static int resume_check_locked(struct receiver *r, const struct mw_hello *h,
			       const char *id, struct mw_err *err)
{
	/* chan_join sends only a HELLO of this version here */
	if (!r->cfg->reconnect_s)
		return mw_err_set(err, -MW_E_AUTH,
				  "this receiver does not resume channels "
				  "(--reconnect-timeout 0)");
	if (!r->have_session || mw_fail_is_set(&r->fail) ||
	    memcmp(h->session, r->sess.session, sizeof(h->session)))
		return mw_err_set(err, -MW_E_AUTH,
				  "no session to resume here (it ended, or "
				  "never started on this receiver)");
	if (strcmp(id, r->peer_id))
		return mw_err_set(err, -MW_E_AUTH,
				  "resume from client '%s', the session's "
				  "source is '%s'",
				  id, r->peer_id);
	if (params_differ_locked(r, h) || !r->chans[h->chan_index])
		return mw_err_set(
			err, -MW_E_PROTO,
			"channel parameters differ from the session's");
	return 0;
}

/*
 * Puts ch in place of the channel it resumes. One the receiver has not
 * noticed is dead yet (a black hole: the sender saw the loss first) is
 * cut, and its thread given MW_RX_EVICT_NS to mark it lost and leave.
 * Then ch gets the index, every stream a WINDOW, the kept reverse frames
 * a carrier and, once complete, ch the ACK. 0 with the time the index was
 * down in *down_ns, or a code with the reason in *err. Lock held.
 */
static int resume_install_locked(struct receiver *r, struct rx_chan *ch,
				 unsigned idx, unsigned long long *down_ns,
				 struct mw_err *err)
{
	struct rx_chan *old = r->chans[idx];
	unsigned long long now, dl = mw_now_ns() + MW_RX_EVICT_NS;

	if (!old->lost) {
		shutdown(old->io.conn.fd, SHUT_RDWR);
		mw_efd_poke(old->io.efd);
	}
	while (!atomic_load(&old->exited) && !mw_fail_is_set(&r->fail) &&
	       mw_now_ns() < dl) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&r->live_cv, &r->lock, &ts);
		if (r->chans[idx] != old)
			/* another resume of the index got there first: this
			 * one is closed without a word, like a lost one */
			return mw_err_set(err, -MW_E_CLOSED,
					  "channel %u resumed by another "
					  "connection meanwhile",
					  idx);
	}
	/* no ERROR for this one (reject() sends none for a timeout): the
	 * sender dials again rather than giving up on the session */
	if (!atomic_load(&old->exited) && !mw_fail_is_set(&r->fail))
		return mw_err_set(err, -MW_E_TIMEOUT,
				  "channel %u: the connection it replaces did "
				  "not end within %llu s",
				  idx, MW_RX_EVICT_NS / 1000000000ull);
	if (!atomic_load(&old->exited) || !old->lost)
		return mw_err_set(err, -MW_E_AUTH,
				  "channel %u ended without a loss to resume "
				  "(the session failed, or completed and the "
				  "sender closed)",
				  idx);
	now = mw_now_ns();
	*down_ns = now - old->lost_ns;
	r->bytes_prev[idx] +=
		atomic_load_explicit(&old->bytes_wire, memory_order_relaxed);
	mw_rx_chan_free(old);
	ch->idx = (int)idx;
	ch->established = ch->resumed = true;
	r->chans[idx] = ch;
	r->nlost--;
	r->resumes++;
	r->resumes_of[idx]++;
	if (r->down_since) {
		r->paused_ns += now - r->down_since;
		r->down_since = 0;
	}
	mw_preauth_drop(&r->pre, &ch->pa);
	mw_rx_reroute_locked(r);
	if (r->complete) {
		struct mw_frame_hdr h = { .type = MW_FT_ACK,
					  .wire_len = MW_ACK_LEN };
		struct mw_ack a = { .bytes = r->close.bytes,
				    .chunks = r->close.chunks };
		uint8_t p[MW_ACK_LEN];
		struct mw_ctl *c;

		mw_ack_encode(p, &a);
		c = mw_ctl_new(&h, p);
		if (c)
			mw_ctlq_push(&ch->io.ctlq, c, 0);
	}
	pthread_cond_broadcast(&r->cv);
	return 0;
}

/* A resuming HELLO (hello, its payload raw) from identity id: the checks,
 * the proof, the install. 0 or a code with ch->io.conn.err set. */
static int chan_resume(struct rx_chan *ch, const struct mw_hello *hello,
		       const uint8_t *raw, const char *id,
		       unsigned long long dl, unsigned long long *down_ns)
{
	struct receiver *r = ch->r;
	uint8_t secret[MW_RESUME_SECRET_LEN];
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = resume_check_locked(r, hello, id, &ch->io.conn.err);
	/* fixed once the session is (recv_int.h), copied for clarity */
	memcpy(secret, r->secret, sizeof(secret));
	pthread_mutex_unlock(&r->lock);
	if (!ret)
		ret = mw_resume_verify(&ch->io.conn, r->cfg, secret, raw, dl);
	mw_tls_cleanse(secret, sizeof(secret));
	if (ret)
		return ret;
	pthread_mutex_lock(&r->lock);
	ret = ch->pa.evicted ?
		      -MW_E_CLOSED :
		      resume_check_locked(r, hello, id, &ch->io.conn.err);
	if (!ret)
		ret = resume_install_locked(r, ch, hello->chan_index, down_ns,
					    &ch->io.conn.err);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* ---- connection threads ---- */

void mw_rx_chan_free(struct rx_chan *ch)
{
	mw_chan_destroy(&ch->io);
	free(ch->tx_ctl);
	free(ch);
}

static void live_remove_locked(struct receiver *r, struct rx_chan *ch)
{
	unsigned i;

	for (i = 0; i < r->nlive; i++)
		if (r->live[i] == ch) {
			r->live[i] = r->live[--r->nlive];
			break;
		}
	pthread_cond_broadcast(&r->live_cv);
}

/* Waits for the peer's first byte (it then goes after the idle ones in
 * the eviction order) and runs the TLS handshake; once TLS proved the
 * peer's identity it holds no place. Connection thread. */
static int chan_handshake(struct rx_chan *ch, unsigned long long dl)
{
	struct receiver *r = ch->r;
	int ret = mw_net_wait(ch->io.conn.fd, POLLIN, dl);
	char magic[2];

	if (ret)
		return mw_err_set(
			&ch->io.conn.err, ret, "%s",
			ret == -MW_E_TIMEOUT ?
				"peer sent nothing before the timeout" :
				mw_strerror(ret));
	pthread_mutex_lock(&r->lock);
	ch->pa.heard = true;
	pthread_mutex_unlock(&r->lock);
	/* a --no-tls sender's HELLO (magic "MW"): answer in plaintext, or it
	 * sees only a hang-up and dials again until its --timeout */
	if (ch->io.conn.tls &&
	    recv(ch->io.conn.fd, magic, sizeof(magic), MSG_PEEK) == 2 &&
	    !memcmp(magic, "MW", 2)) {
		mw_tls_sess_free(ch->io.conn.tls);
		ch->io.conn.tls = NULL;
		return mw_err_set(&ch->io.conn.err, -MW_E_TLS,
				  "peer is not speaking TLS: it runs --no-tls "
				  "(its first bytes are a plaintext migwire "
				  "frame); use the same TLS mode on both "
				  "sides");
	}
	ret = mw_conn_handshake(&ch->io.conn, dl);
	if (!ret && ch->io.conn.tls) {
		const char *id = mw_tls_peer_id(ch->io.conn.tls);

		/* once a session exists, another authorized identity has
		 * nothing to do here: refused now, not after its HELLO, or a
		 * few such peers could hold every place on r->live for
		 * JOIN_SECS at a time and keep the sender's resumes out */
		pthread_mutex_lock(&r->lock);
		if (r->have_session && strcmp(id, r->peer_id))
			ret = mw_err_set(&ch->io.conn.err, -MW_E_AUTH,
					 "client '%s' is not the session's "
					 "source ('%s')",
					 id, r->peer_id);
		else
			mw_preauth_drop(&r->pre, &ch->pa);
		pthread_mutex_unlock(&r->lock);
	}
	return ret;
}

/* TLS + HELLO; on success the channel is registered in r->chans. */
static int chan_join(struct rx_chan *ch)
{
	struct receiver *r = ch->r;
	unsigned long long dl = mw_deadline_after(
		r->cfg->timeout_s < JOIN_SECS ? r->cfg->timeout_s : JOIN_SECS);
	uint8_t hdr[MW_FRAME_HDR_LEN], payload[MW_HELLO_LEN], first;
	struct mw_frame_hdr h;
	struct mw_hello hello;
	struct mw_hello_ok ok = { .version = MW_PROTO_VERSION };
	const char *id;
	int ret;

	ret = chan_handshake(ch, dl);
	if (ret)
		return ret;
	ret = mw_conn_read(&ch->io.conn, hdr, sizeof(hdr), dl);
	if (ret)
		return ret;
	first = hdr[0];
	if (mw_frame_hdr_decode(hdr, sizeof(hdr), MW_HELLO_LEN, &h) ||
	    (h.type != MW_FT_HELLO && h.type != MW_FT_PROBE)) {
		if (!ch->io.conn.tls && first == 0x16)
			return mw_err_set(&ch->io.conn.err, -MW_E_AUTH,
					  "peer speaks TLS but this receiver "
					  "runs --no-tls");
		return mw_err_set(&ch->io.conn.err, -MW_E_PROTO,
				  "not a migwire HELLO (garbage or wrong "
				  "protocol)");
	}
	if (h.type == MW_FT_PROBE)
		return mw_rx_probe_answer(ch, dl);
	ret = mw_conn_read(&ch->io.conn, payload, sizeof(payload), dl);
	if (ret)
		return ret;
	if (mw_hello_decode(payload, sizeof(payload), &hello))
		return mw_err_set(&ch->io.conn.err, -MW_E_PROTO,
				  "malformed HELLO");
	if (hello.version == MW_PROTO_VERSION &&
	    (hello.flags & MW_HELLO_F_RESUME)) {
		/* the resume proof stands for the join token's: the secret
		 * went only to channels that gave that */
		unsigned long long down = 0;

		id = ch->io.conn.tls ? mw_tls_peer_id(ch->io.conn.tls) : "";
		ret = chan_resume(ch, &hello, payload, id, dl, &down);
		if (ret)
			return ret;
		MW_LOG(MW_LOG_WARN, "channel %u resumed from %s after %.1f s",
		       hello.chan_index, ch->io.conn.peer, (double)down / 1e9);
		goto hello_ok;
	}
	/* every channel proves the join token before its HELLO counts */
	ret = mw_join_verify(&ch->io.conn, r->cfg, hello.version,
			     hello.flags & MW_HELLO_F_TOKEN, payload,
			     MW_HELLO_LEN, dl);
	if (ret)
		return ret;
	id = ch->io.conn.tls ? mw_tls_peer_id(ch->io.conn.tls) : "";
	pthread_mutex_lock(&r->lock);
	ret = ch->pa.evicted ? -MW_E_CLOSED :
			       admit_locked(r, &hello, id, &ch->io.conn.err);
	if (!ret) {
		ch->idx = hello.chan_index;
		r->chans[ch->idx] = ch;
		r->joined++;
		mw_preauth_drop(&r->pre, &ch->pa);
		memcpy(r->pre.exempt, ch->pa.key, sizeof(r->pre.exempt));
		r->pre.has_exempt = true;
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->lock);
	if (ret)
		return ret;
	MW_LOG(MW_LOG_INFO, "channel %u admitted from %s, client '%s'",
	       hello.chan_index, ch->io.conn.peer, id[0] ? id : "(no TLS)");
hello_ok:
	/* fixed once the session is (recv_int.h) */
	ok.stream_window = r->credit;
	memcpy(ok.secret, r->secret, sizeof(ok.secret));
	ok.chan_index = hello.chan_index;
	memcpy(ok.session, hello.session, sizeof(ok.session));
	mw_hello_ok_encode(payload, &ok);
	h = (struct mw_frame_hdr){ .type = MW_FT_HELLO_OK,
				   .wire_len = MW_HELLO_OK_LEN };
	ret = mw_conn_send_frame(&ch->io.conn, &h, payload, dl);
	mw_tls_cleanse(payload, sizeof(payload));
	mw_tls_cleanse(ok.secret, sizeof(ok.secret));
	return ret;
}

void mw_rx_note_reject_locked(struct receiver *r, const char *why)
{
	size_t n = strnlen(why, sizeof(r->last_reject) - 1);

	r->nrejected++;
	memcpy(r->last_reject, why, n);
	r->last_reject[n] = '\0';
}

/*
 * A connection that did not make it to admission. A peer that went away
 * (closed, reset, silent until the deadline) or was evicted is a line at
 * -v: scanners, floods and a sender that failed elsewhere look like that,
 * and the sender says why itself. A refusal (TLS, identity, HELLO) is a
 * WARN line, and the peer gets an ERROR frame. Both are held to a burst,
 * then one a second, and counted for the --wait line.
 */
static void reject(struct rx_chan *ch, int ret)
{
	struct receiver *r = ch->r;
	struct mw_conn *c = &ch->io.conn;
	unsigned quiet = 0;
	char more[64];
	bool gone, say = false;
	int lvl;

	pthread_mutex_lock(&r->lock);
	if (ch->pa.evicted)
		mw_err_set(&c->err, -MW_E_CLOSED,
			   "evicted while unauthenticated, to make room for "
			   "newer connections");
	gone = ch->pa.evicted || ret == -MW_E_CLOSED || ret == -MW_E_TIMEOUT ||
	       ret == -ECONNRESET || ret == -EPIPE;
	lvl = gone ? MW_LOG_INFO : MW_LOG_WARN;
	mw_rx_note_reject_locked(r,
				 c->err.msg); /* before the ERROR frame reuses
					    * err */
	if (lvl <= mw_log_level)
		say = mw_logrl_take(&r->reject_rl, mw_now_ns(), &quiet);
	pthread_mutex_unlock(&r->lock);
	if (say)
		MW_LOG(lvl, "%s connection from %s: %s%s",
		       gone ? "lost" : "rejected", c->peer, c->err.msg,
		       mw_logrl_more(quiet, more, sizeof(more)));
	if (!gone)
		mw_conn_send_error(c, c->err.msg);
}

/*
 * The loop of an established channel ended with ret: when that is a loss
 * the sender may resume (session.h) and resume is on, marks the channel
 * lost, frees what it held (its ring first: a plaintext receive may land
 * in its chunk until then) and says so. The thread then leaves; the index
 * keeps the channel until a resume replaces it (resume_install_locked)
 * or --reconnect-timeout fails the session (recv.c). Returns true when the
 * end is not the session's failure: lost, or gone once the sender is
 * known to have its ACK (then without a word). Channel thread.
 */
static bool chan_lost(struct rx_chan *ch, int ret)
{
	struct receiver *r = ch->r;
	unsigned long long now;
	struct mw_ctl *c;
	bool done, quiet;

	if (!ch->established || !r->cfg->reconnect_s ||
	    !mw_err_resumable(ret) || mw_fail_is_set(&r->fail))
		return false;
	/* an op the kernel may still complete (io_uring cancels
	 * asynchronously) could land in the chunk after it went back to
	 * the pool: then the loss is final, and teardown frees the chunk
	 * after the ring, as for any failure */
	if (mw_chan_quiesce(&ch->io, mw_now_ns() + 2000000000ull))
		return false;
	now = mw_now_ns();
	pthread_mutex_lock(&r->lock);
	if (ch->chunk) {
		/* the sender sends it again, whole */
		mw_reasm_drop(&ch->chunk->st.rx->ra, &r->chunks, &ch->chunk);
		ch->chunk = NULL;
	}
	/* what it had queued goes again on its successor: WINDOWs and the
	 * ACK are made anew, reverse frames are kept by their stream */
	while ((c = mw_ctlq_pop(&ch->io.ctlq)))
		free(c);
	/* the sender has the ACK (it closed a channel cleanly after one):
	 * a connection that goes away now (unread frames make its close a
	 * reset) is no loss. Complete otherwise: an ACK sent is not an ACK
	 * received, so lost for a resume that wants its ACK (recv.c waits
	 * for it), but without a word: the sender may just be closing */
	done = r->complete && r->ack_eof;
	quiet = r->complete;
	if (!done) {
		ch->lost = true;
		ch->lost_ns = now;
		r->nlost++;
		r->lost_total++;
		if (r->nlost >= r->joined && !r->down_since)
			r->down_since = now;
		mw_rx_reroute_locked(r);
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
	if (!quiet)
		MW_LOG(MW_LOG_WARN,
		       "channel %d lost (%s); waiting up to %u s for the "
		       "sender to resume it",
		       ch->idx,
		       ch->io.conn.err.msg[0] ? ch->io.conn.err.msg :
						mw_strerror(ret),
		       r->cfg->reconnect_s);
	return true;
}

void *mw_rx_conn_main(void *arg)
{
	struct rx_chan *ch = arg;
	struct receiver *r = ch->r;
	char name[16];
	int ret;

	mw_thread_place("mw-rxhs", &r->cfg->cpus, 0);
	ret = chan_join(ch);
	if (ret == MW_RX_PROBED)
		MW_LOG(MW_LOG_INFO, "answered a probe from %s, client '%s'",
		       ch->io.conn.peer,
		       ch->io.conn.tls ? mw_tls_peer_id(ch->io.conn.tls) :
					 "(no TLS)");
	if (ret && ch->idx < 0) {
		/* rejected or probed: log it, tell the peer, leave no trace */
		if (ret != MW_RX_PROBED)
			reject(ch, ret);
		mw_tls_thread_stop();
		pthread_mutex_lock(&r->lock);
		mw_preauth_drop(&r->pre, &ch->pa);
		live_remove_locked(r, ch);
		mw_rx_chan_free(ch);
		pthread_mutex_unlock(&r->lock);
		return NULL;
	}
	snprintf(name, sizeof(name), "mw-rx%d", ch->idx);
	mw_thread_place(name, &r->cfg->cpus,
			1 + r->cfg->threads + (unsigned)ch->idx);
	/* admitted but HELLO_OK failed: it counts as joined, so its failure
	 * is the session's (else recv would wait for nothing) */
	if (!ret)
		ret = mw_chan_ring_init(&ch->io, r->io);
	if (!ret) {
		/* from here on a loss is for the sender to resume */
		ch->established = true;
		ret = r->chan_loop(ch);
	}
	if (ret && ret != -MW_E_CANCEL && chan_lost(ch, ret))
		ret = -MW_E_CANCEL; /* not the session's failure */
	else if (ret && ret != -MW_E_CANCEL)
		mw_fail_set(&r->fail, ret, "channel %d (%s): %s", ch->idx,
			    ch->io.conn.peer,
			    ch->io.conn.err.msg[0] ? ch->io.conn.err.msg :
						     mw_strerror(ret));
	/* the sender learns why, unless it told us or the channel is lost */
	if (mw_fail_is_set(&r->fail) && !ch->ack_sent && ret != -MW_E_PEER &&
	    !ch->tx_ctl && !ch->lost)
		mw_conn_send_error(&ch->io.conn, r->fail.err.msg);
	ch->cpu_final = mw_thread_cpu_seconds();
	mw_ctlq_stop(&ch->io.ctlq);
	mw_fail_wake(&r->fail);
	mw_tls_thread_stop();
	/* last touch of r or ch: once off the live list the main thread may
	 * free both */
	pthread_mutex_lock(&r->lock);
	atomic_store(&ch->exited, true);
	live_remove_locked(r, ch);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}
