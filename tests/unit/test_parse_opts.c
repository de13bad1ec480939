/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the command-line value parsers (common/mw_parse.c): sizes
 * with binary suffixes and rates, bounded integers, CPU lists and
 * host:port endpoints. Each accepted spelling gives the exact value; each
 * rejected one gives the documented error and leaves the output untouched.
 * Also send's --to paths through the command's own parser (tools/cli.h):
 * comma lists, repeated --to, a path given twice and more than
 * MW_PATHS_MAX refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"
#include "mw_err.h"
#include "mw_parse.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define TIB (1ull << 40)

/* ---- mw_parse_size ---- */

static void size_ok(const char *s, uint64_t want)
{
	uint64_t v = 0xdeadbeef;

	if (mw_parse_size(s, &v) != 0)
		fail_msg("mw_parse_size(\"%s\") refused", s);
	if (v != want)
		fail_msg("mw_parse_size(\"%s\") = %llu, want %llu", s,
			 (unsigned long long)v, (unsigned long long)want);
}

static void size_bad(const char *s, int want)
{
	uint64_t v = 0xdeadbeef;
	int ret = mw_parse_size(s, &v);

	if (ret != want)
		fail_msg("mw_parse_size(\"%s\") = %d, want %d",
			 s ? s : "(null)", ret, want);
	assert_true(v == 0xdeadbeef);
}

static void size_plain_and_suffixes(void **state)
{
	(void)state;
	size_ok("0", 0);
	size_ok("1", 1);
	size_ok("123", 123);
	size_ok("007", 7);
	size_ok("64K", 64 * KIB);
	size_ok("64k", 64 * KIB);
	size_ok("4M", 4 * MIB);
	size_ok("4m", 4 * MIB);
	size_ok("1G", GIB);
	size_ok("3g", 3 * GIB);
	size_ok("2T", 2 * TIB);
	size_ok("2t", 2 * TIB);
	size_ok("0M", 0);
}

static void size_kib_bytes_and_rates(void **state)
{
	(void)state;
	size_ok("1KiB", KIB);
	size_ok("16MiB", 16 * MIB);
	size_ok("2GiB", 2 * GIB);
	size_ok("1TiB", TIB);
	size_ok("256KB", 256 * KIB);
	size_bad("256kb", -EDOM); /* b is bits: never silently bytes */
	size_bad("1Gb", -EDOM);
	size_bad("1Gb/s", -EDOM);
	size_bad("8b", -EDOM);
	size_ok("512B", 512);
	size_ok("100M/s", 100 * MIB);
	size_ok("100MB/s", 100 * MIB);
	size_ok("1GiB/s", GIB);
	size_ok("1000/s", 1000);
	size_bad("1iB", -EINVAL); /* "i" only after a multiplier */
	size_bad("1KiBB", -EINVAL);
	size_bad("1M/", -EINVAL);
	size_bad("1M/S", -EINVAL);
	size_bad("1M/s/s", -EINVAL);
	size_bad("1M/h", -EINVAL);
}

static void size_overflow(void **state)
{
	(void)state;
	size_ok("18446744073709551615", UINT64_MAX);
	size_bad("18446744073709551616", -ERANGE);
	size_bad("99999999999999999999999", -ERANGE);
	size_ok("16777215T", 16777215ull * TIB);
	size_bad("16777216T", -ERANGE); /* exactly 2^64 */
	size_bad("17179869184G", -ERANGE);
	size_ok("17179869183G", 17179869183ull * GIB);
	size_bad("18446744073709551615K", -ERANGE);
}

static void size_junk_empty_negative(void **state)
{
	(void)state;
	size_bad(NULL, -EINVAL);
	size_bad("", -EINVAL);
	size_bad("-1", -EINVAL);
	size_bad("-1M", -EINVAL);
	size_bad("+1", -EINVAL);
	size_bad(" 1", -EINVAL);
	size_bad("1 ", -EINVAL);
	size_bad("1 M", -EINVAL);
	size_bad("M", -EINVAL);
	size_bad("K1", -EINVAL);
	size_bad("1.5M", -EINVAL);
	size_bad("0x10", -EINVAL);
	size_bad("12x", -EINVAL);
	size_bad("1P", -EINVAL);
	size_bad("1MM", -EINVAL);
	size_bad("1e6", -EINVAL);
}

/* ---- mw_parse_rate ---- */

