/* SPDX-License-Identifier: MIT */
/*
 * `migwire send --probe`: the sender's preflight. One connection does what
 * channel 0 would (connect, TLS with the same credentials) and then asks
 * with a PROBE frame instead of HELLO; the receiver answers PROBE_OK with
 * what it would accept, or ERROR with why it refuses this sender, and
 * closes without starting its session (docs/protocol.md, "PROBE"). Then
 * the answer is held against this sender's settings, so a migration that
 * would fail at the receiver fails here first, before QEMU is touched.
 * Context: the main thread, nothing else running.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "join.h"
#include "recv_int.h" /* MW_RX_MIN_CREDIT: what the receiver's budget needs */
#include "session.h"

/* Connects (dialling a refused address again until --wait runs out, as
 * the channels do) and runs the TLS handshake. */
static int probe_connect(const struct mw_xp_cfg *cfg, struct mw_tls_ctx *tls,
			 struct mw_conn *c, unsigned long long dl,
			 struct mw_err *err)
{
	unsigned long long wait_dl = mw_deadline_after(cfg->wait_s);
	char peer[MW_PEER_MAX];
	int fd, ret;

	for (;;) {
		fd = mw_net_connect(cfg->host, cfg->port, dl, peer,
				    sizeof(peer), err);
		if (fd != -ECONNREFUSED || !cfg->wait_s ||
		    mw_now_ns() >= wait_dl)
			break;
		nanosleep(&(struct timespec){ 0, 200000000L }, NULL);
	}
	if (fd < 0)
		return fd;
	mw_net_tune(fd, cfg->timeout_s);
	ret = mw_conn_init(c, fd, peer, tls);
	if (ret) {
		close(fd);
		c->fd = -1;
		return mw_err_set(err, ret, "%s", mw_strerror(ret));
	}
	ret = mw_conn_handshake(c, dl);
	if (ret)
		*err = c->err;
	return ret;
}

/* The answer against this sender's settings: what the session would
 * refuse, each with what to change. */
static int probe_check(const struct mw_xp_cfg *cfg,
		       const struct mw_probe_ok *ok, struct mw_err *err)
{
	uint64_t per = cfg->chunk_size +
		       (cfg->codec == MW_CODEC_NONE ?
				0 :
				mw_codec_bound(cfg->codec, cfg->chunk_size));

	if (ok->flags & MW_PROBE_BUSY)
		return mw_err_set(err, -MW_E_AUTH,
				  "the receiver already serves a session: "
				  "start a fresh migwire recv");
	if (ok->endpoints != cfg->nr_eps)
		return mw_err_set(
			err, -MW_E_USAGE,
			"the receiver has %u --connect endpoint%s and this "
			"sender %u --listen: they pair by position (none on "
			"both sides: exec: mode)",
			ok->endpoints, ok->endpoints == 1 ? "" : "s",
			cfg->nr_eps);
	if (cfg->nr_chans > ok->channels_max)
		return mw_err_set(err, -MW_E_USAGE,
				  "the receiver takes at most %u channels, "
				  "not --channels %u",
				  ok->channels_max, cfg->nr_chans);
	if (cfg->chunk_size > ok->chunk_max ||
	    ok->window / per < MW_RX_MIN_CREDIT)
		return mw_err_set(err, -MW_E_USAGE,
				  "--chunk-size %u does not fit the "
				  "receiver's --window of %llu bytes: give "
				  "it at least %llu, or a smaller chunk",
				  cfg->chunk_size,
				  (unsigned long long)ok->window,
				  (unsigned long long)(MW_RX_MIN_CREDIT * per));
	return 0;
}

