/* SPDX-License-Identifier: MIT */
/*
 * The receiver's admission rules for unauthenticated connections
 * (transport/preauth.c): who is evicted when a new connection comes, the
 * address keys, and the log line budget. fault_flood.py shows the rules
 * against real floods; this pins down each rule.
 */
#include <netdb.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "preauth.h"

static void key_of(const char *ip, uint8_t key[MW_PREAUTH_KEY_LEN])
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST }, *ai;
	struct sockaddr_storage ss;

	assert_int_equal(getaddrinfo(ip, NULL, &hints, &ai), 0);
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	mw_preauth_key(&ss, key);
}

static bool same_key(const char *a, const char *b)
{
	uint8_t ka[MW_PREAUTH_KEY_LEN], kb[MW_PREAUTH_KEY_LEN];

	key_of(a, ka);
	key_of(b, kb);
	return !memcmp(ka, kb, sizeof(ka));
}

static void keys(void **state)
{
	(void)state;
	assert_true(same_key("127.0.0.2", "::ffff:127.0.0.2"));
	assert_false(same_key("127.0.0.2", "127.0.0.3"));
	/* one host picks any address of its /64 */
	assert_true(same_key("2001:db8::1", "2001:db8::ffff:1"));
	assert_false(same_key("2001:db8::1", "2001:db8:0:1::1"));
	/* an IPv4 key is no IPv6 /64 */
	assert_false(same_key("0.0.0.0", "::"));
}

/* n entries: address "127.0.0.<host[i]>", accepted at t[i], heard[i] */
struct table {
	struct mw_preauth_ent e[MW_PREAUTH_MAX];
	struct mw_preauth_ent *p[MW_PREAUTH_MAX];
	unsigned n;
};

static void put(struct table *t, unsigned host, unsigned long long at,
		bool heard)
{
	char ip[32];

	snprintf(ip, sizeof(ip), "127.0.0.%u", host);
	memset(&t->e[t->n], 0, sizeof(t->e[t->n]));
	key_of(ip, t->e[t->n].key);
	t->e[t->n].t_accept = at;
	t->e[t->n].heard = heard;
	t->e[t->n].fd = -1;
	t->p[t->n] = &t->e[t->n];
	t->n++;
}

static int victim(struct table *t, unsigned host, const char *exempt,
		  unsigned per_addr, unsigned cap)
{
	uint8_t key[MW_PREAUTH_KEY_LEN], ex[MW_PREAUTH_KEY_LEN];
	char ip[32];

	snprintf(ip, sizeof(ip), "127.0.0.%u", host);
	key_of(ip, key);
	if (exempt)
		key_of(exempt, ex);
	return mw_preauth_victim(t->p, t->n, key, exempt ? ex : NULL, per_addr,
				 cap);
}

static void room_left(void **state)
{
	struct table t = { .n = 0 };

	(void)state;
	assert_int_equal(victim(&t, 1, NULL, 2, 4), -1);
	put(&t, 1, 10, false);
	put(&t, 2, 20, false);
	put(&t, 3, 30, false);
	assert_int_equal(victim(&t, 1, NULL, 2, 4), -1);
}

static void per_address(void **state)
{
	struct table t = { .n = 0 };

	(void)state;
	put(&t, 2, 10, true);  /* 0: the flood's, talking */
	put(&t, 1, 15, false); /* 1: another address, idle and older */
	put(&t, 2, 20, false); /* 2: the flood's, idle */
	put(&t, 2, 5, true);   /* 3: the flood's oldest, talking */
	/* address 2 is at its limit: it pays with its own idle one, not with
	 * the older idle one of address 1 */
	assert_int_equal(victim(&t, 2, NULL, 3, 64), 2);
	/* the session's source is not held to the limit */
	assert_int_equal(victim(&t, 2, "127.0.0.2", 3, 64), -1);
	/* among talking ones, the oldest */
	t.e[2].heard = true;
	assert_int_equal(victim(&t, 2, NULL, 3, 64), 3);
}

static void table_full(void **state)
{
	struct table t = { .n = 0 };

	(void)state;
	put(&t, 1, 50, true);  /* 0: the sender, mid-handshake */
	put(&t, 2, 10, true);  /* 1: half a ClientHello, old */
	put(&t, 3, 60, false); /* 2: idle, the newest */
	put(&t, 4, 20, false); /* 3: idle, older */
	/* the idle go first, the oldest of them */
	assert_int_equal(victim(&t, 5, NULL, 16, 4), 3);
	t.e[2].heard = t.e[3].heard = true;
	/* then the oldest of all */
	assert_int_equal(victim(&t, 5, NULL, 16, 4), 1);
	/* the sender's own address is spared while others hold places */
	t.e[0].t_accept = 1;
	assert_int_equal(victim(&t, 5, "127.0.0.1", 16, 4), 1);
	assert_int_equal(victim(&t, 5, NULL, 16, 4), 0);
}

static void table_add_evicts(void **state)
{
	struct table t = { .n = 0 };
	struct mw_preauth pre = { .cap = 3, .per_addr = 2 };
	unsigned i;

	(void)state;
	for (i = 0; i < 4; i++)
		put(&t, 9, 100 + i, false);
	for (i = 0; i < 4; i++)
		mw_preauth_add(&pre, t.p[i]);
	/* one address, two places: the first two were evicted in turn */
	assert_int_equal(pre.n, 2);
	assert_true(t.e[0].evicted && !t.e[0].in);
	assert_true(t.e[1].evicted && !t.e[1].in);
	assert_true(t.e[2].in && t.e[3].in);
	mw_preauth_drop(&pre, &t.e[2]);
	mw_preauth_drop(&pre, &t.e[2]);
	assert_int_equal(pre.n, 1);
	assert_false(t.e[2].evicted);
	mw_preauth_evict_worst(&pre);
	assert_int_equal(pre.n, 0);
	assert_true(t.e[3].evicted);
	mw_preauth_evict_worst(&pre); /* empty: nothing happens */
	assert_int_equal(pre.n, 0);
}

static void log_budget(void **state)
{
	struct mw_logrl rl = { .burst = 3 };
	unsigned long long s = 1000000000ull, t = 5 * s;
	unsigned quiet = 99, i;
	char buf[64];

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_true(mw_logrl_take(&rl, t, &quiet));
		assert_int_equal(quiet, 0);
	}
	for (i = 0; i < 10; i++)
		assert_false(mw_logrl_take(&rl, t + i * 1000, &quiet));
	/* a second on: one line, which says how many were held back */
	assert_true(mw_logrl_take(&rl, t + s, &quiet));
	assert_int_equal(quiet, 10);
	assert_false(mw_logrl_take(&rl, t + s + 1, &quiet));
	/* a long pause gives back the burst, no more */
	for (i = 0; i < 3; i++)
		assert_true(mw_logrl_take(&rl, t + 100 * s, &quiet));
	assert_false(mw_logrl_take(&rl, t + 100 * s, &quiet));
	assert_string_equal(mw_logrl_more(0, buf, sizeof(buf)), "");
	assert_string_equal(mw_logrl_more(4, buf, sizeof(buf)),
			    " (and 4 more since the last such line)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keys),
		cmocka_unit_test(room_left),
		cmocka_unit_test(per_address),
		cmocka_unit_test(table_full),
		cmocka_unit_test(table_add_evicts),
		cmocka_unit_test(log_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
