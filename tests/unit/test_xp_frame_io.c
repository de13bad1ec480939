/* SPDX-License-Identifier: MIT */
/*
 * frame_io/reader, frame_io/writer, frame_io/conn: the incremental frame
 * reader fed at every split of headers and payloads, byte by byte and in
 * seeded random pieces (honours MW_TEST_SEED); headers mw_frame_hdr_decode
 * refuses (bad magic, lengths over the bound) refused for good; the writer
 * in plaintext; and whole connections over a socketpair, plaintext and TLS
 * (PSK), through the channel loops' receive calls and the blocking paths.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "frame_io.h"
#include "mw_err.h"
#include "mw_thread.h"
#include "mw_wire.h"
#include "session.h"

#define MAXP 4096u
#define NFRAMES 4

static uint64_t seed;

static uint64_t rnd_next(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

/* What the callbacks saw: each frame's header and payload. */
struct sink {
	struct mw_frame_hdr h[16];
	uint8_t pay[16][MAXP + 1];
	unsigned nhdr, nframes;
	int stop_after; /* frame returns 1 after this many frames; 0: never */
	bool refuse_data;
	bool skip_data; /* DATA payloads are read and dropped */
};

static int sink_header(void *opaque, const struct mw_frame_hdr *h,
		       uint8_t **dst)
{
	struct sink *s = opaque;

	assert_true(s->nhdr < 16);
	if (s->refuse_data && h->type == MW_FT_DATA)
		return -MW_E_PROTO;
	s->h[s->nhdr] = *h;
	*dst = s->skip_data && h->type == MW_FT_DATA ? mw_frame_rd_skip :
						       s->pay[s->nhdr];
	s->nhdr++;
	return 0;
}

static int sink_frame(void *opaque, const struct mw_frame_hdr *h)
{
	struct sink *s = opaque;

	assert_int_equal(s->nframes + 1, s->nhdr);
	assert_int_equal(h->type, s->h[s->nframes].type);
	s->nframes++;
	return s->stop_after && (int)s->nframes == s->stop_after ? 1 : 0;
}

static const struct mw_frame_rd_ops sink_ops = {
	.header = sink_header,
	.frame = sink_frame,
};

/* A stream of NFRAMES frames: raw DATA, PING (no payload), ERROR, END. */
struct stream {
	struct mw_frame_hdr h[NFRAMES];
	uint8_t pay[NFRAMES][MAXP];
	uint8_t bytes[NFRAMES * (MW_FRAME_HDR_LEN + MAXP)];
	size_t len;
};

static void stream_make(struct stream *st)
{
	static const struct mw_frame_hdr hs[NFRAMES] = {
		{ .type = MW_FT_DATA,
		  .flags = MW_F_RAW,
		  .stream = 3,
		  .raw_len = 300,
		  .wire_len = 300,
		  .seq = 9,
		  .csum = 0x1122334455667788ull },
		{ .type = MW_FT_PING, .stream = 3, .seq = 77 },
		{ .type = MW_FT_ERROR, .wire_len = 17 },
		{ .type = MW_FT_END, .stream = 1, .wire_len = MW_END_LEN },
	};
	unsigned i, j;

	st->len = 0;
	for (i = 0; i < NFRAMES; i++) {
		st->h[i] = hs[i];
		for (j = 0; j < hs[i].wire_len; j++)
			st->pay[i][j] = (uint8_t)(i * 31 + j * 7);
		mw_frame_hdr_encode(st->bytes + st->len, &hs[i]);
		st->len += MW_FRAME_HDR_LEN;
		memcpy(st->bytes + st->len, st->pay[i], hs[i].wire_len);
		st->len += hs[i].wire_len;
	}
}

/* the one stream and sink every test uses (made in setup, reset per use) */
static struct stream st;
static struct sink s;

/* An empty sink and a reader at a frame boundary that feeds it. */
static void reader_reset(struct mw_frame_rd *rd, struct mw_err *err)
{
	memset(&s, 0, sizeof(s));
	mw_frame_rd_init(rd, MAXP, &sink_ops, &s, err, "bad");
}

/* the sink saw exactly the stream's frames */
static void sink_check(void)
{
	unsigned i;

	assert_int_equal(s.nframes, NFRAMES);
	for (i = 0; i < NFRAMES; i++) {
		assert_int_equal(s.h[i].type, st.h[i].type);
		assert_int_equal(s.h[i].stream, st.h[i].stream);
		assert_int_equal(s.h[i].wire_len, st.h[i].wire_len);
		assert_true(s.h[i].seq == st.h[i].seq);
		assert_true(s.h[i].csum == st.h[i].csum);
		assert_memory_equal(s.pay[i], st.pay[i], st.h[i].wire_len);
	}
}