static void rate_ok(const char *s, uint64_t want)
{
	uint64_t v = 0xdeadbeef;

	if (mw_parse_rate(s, &v) != 0)
		fail_msg("mw_parse_rate(\"%s\") refused", s);
	if (v != want)
		fail_msg("mw_parse_rate(\"%s\") = %llu, want %llu", s,
			 (unsigned long long)v, (unsigned long long)want);
}

static void rate_bad(const char *s, int want)
{
	uint64_t v = 0xdeadbeef;
	int ret = mw_parse_rate(s, &v);

	if (ret != want)
		fail_msg("mw_parse_rate(\"%s\") = %d, want %d",
			 s ? s : "(null)", ret, want);
	assert_true(v == 0xdeadbeef);
}

static void rate_bytes_and_bits(void **state)
{
	(void)state;
	/* bytes, binary multiples: as --window and mw_parse_size */
	rate_ok("100M", 100 * MIB);
	rate_ok("100MiB/s", 100 * MIB);
	rate_ok("1G", GIB);
	/* bits, decimal multiples: as tc and iperf3 */
	rate_ok("800bit", 100);
	rate_ok("100kbit", 12500);
	rate_ok("100Mbit", 12500000);
	rate_ok("100mbit", 12500000);
	rate_ok("1Gbit", 125000000);
	rate_ok("10Gbit/s", 1250000000);
	rate_ok("2Tbit", 250000000000ull);
	/* a bare lowercase b is ambiguous and refused */
	rate_bad("1Gb", -EDOM);
	rate_bad("100Mb/s", -EDOM);
	rate_bad("1Gbits", -EINVAL);
	rate_bad("1GBit", -EINVAL);
	rate_bad("Gbit", -EINVAL);
	rate_bad("1Gbit/", -EINVAL);
	rate_bad("99999999999999999999Gbit", -ERANGE);
}

/* ---- mw_parse_u32 ---- */

static void u32_bad(const char *s, uint32_t min, uint32_t max, int want)
{
	uint32_t v = 0xabcd;
	int ret = mw_parse_u32(s, min, max, &v);

	if (ret != want)
		fail_msg("mw_parse_u32(\"%s\", %u, %u) = %d, want %d",
			 s ? s : "(null)", min, max, ret, want);
	assert_int_equal(v, 0xabcd);
}