/* PROBE out, PROBE_OK or ERROR back. */
static int probe_ask(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		     struct mw_probe_ok *ok, unsigned long long dl,
		     struct mw_err *err)
{
	uint8_t payload[MW_ERROR_MAX + 1];
	uint8_t raw[MW_PROBE_LEN];
	struct mw_probe pr = { .version = MW_PROTO_VERSION,
			       .flags = cfg->join_token_len ? MW_PROBE_F_TOKEN :
							      0 };
	struct mw_frame_hdr h = { .type = MW_FT_PROBE,
				  .wire_len = MW_PROBE_LEN };
	int ret;

	mw_probe_encode(raw, &pr);
	ret = mw_conn_send_frame(c, &h, raw, dl);
	if (!ret)
		ret = mw_conn_recv_frame(c, &h, payload, MW_ERROR_MAX, dl);
	if (!ret && h.type == MW_FT_CHALLENGE) {
		/* --join-token: the receiver answers only who proves it */
		ret = mw_join_answer(c, cfg, payload, raw, MW_PROBE_LEN, dl);
		if (!ret)
			ret = mw_conn_recv_frame(c, &h, payload, MW_ERROR_MAX,
						 dl);
	}
	if (ret == -MW_E_CLOSED)
		return mw_err_set(err, ret,
				  "the receiver closed the connection (TLS "
				  "or --no-tls mismatch, or credentials "
				  "rejected)");
	if (ret) {
		*err = c->err;
		return ret;
	}
	if (h.type == MW_FT_ERROR) {
		char text[MW_PEER_TEXT_MAX + 1];

		/* the receiver's words, escaped: they reach a terminal */
		mw_err_peer_text(text, sizeof(text), payload, h.wire_len);
		/* a version-1 receiver knows no PROBE and says so this way */
		return mw_err_set(err, -MW_E_PEER, "the receiver refused: %s%s",
				  text,
				  strstr(text, "not a migwire HELLO") ?
					  " (a migwire older than protocol "
					  "2? upgrade it)" :
					  "");
	}
	if (h.type != MW_FT_PROBE_OK ||
	    mw_probe_ok_decode(payload, h.wire_len, ok))
		return mw_err_set(err, -MW_E_PROTO,
				  "unexpected %s frame instead of PROBE_OK",
				  mw_frame_type_name(h.type));
	return 0;
}

int mw_xp_probe(const struct mw_xp_cfg *cfg, struct mw_xp_probe_res *res,
		struct mw_err *err)
{
	unsigned long long dl = mw_deadline_after(cfg->timeout_s);
	struct mw_tls_ctx *tls = NULL;
	struct mw_conn c = { .fd = -1 };
	struct mw_err e = { 0 };
	int ret;

	memset(res, 0, sizeof(*res));
	if (cfg->tls.mode != MW_TLS_OFF) {
		ret = mw_tls_ctx_new(&tls, &cfg->tls, err);
		if (ret)
			return ret;
	}
	ret = probe_connect(cfg, tls, &c, dl, &e);
	if (ret == -ECONNREFUSED) {
		mw_err_set(err, ret,
			   "receiver %s:%u: connection refused: no migwire "
			   "recv listens there (start it first, or give "
			   "--wait SECS)",
			   cfg->host, cfg->port);
		goto out;
	}
	if (c.fd < 0) { /* the connect's line names the address */
		*err = e;
		goto out;
	}
	if (!ret)
		ret = probe_ask(&c, cfg, &res->ok, dl, &e);
	if (!ret) {
		snprintf(res->peer, sizeof(res->peer), "%s", c.peer);
		snprintf(res->peer_id, sizeof(res->peer_id), "%s",
			 c.tls ? mw_tls_peer_id(c.tls) : "");
		ret = probe_check(cfg, &res->ok, &e);
	}
	if (ret)
		mw_err_set(err, ret, "receiver %s:%u: %s", cfg->host, cfg->port,
			   e.msg[0] ? e.msg : mw_strerror(ret));
out:
	mw_conn_destroy(&c);
	if (tls)
		mw_tls_ctx_free(tls);
	mw_tls_thread_stop();
	return ret;
}
