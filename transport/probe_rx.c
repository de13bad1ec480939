/* SPDX-License-Identifier: MIT */
/*
 * The receiver's side of the preflight (`migwire send --probe`, probe.c):
 * admit.c hands it a connection whose first frame is PROBE instead of
 * HELLO. Context: that connection's thread.
 */
#include "join.h"
#include "recv_int.h"

/*
 * A PROBE (docs/protocol.md): a sender's preflight asks whether this
 * receiver would take its session. TLS and --tls-authz have admitted the
 * peer already, and with --join-token it proves the token as a HELLO
 * does; the answer says what this receiver accepts, and the
 * connection closes without touching the session (not its first HELLO,
 * not a channel, not its timers). Returns MW_RX_PROBED or a code with the reason
 * in the connection's err (sent as ERROR).
 */
int mw_rx_probe_answer(struct rx_chan *ch, unsigned long long dl)
{
	struct receiver *r = ch->r;
	uint8_t payload[MW_PROBE_OK_LEN];
	struct mw_probe pr;
	struct mw_probe_ok ok = { .version = MW_PROTO_VERSION,
				  .endpoints = (uint16_t)r->cfg->nr_eps,
				  .channels_max = MW_CHANNELS_MAX,
				  .chunk_max = MW_CHUNK_MAX,
				  .window = r->cfg->window };
	struct mw_frame_hdr h = { .type = MW_FT_PROBE_OK,
				  .wire_len = MW_PROBE_OK_LEN };
	int ret = mw_conn_read(&ch->io.conn, payload, MW_PROBE_LEN, dl);

	if (ret)
		return ret;
	if (mw_probe_decode(payload, MW_PROBE_LEN, &pr))
		return mw_err_set(&ch->io.conn.err, -MW_E_PROTO,
				  "malformed PROBE");
	if (pr.version != MW_PROTO_VERSION)
		return mw_err_set(&ch->io.conn.err, -MW_E_AUTH,
				  "protocol version %u not supported (this "
				  "receiver speaks %u)",
				  pr.version, MW_PROTO_VERSION);
	/* with --join-token, what this receiver is doing is not a
	 * stranger's business: the same proof as a HELLO's, first */
	ret = mw_join_verify(&ch->io.conn, r->cfg, pr.version,
			     pr.flags & MW_PROBE_F_TOKEN, payload, MW_PROBE_LEN,
			     dl);
	if (ret)
		return ret;
	pthread_mutex_lock(&r->lock);
	ok.flags = r->have_session ? MW_PROBE_BUSY : 0;
	pthread_mutex_unlock(&r->lock);
	mw_probe_ok_encode(payload, &ok);
	ret = mw_conn_send_frame(&ch->io.conn, &h, payload, dl);
	return ret ? ret : MW_RX_PROBED;
}