static void u32_ranges(void **state)
{
	uint32_t v = 0;

	(void)state;
	assert_int_equal(mw_parse_u32("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(mw_parse_u32("1", 1, 64, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(mw_parse_u32("64", 1, 64, &v), 0);
	assert_int_equal(v, 64);
	assert_int_equal(mw_parse_u32("0064", 1, 64, &v), 0);
	assert_int_equal(v, 64);
	assert_int_equal(mw_parse_u32("4294967295", 0, UINT32_MAX, &v), 0);
	assert_int_equal(v, UINT32_MAX);
	assert_int_equal(mw_parse_u32("7", 7, 7, &v), 0);
	assert_int_equal(v, 7);

	u32_bad("0", 1, 64, -ERANGE);
	u32_bad("65", 1, 64, -ERANGE);
	u32_bad("6", 7, 7, -ERANGE);
	u32_bad("8", 7, 7, -ERANGE);
	u32_bad("4294967296", 0, UINT32_MAX, -ERANGE);
	u32_bad("99999999999999999999999999", 0, UINT32_MAX, -ERANGE);
}

static void u32_junk(void **state)
{
	(void)state;
	u32_bad(NULL, 0, 10, -EINVAL);
	u32_bad("", 0, 10, -EINVAL);
	u32_bad("-1", 0, 10, -EINVAL);
	u32_bad("+1", 0, 10, -EINVAL);
	u32_bad(" 1", 0, 10, -EINVAL);
	u32_bad("1 ", 0, 10, -EINVAL);
	u32_bad("1x", 0, 10, -EINVAL);
	u32_bad("1K", 0, 10000, -EINVAL);
	u32_bad("0x1", 0, 10, -EINVAL);
	u32_bad("1.0", 0, 10, -EINVAL);
}

/* ---- mw_parse_cpus ---- */

static void cpus_ok(const char *s, const uint16_t *want, unsigned n)
{
	static struct mw_cpus c;
	unsigned i;

	memset(&c, 0xff, sizeof(c));
	if (mw_parse_cpus(s, &c) != 0)
		fail_msg("mw_parse_cpus(\"%s\") refused", s);
	if (c.n != n)
		fail_msg("mw_parse_cpus(\"%s\"): %u cpus, want %u", s, c.n, n);
	for (i = 0; i < n; i++)
		if (c.cpu[i] != want[i])
			fail_msg("mw_parse_cpus(\"%s\")[%u] = %u, want %u", s,
				 i, c.cpu[i], want[i]);
}

static void cpus_bad(const char *s, int want)
{
	static struct mw_cpus c;
	int ret;

	memset(&c, 0x5a, sizeof(c));
	ret = mw_parse_cpus(s, &c);
	if (ret != want)
		fail_msg("mw_parse_cpus(\"%s\") = %d, want %d",
			 s ? s : "(null)", ret, want);
	assert_int_equal(c.n, 0x5a5a);
}

static void cpus_lists(void **state)
{
	static const uint16_t a[] = { 0, 1, 2, 3, 8 };
	static const uint16_t b[] = { 0 };
	static const uint16_t c[] = { 1023 };
	static const uint16_t d[] = { 0, 1, 2, 3, 4, 7 };
	static const uint16_t e[] = { 5 };
	static const uint16_t f[] = { 4, 5, 6, 7, 12 };

	(void)state;
	cpus_ok("0-3,8", a, 5);
	cpus_ok("0", b, 1);
	cpus_ok("1023", c, 1);
	cpus_ok("7,3-4,0-2", d, 6); /* any order, sorted on output */
	cpus_ok("5,5,5-5", e, 1);   /* duplicates folded */
	cpus_ok("4-7,12,6", f, 5);
	cpus_ok("0-3,1-2,8,3", a, 5);
}

static void cpus_full_range(void **state)
{
	static struct mw_cpus c;
	unsigned i;

	(void)state;
	assert_int_equal(mw_parse_cpus("0-1023", &c), 0);
	assert_int_equal(c.n, MW_CPUS_MAX);
	for (i = 0; i < MW_CPUS_MAX; i++)
		assert_int_equal(c.cpu[i], i);
}

static void cpus_rejects(void **state)
{
	(void)state;
	cpus_bad("3-1", -EINVAL);
	cpus_bad("", -EINVAL);
	cpus_bad(NULL, -EINVAL);
	cpus_bad("1,,2", -EINVAL);
	cpus_bad(",1", -EINVAL);
	cpus_bad("1,", -EINVAL);
	cpus_bad("1-", -EINVAL);
	cpus_bad("-1", -EINVAL);
	cpus_bad("1-2-3", -EINVAL);
	cpus_bad("a", -EINVAL);
	cpus_bad("1 ", -EINVAL);
	cpus_bad(" 1", -EINVAL);
	cpus_bad("1;2", -EINVAL);
	cpus_bad("1024", -ERANGE);
	cpus_bad("0-1024", -ERANGE);
	cpus_bad("4,99999", -ERANGE);
	cpus_bad("99999999999999999999", -ERANGE);
}

static void cpus_isolated_is_sane(void **state)
{
	static struct mw_cpus c;

	(void)state;
	memset(&c, 0xff, sizeof(c));
	/* 0 with n == 0 when the kernel isolates nothing; never garbage */
	assert_int_equal(mw_cpus_isolated(&c), 0);
	assert_true(c.n <= MW_CPUS_MAX);
}

/* ---- mw_parse_hostport ---- */

static void hp_ok(const char *s, const char *host, uint16_t port)
{
	char h[64];
	uint16_t p = 0;

	memset(h, 'x', sizeof(h));
	if (mw_parse_hostport(s, h, sizeof(h), &p) != 0)
		fail_msg("mw_parse_hostport(\"%s\") refused", s);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
}

static void hp_bad(const char *s, int want)
{
	char h[64] = "unchanged";
	uint16_t p = 4242;
	int ret = mw_parse_hostport(s, h, sizeof(h), &p);

	if (ret != want)
		fail_msg("mw_parse_hostport(\"%s\") = %d, want %d",
			 s ? s : "(null)", ret, want);
	assert_int_equal(p, 4242);
}

static void hostport_accepts(void **state)
{
	(void)state;
	hp_ok("127.0.0.1:4444", "127.0.0.1", 4444);
	hp_ok("tcp:127.0.0.1:4444", "127.0.0.1", 4444); /* endpoint style */
	hp_ok("tcp:[::1]:4444", "::1", 4444);
	hp_ok("0.0.0.0:1", "0.0.0.0", 1);
	hp_ok("dst.example:65535", "dst.example", 65535);
	hp_ok("localhost:80", "localhost", 80);
	hp_ok("[::1]:4444", "::1", 4444);
	hp_ok("[fe80::1%lo]:9", "fe80::1%lo", 9);
	hp_ok("[::]:4444", "::", 4444);
	hp_ok(":4444", "", 4444);
}

static void hostport_rejects(void **state)
{
	char small[4];
	uint16_t p = 4242;

	(void)state;
	hp_bad(NULL, -EINVAL);
	hp_bad("", -EINVAL);
	hp_bad("127.0.0.1", -EINVAL);  /* missing port */
	hp_bad("127.0.0.1:", -EINVAL); /* empty port */
	hp_bad("[::1]", -EINVAL);
	hp_bad("[::1]:", -EINVAL);
	hp_bad("[::1]4444", -EINVAL);
	hp_bad("[::1:4444", -EINVAL);
	hp_bad("host:0", -ERANGE);
	hp_bad("host:65536", -ERANGE);
	hp_bad("host:99999999999", -ERANGE);
	hp_bad("host:-1", -EINVAL);
	hp_bad("host:44x", -EINVAL);
	hp_bad("host:http", -EINVAL);
	hp_bad("::1:4444", -EINVAL); /* bare IPv6 needs brackets */
	hp_bad("fe80::1:4444", -EINVAL);
	hp_bad("a:b:4444", -EINVAL);
	/* the host must fit the caller's buffer with its NUL */
	assert_int_equal(mw_parse_hostport("abcd:1", small, sizeof(small), &p),
			 -ERANGE);
	assert_int_equal(p, 4242);
	assert_int_equal(mw_parse_hostport("abc:1", small, sizeof(small), &p),
			 0);
	assert_string_equal(small, "abc");
	assert_int_equal(p, 1);
}

/* ---- send --to paths (tools/opts.c, tools/config.c) ---- */

static struct opts to_opts;

/* migwire send with args after the fixed ones: cli_parse's result, or
 * cli_finish's when parsing went through. */
static int send_cmdline(const char *const *args)
{
	static const char *const fixed[] = { "send", "--no-tls",
					     "--print-config", "--cpus", "0" };
	/* getopt wants char *: writable copies */
	static char buf[32][64];
	char *argv[33];
	int argc = 0, ret;
	size_t i;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++, argc++) {
		snprintf(buf[argc], sizeof(buf[argc]), "%s", fixed[i]);
		argv[argc] = buf[argc];
	}
	for (; *args; args++, argc++) {
		assert_true(argc < 32 && strlen(*args) < sizeof(buf[0]));
		snprintf(buf[argc], sizeof(buf[argc]), "%s", *args);
		argv[argc] = buf[argc];
	}
	argv[argc] = NULL;
	memset(&to_opts, 0, sizeof(to_opts));
	ret = cli_parse(&to_opts, SIDE_SEND, argc, argv);
	return ret ? ret : cli_finish(&to_opts, SIDE_SEND);
}

static void path_is(unsigned i, const char *host, uint16_t port)
{
	assert_string_equal(to_opts.cfg.paths[i].host, host);
	assert_int_equal(to_opts.cfg.paths[i].port, port);
}

static void to_comma_list(void **state)
{
	static const char *const one[] = { "--to", "dst:4444", NULL };
	static const char *const three[] = {
		"--to", "10.0.0.2:4444,[fd00::2]:4445,dst.example:4446", NULL
	};

	(void)state;
	assert_int_equal(send_cmdline(one), 0);
	assert_int_equal(to_opts.cfg.nr_paths, 1);
	path_is(0, "dst", 4444);
	assert_int_equal(send_cmdline(three), 0);
	assert_int_equal(to_opts.cfg.nr_paths, 3);
	path_is(0, "10.0.0.2", 4444);
	path_is(1, "fd00::2", 4445);
	path_is(2, "dst.example", 4446);
	/* paths[0] is the host and port every other user reads */
	assert_string_equal(to_opts.cfg.host, "10.0.0.2");
	assert_int_equal(to_opts.cfg.port, 4444);
}

static void to_repeated(void **state)
{
	static const char *const args[] = { "--to", "a:1", "--to", "b:2,c:3",
					    "--to", "d:4", NULL };

	(void)state;
	assert_int_equal(send_cmdline(args), 0);
	assert_int_equal(to_opts.cfg.nr_paths, 4);
	path_is(0, "a", 1);
	path_is(1, "b", 2);
	path_is(2, "c", 3);
	path_is(3, "d", 4);
	assert_string_equal(to_opts.cfg.host, "a");
	assert_int_equal(to_opts.cfg.port, 1);
}

static void to_duplicate_refused(void **state)
{
	static const char *const in_list[] = { "--to", "a:1,b:2,a:1", NULL };
	static const char *const across[] = { "--to", "a:1,b:2", "--to", "b:2",
					      NULL };
	static const char *const other_port[] = { "--to", "a:1,a:2", NULL };

	(void)state;
	assert_int_equal(send_cmdline(in_list), -MW_E_USAGE);
	assert_int_equal(send_cmdline(across), -MW_E_USAGE);
	/* the same host on another port is another path */
	assert_int_equal(send_cmdline(other_port), 0);
	assert_int_equal(to_opts.cfg.nr_paths, 2);
}

static void to_at_most_8(void **state)
{
	static const char *const eight[] = {
		"--to", "h1:1,h2:2,h3:3,h4:4,h5:5,h6:6,h7:7,h8:8", NULL
	};
	static const char *const nine[] = {
		"--to", "h1:1,h2:2,h3:3,h4:4,h5:5,h6:6,h7:7,h8:8,h9:9", NULL
	};
	static const char *const nine_split[] = { "--to",
						  "h1:1,h2:2,h3:3,h4:4,h5:5",
						  "--to", "h6:6,h7:7,h8:8,h9:9",
						  NULL };
	static const char *const nine_args[] = { "--to", "h1:1", "--to", "h2:2",
						 "--to", "h3:3", "--to", "h4:4",
						 "--to", "h5:5", "--to", "h6:6",
						 "--to", "h7:7", "--to", "h8:8",
						 "--to", "h9:9", NULL };

	(void)state;
	assert_int_equal(MW_PATHS_MAX, 8);
	assert_int_equal(send_cmdline(eight), 0);
	assert_int_equal(to_opts.cfg.nr_paths, 8);
	path_is(7, "h8", 8);
	assert_int_equal(send_cmdline(nine), -MW_E_USAGE);
	assert_int_equal(send_cmdline(nine_split), -MW_E_USAGE);
	/* the ninth --to is refused while parsing (exit status 2) */
	assert_int_equal(send_cmdline(nine_args), 2);
}

static void to_bad_entries(void **state)
{
	static const char *const empty[] = { "--to", "a:1,,b:2", NULL };
	static const char *const trailing[] = { "--to", "a:1,", NULL };
	static const char *const no_port[] = { "--to", "a:1,b", NULL };
	static const char *const no_host[] = { "--to", "a:1,:2", NULL };

	(void)state;
	assert_int_equal(send_cmdline(empty), -MW_E_USAGE);
	assert_int_equal(send_cmdline(trailing), -MW_E_USAGE);
	assert_int_equal(send_cmdline(no_port), -MW_E_USAGE);
	assert_int_equal(send_cmdline(no_host), -MW_E_USAGE);
}

int main(void)
{
	const struct CMUnitTest size_tests[] = {
		cmocka_unit_test(size_plain_and_suffixes),
		cmocka_unit_test(size_kib_bytes_and_rates),
		cmocka_unit_test(size_overflow),
		cmocka_unit_test(size_junk_empty_negative),
		cmocka_unit_test(rate_bytes_and_bits),
	};
	const struct CMUnitTest u32_tests[] = {
		cmocka_unit_test(u32_ranges),
		cmocka_unit_test(u32_junk),
	};
	const struct CMUnitTest cpus_tests[] = {
		cmocka_unit_test(cpus_lists),
		cmocka_unit_test(cpus_full_range),
		cmocka_unit_test(cpus_rejects),
		cmocka_unit_test(cpus_isolated_is_sane),
	};
	const struct CMUnitTest hostport_tests[] = {
		cmocka_unit_test(hostport_accepts),
		cmocka_unit_test(hostport_rejects),
	};
	const struct CMUnitTest to_tests[] = {
		cmocka_unit_test(to_comma_list),
		cmocka_unit_test(to_repeated),
		cmocka_unit_test(to_duplicate_refused),
		cmocka_unit_test(to_at_most_8),
		cmocka_unit_test(to_bad_entries),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("parse/size", size_tests, NULL,
					      NULL);
	failed +=
		cmocka_run_group_tests_name("parse/u32", u32_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("parse/cpus", cpus_tests, NULL,
					      NULL);
	failed += cmocka_run_group_tests_name("parse/hostport", hostport_tests,
					      NULL, NULL);
	failed += cmocka_run_group_tests_name("parse/send-to", to_tests, NULL,
					      NULL);
	return failed ? 1 : 0;
}