/* ---- reader ---- */

static void split_everywhere(void **state)
{
	struct mw_frame_rd rd;
	struct mw_err err = { 0 };
	size_t k, used;

	(void)state;
	for (k = 0; k <= st.len; k++) {
		reader_reset(&rd, &err);
		assert_int_equal(mw_frame_rd_feed(&rd, st.bytes, k, &used), 0);
		assert_int_equal(used, k);
		assert_int_equal(mw_frame_rd_feed(&rd, st.bytes + k, st.len - k,
						  &used),
				 0);
		assert_int_equal(used, st.len - k);
		sink_check();
	}
}

static void byte_by_byte(void **state)
{
	struct mw_frame_rd rd;
	struct mw_err err = { 0 };
	size_t off;

	(void)state;
	reader_reset(&rd, &err);
	for (off = 0; off < st.len; off++) {
		size_t want;
		uint8_t *dst = mw_frame_rd_want(&rd, &want);

		assert_true(want > 0);
		*dst = st.bytes[off];
		assert_int_equal(mw_frame_rd_commit(&rd, 1), 0);
	}
	sink_check();
	assert_true(rd.payload_bytes == 300 + 17 + MW_END_LEN);
}

/* want never offers more than the rest of the header or payload */
static void random_pieces(void **state)
{
	struct mw_frame_rd rd;
	struct mw_err err = { 0 };
	unsigned round;

	(void)state;
	for (round = 0; round < 200; round++) {
		size_t off = 0;

		reader_reset(&rd, &err);
		while (off < st.len) {
			size_t want, n = 1 + rnd_next() % 64;
			uint8_t *dst = mw_frame_rd_want(&rd, &want);

			assert_true(off + want <= st.len);
			if (n > want)
				n = want;
			memcpy(dst, st.bytes + off, n);
			off += n;
			assert_int_equal(mw_frame_rd_commit(&rd, n), 0);
		}
		sink_check();
	}
}

/* A payload the header callback skips goes through the reader's scratch
 * room, in pieces no larger than it, and the frames after it are whole. */
static void skip_payload(void **state)
{
	enum { BIG = 3 * MW_FRAME_RD_SKIP_ROOM + 5 };
	static uint8_t buf[2 * MW_FRAME_HDR_LEN + BIG + MW_END_LEN];
	struct mw_frame_hdr d = { .type = MW_FT_DATA,
				  .flags = MW_F_RAW | MW_F_RESENT,
				  .raw_len = BIG,
				  .wire_len = BIG,
				  .seq = 4 },
			    e = { .type = MW_FT_END, .wire_len = MW_END_LEN };
	struct mw_frame_rd rd;
	struct mw_err err = { 0 };
	size_t len = 0, off = 0;
	unsigned round;

	(void)state;
	mw_frame_hdr_encode(buf, &d);
	len = MW_FRAME_HDR_LEN;
	memset(buf + len, 0x77, BIG);
	len += BIG;
	mw_frame_hdr_encode(buf + len, &e);
	len += MW_FRAME_HDR_LEN;
	memset(buf + len, 0x42, MW_END_LEN);
	len += MW_END_LEN;
	for (round = 0; round < 20; round++) {
		memset(&s, 0, sizeof(s));
		s.skip_data = true;
		mw_frame_rd_init(&rd, BIG, &sink_ops, &s, &err, "bad");
		for (off = 0; off < len;) {
			size_t want, n = 1 + rnd_next() % 9000;
			uint8_t *dst = mw_frame_rd_want(&rd, &want);

			assert_non_null(dst);
			assert_true(want <= MW_FRAME_RD_SKIP_ROOM ||
				    !rd.skipping);
			if (n > want)
				n = want;
			memcpy(dst, buf + off, n);
			off += n;
			assert_int_equal(mw_frame_rd_commit(&rd, n), 0);
		}
		assert_int_equal(s.nframes, 2);
		assert_int_equal(s.h[0].type, MW_FT_DATA);
		assert_int_equal(s.pay[0][0], 0); /* nothing landed there */
		assert_int_equal(s.h[1].type, MW_FT_END);
		assert_int_equal(s.pay[1][0], 0x42);
		assert_int_equal(s.pay[1][MW_END_LEN - 1], 0x42);
		assert_true(rd.payload_bytes == BIG + MW_END_LEN);
		mw_frame_rd_release(&rd);
	}
}

