/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of mw_tls_psk_parse(): QEMU tls-creds-psk keys.psk text
 * ("identity:hexkey" lines). Pure parsing, no OpenSSL session involved.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mw_tls.h"

static ssize_t parse(const char *text, const char *id, uint8_t *key, size_t cap,
		     struct mw_err *err)
{
	memset(err, 0, sizeof(*err));
	return mw_tls_psk_parse(text, strlen(text), id, key, cap, err);
}

static void psk_parse_good(void **state)
{
	static const char text[] = "alice:00112233\n"
				   "qemu:deadBEEF0102\n";
	uint8_t key[64];
	struct mw_err err;

	(void)state;
	assert_int_equal(parse(text, "qemu", key, sizeof(key), &err), 6);
	assert_memory_equal(key, "\xde\xad\xbe\xef\x01\x02", 6);
	assert_int_equal(parse(text, "alice", key, sizeof(key), &err), 4);
	assert_memory_equal(key, "\x00\x11\x22\x33", 4);
}

static void psk_parse_comments_blank_crlf(void **state)
{
	static const char text[] = "# keys for migration\r\n"
				   "\r\n"
				   "   \n"
				   "qemu:0a0b\r\n"
				   "last:ff"; /* no final newline */
	uint8_t key[8];
	struct mw_err err;

	(void)state;
	assert_int_equal(parse(text, "qemu", key, sizeof(key), &err), 2);
	assert_memory_equal(key, "\x0a\x0b", 2);
	assert_int_equal(parse(text, "last", key, sizeof(key), &err), 1);
	assert_int_equal(key[0], 0xff);
}

static void psk_parse_first_match_wins(void **state)
{
	static const char text[] = "qemu:01\nqemu:02\n";
	uint8_t key[8];
	struct mw_err err;

	(void)state;
	assert_int_equal(parse(text, "qemu", key, sizeof(key), &err), 1);
	assert_int_equal(key[0], 1);
}

/* Parses text for id into a key_cap-byte key: expects code and part. */
static void expect_error(const char *text, const char *id, size_t key_cap,
			 ssize_t code, const char *part)
{
	uint8_t key[64];
	struct mw_err err;

	assert_true(key_cap <= sizeof(key));
	assert_int_equal(parse(text, id, key, key_cap, &err), code);
	if (!strstr(err.msg, part))
		fail_msg("message '%s' lacks '%s'", err.msg, part);
}

static void psk_parse_not_found(void **state)
{
	(void)state;
	expect_error("alice:01\n", "qemu", 8, -ENOENT,
		     "no key for identity 'qemu'");
	/* a prefix of an identity is not that identity */
	expect_error("qemu2:01\n", "qemu", 8, -ENOENT, "'qemu'");
	expect_error("", "qemu", 8, -ENOENT, "'qemu'");
}

static void psk_parse_bad_hex(void **state)
{
	(void)state;
	expect_error("qemu:01\nx:0g\n", "qemu", 8, -EINVAL,
		     "line 2: key is not hex (character 2)");
}

static void psk_parse_odd_length(void **state)
{
	(void)state;
	expect_error("qemu:012\n", "qemu", 8, -EINVAL,
		     "line 1: key has an odd number of hex digits (3)");
}

static void psk_parse_missing_colon(void **state)
{
	(void)state;
	expect_error("\nqemu 0102\n", "qemu", 8, -EINVAL,
		     "line 2: missing ':' between identity and key");
}

static void psk_parse_empty_parts(void **state)
{
	(void)state;
	expect_error(":0102\n", "qemu", 8, -EINVAL, "line 1: empty identity");
	expect_error("qemu:\n", "qemu", 8, -EINVAL, "line 1: empty key");
}

static void psk_parse_key_too_long(void **state)
{
	(void)state;
	expect_error("qemu:010203\n", "qemu", 2, -EINVAL,
		     "line 1: key of 3 bytes is longer than 2");
}

static void psk_parse_validate_only(void **state)
{
	struct mw_err err;

	(void)state;
	assert_int_equal(parse("a:01\nb:0203\n", NULL, NULL, 0, &err), 0);
	assert_int_equal(parse("a:01\nb\n", NULL, NULL, 0, &err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(psk_parse_good),
		cmocka_unit_test(psk_parse_comments_blank_crlf),
		cmocka_unit_test(psk_parse_first_match_wins),
		cmocka_unit_test(psk_parse_not_found),
		cmocka_unit_test(psk_parse_bad_hex),
		cmocka_unit_test(psk_parse_odd_length),
		cmocka_unit_test(psk_parse_missing_colon),
		cmocka_unit_test(psk_parse_empty_parts),
		cmocka_unit_test(psk_parse_key_too_long),
		cmocka_unit_test(psk_parse_validate_only),
	};

	return cmocka_run_group_tests_name("tls/psk_parse", tests, NULL, NULL);
}
