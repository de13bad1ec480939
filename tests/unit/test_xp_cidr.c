/* SPDX-License-Identifier: MIT */
/*
 * recv --allow-from: mw_cidr_parse() and mw_cidr_match() (transport/net.c).
 * The integration test (admission.py) shows a refusal from 127.0.0.2; this
 * covers the prefixes, IPv6 and the IPv4-mapped peers of a dual-stack
 * listener.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net.h"

static struct sockaddr_storage peer(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	}
	return ss;
}

static bool allowed(const char *cidr, const char *ip)
{
	struct sockaddr_storage ss = peer(ip);
	struct mw_cidr c;

	assert_int_equal(mw_cidr_parse(cidr, &c), 0);
	return mw_cidr_match(&c, 1, &ss);
}

static void cidr_parse(void **state)
{
	static const char *const bad[] = {
		"",
		"/8",
		"10.0.0.0/33",
		"10.0.0/8",
		"::1/129",
		"10.0.0.0/",
		"10.0.0.0/x",
		"host.example",
		"10.0.0.0/-1",
		"1.2.3.4/8/9",
	};
	struct mw_cidr c;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mw_cidr_parse(bad[i], &c), -EINVAL);
	assert_int_equal(mw_cidr_parse("127.0.0.1", &c), 0);
	assert_int_equal(c.bits, 32);
	assert_int_equal(mw_cidr_parse("fd00::/8", &c), 0);
	assert_int_equal(c.af, AF_INET6);
	assert_int_equal(c.bits, 8);
	assert_int_equal(mw_cidr_parse("0.0.0.0/0", &c), 0);
}

static void cidr_match(void **state)
{
	struct mw_cidr two[2];
	struct sockaddr_storage ss;

	(void)state;
	assert_true(allowed("127.0.0.1/32", "127.0.0.1"));
	assert_false(allowed("127.0.0.1/32", "127.0.0.2"));
	assert_true(allowed("10.1.0.0/16", "10.1.255.7"));
	assert_false(allowed("10.1.0.0/16", "10.2.0.1"));
	assert_true(allowed("10.1.2.128/25", "10.1.2.200"));
	assert_false(allowed("10.1.2.128/25", "10.1.2.127"));
	assert_true(allowed("0.0.0.0/0", "192.0.2.1"));
	/* a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d */
	assert_true(allowed("192.0.2.0/24", "::ffff:192.0.2.9"));
	assert_false(allowed("192.0.2.0/24", "::ffff:198.51.100.9"));
	assert_true(allowed("fd00::/8", "fd12:3456::1"));
	assert_false(allowed("fd00::/8", "fe80::1"));
	assert_true(allowed("::1/128", "::1"));
	assert_false(allowed("::1/128", "127.0.0.1"));
	assert_false(allowed("127.0.0.0/8", "::1"));
	assert_true(allowed("2001:db8::/33", "2001:db8:7fff::1"));
	assert_false(allowed("2001:db8::/33", "2001:db8:8000::1"));
	/* any of several */
	assert_int_equal(mw_cidr_parse("10.0.0.0/8", &two[0]), 0);
	assert_int_equal(mw_cidr_parse("::1", &two[1]), 0);
	ss = peer("::1");
	assert_true(mw_cidr_match(two, 2, &ss));
	ss = peer("11.0.0.1");
	assert_false(mw_cidr_match(two, 2, &ss));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cidr_parse),
		cmocka_unit_test(cidr_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