/* The reader refuses hdr with its caller's text, before any callback. */
static void refuse_hdr(uint8_t *hdr)
{
	struct mw_frame_rd rd;
	struct mw_err err = { 0 };
	size_t used;

	reader_reset(&rd, &err);
	assert_int_equal(mw_frame_rd_feed(&rd, hdr, MW_FRAME_HDR_LEN, &used),
			 -MW_E_PROTO);
	assert_int_equal(s.nhdr, 0);
	assert_string_equal(err.msg, "bad");
	assert_int_equal(err.code, -MW_E_PROTO);
	/* refused for good: later commits return the same error */
	assert_int_equal(mw_frame_rd_commit(&rd, 0), -MW_E_PROTO);
}

static void rejects(void **state)
{
	struct mw_frame_hdr h = { .type = MW_FT_DATA,
				  .flags = MW_F_RAW,
				  .raw_len = MAXP + 1,
				  .wire_len = MAXP + 1 };
	uint8_t hdr[MW_FRAME_HDR_LEN];

	(void)state;
	mw_frame_hdr_encode(hdr, &h);
	refuse_hdr(hdr); /* payload over the bound */
	h.raw_len = h.wire_len = UINT32_MAX;
	mw_frame_hdr_encode(hdr, &h);
	refuse_hdr(hdr); /* a payload of 4 GiB */
	h = (struct mw_frame_hdr){ .type = MW_FT_ERROR,
				   .wire_len = MW_ERROR_MAX + 1 };
	mw_frame_hdr_encode(hdr, &h);
	refuse_hdr(hdr); /* ERROR over its own limit */
	h = (struct mw_frame_hdr){ .type = MW_FT_PING };
	mw_frame_hdr_encode(hdr, &h);
	hdr[0] ^= 0xff;
	refuse_hdr(hdr); /* bad magic */
}

static void callback_refuses_and_stops(void **state)
{
	struct mw_frame_rd rd;
	struct mw_err err = { 0 };
	size_t used;

	(void)state;
	reader_reset(&rd, &err);
	s.refuse_data = true;
	assert_int_equal(mw_frame_rd_feed(&rd, st.bytes, st.len, &used),
			 -MW_E_PROTO);
	assert_int_equal(used, MW_FRAME_HDR_LEN);
	assert_int_equal(s.nframes, 0);
	/* a positive frame return stops right after that frame */
	reader_reset(&rd, &err);
	s.stop_after = 1;
	assert_int_equal(mw_frame_rd_feed(&rd, st.bytes, st.len, &used), 1);
	assert_int_equal(used, MW_FRAME_HDR_LEN + 300);
	s.stop_after = 0;
	assert_int_equal(mw_frame_rd_feed(&rd, st.bytes + used, st.len - used,
					  &used),
			 0);
	sink_check();
}

static void overrun_refused(void **state)
{
	struct mw_frame_rd rd;
	struct mw_err err = { 0 };

	(void)state;
	reader_reset(&rd, &err);
	assert_int_equal(mw_frame_rd_commit(&rd, MW_FRAME_HDR_LEN + 1),
			 -EFAULT);
}

/* ---- writer ---- */

/* Lost (the sender may resume) or final: the one predicate both sides use */
static void resumable_errors(void **state)
{
	static const int lost[] = { -MW_E_CLOSED,  -MW_E_TIMEOUT, -ECONNRESET,
				    -EPIPE,	   -ETIMEDOUT,	  -ECONNABORTED,
				    -EHOSTUNREACH, -ENETUNREACH,  -ENETDOWN };
	static const int final[] = {
		0,	     -MW_E_PEER,    -MW_E_AUTH,	  -MW_E_TLS,
		-MW_E_PROTO, -MW_E_CORRUPT, -MW_E_CANCEL, -ENOMEM,
		-EBADF,	     -ECONNREFUSED
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lost) / sizeof(lost[0]); i++)
		assert_true(mw_err_resumable(lost[i]));
	for (i = 0; i < sizeof(final) / sizeof(final[0]); i++)
		assert_false(mw_err_resumable(final[i]));
}

static void writer_plain(void **state)
{
	static const uint8_t pay[5] = "hello";
	struct mw_frame_hdr h = { .type = MW_FT_ERROR, .wire_len = 5 };
	struct mw_frame_hdr back;
	struct mw_frame_wr w;
	struct mw_err err = { 0 };

	(void)state;
	mw_frame_wr_init(&w, NULL, NULL, 0, &err);
	assert_int_equal(mw_frame_wr_put(&w, &h, pay), MW_FRAME_HDR_LEN + 5);
	assert_ptr_equal(w.iov[0].iov_base, w.hdr);
	assert_int_equal(w.iov[0].iov_len, MW_FRAME_HDR_LEN);
	assert_ptr_equal(w.iov[1].iov_base, pay); /* borrowed, not copied */
	assert_int_equal(w.iov[1].iov_len, 5);
	assert_int_equal(
		mw_frame_hdr_decode(w.hdr, MW_FRAME_HDR_LEN, 64, &back), 0);
	assert_int_equal(back.wire_len, 5);
	h = (struct mw_frame_hdr){ .type = MW_FT_PING, .seq = 5 };
	assert_int_equal(mw_frame_wr_put(&w, &h, NULL), MW_FRAME_HDR_LEN);
	assert_int_equal(w.iov[1].iov_len, 0);
}

/* ---- connections over a socketpair ---- */

static char psk_dir[64], psk_file[128];

struct pair {
	struct mw_tls_ctx *cctx, *sctx;
	struct mw_conn snd, rcv;
	int hs_ret;
};

static void *server_hs(void *arg)
{
	struct pair *p = arg;

	p->hs_ret = mw_conn_handshake(&p->rcv, mw_deadline_after(10));
	mw_tls_thread_stop();
	return NULL;
}

static void pair_open(struct pair *p, bool tls)
{
	int sv[2];

	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	if (tls) {
		struct mw_tls_cfg cc = { .mode = MW_TLS_PSK,
					 .psk_file = psk_file };
		struct mw_tls_cfg sc = { .mode = MW_TLS_PSK,
					 .server = true,
					 .psk_file = psk_file };
		struct mw_err err = { 0 };
		pthread_t th;

		assert_int_equal(mw_tls_ctx_new(&p->cctx, &cc, &err), 0);
		assert_int_equal(mw_tls_ctx_new(&p->sctx, &sc, &err), 0);
		assert_int_equal(mw_conn_init(&p->snd, sv[0], "s", p->cctx), 0);
		assert_int_equal(mw_conn_init(&p->rcv, sv[1], "r", p->sctx), 0);
		assert_int_equal(pthread_create(&th, NULL, server_hs, p), 0);
		assert_int_equal(
			mw_conn_handshake(&p->snd, mw_deadline_after(10)), 0);
		pthread_join(th, NULL);
		assert_int_equal(p->hs_ret, 0);
	} else {
		assert_int_equal(mw_conn_init(&p->snd, sv[0], "s", NULL), 0);
		assert_int_equal(mw_conn_init(&p->rcv, sv[1], "r", NULL), 0);
	}
}

static void pair_close(struct pair *p)
{
	mw_conn_destroy(&p->snd);
	mw_conn_destroy(&p->rcv);
	if (p->cctx)
		mw_tls_ctx_free(p->cctx);
	if (p->sctx)
		mw_tls_ctx_free(p->sctx);
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

/*
 * The sender's writer puts the stream's frames on the socket; the
 * receiver runs what the channel loops run: rx_room, a recv of at most a
 * few bytes (so records and frames split everywhere), rx_commit, rx_drain.
 */
static void conn_stream(bool tls, bool direct)
{
	static uint8_t sealed[2 * MAXP];
	struct pair p;
	struct mw_frame_wr w;
	unsigned i;

	memset(&s, 0, sizeof(s));
	pair_open(&p, tls);
	mw_frame_wr_init(&w, p.snd.tls, sealed, sizeof(sealed), &p.snd.err);
	for (i = 0; i < NFRAMES; i++) {
		ssize_t n = mw_frame_wr_put(&w, &st.h[i], st.pay[i]);

		assert_true(n > 0);
		write_all(p.snd.fd, w.iov[0].iov_base, w.iov[0].iov_len);
		write_all(p.snd.fd, w.iov[1].iov_base, w.iov[1].iov_len);
	}
	shutdown(p.snd.fd, SHUT_WR);
	mw_conn_rx_start(&p.rcv, &sink_ops, &s, MAXP, "bad", direct);
	for (;;) {
		size_t len, cap = 1 + rnd_next() % 97;
		uint8_t *dst = mw_conn_rx_room(&p.rcv, &len);
		bool closed;
		ssize_t r;

		r = recv(p.rcv.fd, dst, len < cap ? len : cap, 0);
		assert_true(r >= 0);
		if (!r)
			break;
		assert_int_equal(mw_conn_rx_commit(&p.rcv, (size_t)r), 0);
		assert_int_equal(mw_conn_rx_drain(&p.rcv, &closed), 0);
		assert_false(closed);
	}
	sink_check();
	pair_close(&p);
}

static void conn_plain_buffered(void **state)
{
	(void)state;
	conn_stream(false, false);
}

static void conn_plain_direct(void **state)
{
	(void)state;
	conn_stream(false, true);
}

static void conn_tls(void **state)
{
	(void)state;
	conn_stream(true, true);
}

/* mw_conn_send_frame / mw_conn_recv_frame: one frame each, the rest stays */
static void conn_blocking(bool tls)
{
	static const char text[] = "receiver says no";
	uint8_t buf[MW_ERROR_MAX + 1];
	struct mw_frame_hdr h = { .type = MW_FT_ERROR,
				  .wire_len = sizeof(text) - 1 };
	struct mw_frame_hdr got;
	struct pair p;
	unsigned long long dl = mw_deadline_after(10);

	memset(buf, 'x', sizeof(buf));
	pair_open(&p, tls);
	assert_int_equal(mw_conn_send_frame(&p.snd, &h, text, dl), 0);
	h = (struct mw_frame_hdr){ .type = MW_FT_PING, .seq = 3 };
	assert_int_equal(mw_conn_send_frame(&p.snd, &h, NULL, dl), 0);
	assert_int_equal(
		mw_conn_recv_frame(&p.rcv, &got, buf, MW_ERROR_MAX, dl), 0);
	assert_int_equal(got.type, MW_FT_ERROR);
	assert_memory_equal(buf, text, sizeof(text) - 1);
	assert_int_equal(
		mw_conn_recv_frame(&p.rcv, &got, buf, MW_ERROR_MAX, dl), 0);
	assert_int_equal(got.type, MW_FT_PING);
	assert_true(got.seq == 3);
	/* a header over the bound: the setup path's own words */
	h = (struct mw_frame_hdr){ .type = MW_FT_ERROR, .wire_len = 100 };
	assert_int_equal(mw_conn_send_frame(&p.snd, &h, buf, dl), 0);
	assert_int_equal(mw_conn_recv_frame(&p.rcv, &got, buf, 50, dl),
			 -MW_E_PROTO);
	assert_string_equal(p.rcv.err.msg,
			    "malformed frame header (not a migwire peer?)");
	pair_close(&p);
}

static void blocking_plain(void **state)
{
	(void)state;
	conn_blocking(false);
}

static void blocking_tls(void **state)
{
	(void)state;
	conn_blocking(true);
}

static int setup(void **state)
{
	const char *env = getenv("MW_TEST_SEED");
	const char *base = getenv("MW_TEST_TMP");
	FILE *f;

	(void)state;
	stream_make(&st);
	seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	if (!seed)
		seed = 1;
	fprintf(stderr, "MW_TEST_SEED=%llu\n", (unsigned long long)seed);
	snprintf(psk_dir, sizeof(psk_dir), "%s/fio.XXXXXX",
		 base && strlen(base) < 40 ? base : "/tmp");
	if (!mkdtemp(psk_dir))
		return -1;
	snprintf(psk_file, sizeof(psk_file), "%s/keys.psk", psk_dir);
	f = fopen(psk_file, "w");
	if (!f)
		return -1;
	fputs("qemu:00112233445566778899aabbccddeeff"
	      "00112233445566778899aabbccddeeff\n",
	      f);
	return fclose(f);
}

static int teardown(void **state)
{
	(void)state;
	unlink(psk_file);
	rmdir(psk_dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(split_everywhere),
		cmocka_unit_test(byte_by_byte),
		cmocka_unit_test(random_pieces),
		cmocka_unit_test(rejects),
		cmocka_unit_test(callback_refuses_and_stops),
		cmocka_unit_test(skip_payload),
		cmocka_unit_test(resumable_errors),
		cmocka_unit_test(overrun_refused),
		cmocka_unit_test(writer_plain),
		cmocka_unit_test(conn_plain_buffered),
		cmocka_unit_test(conn_plain_direct),
		cmocka_unit_test(conn_tls),
		cmocka_unit_test(blocking_plain),
		cmocka_unit_test(blocking_tls),
	};

	return cmocka_run_group_tests_name("frame_io", tests, setup, teardown);
}
