/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the command-line value parsers of common/mw_parse.h, each
 * on a NUL-terminated heap copy of the input (so ASan sees a read past the
 * terminator). Byte 0 sizes the host buffer of mw_parse_hostport (1..256,
 * allocated exactly); the rest is the option text. Accepted values are
 * checked against strtoull() and against the parsers' own promises:
 * ranges, sorted CPU sets, and "host:port" that parses back to itself.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mw_parse.h"

#define TEXT_MAX 4096

/* Value of the leading digits, or -1 when they overflow 64 bits. */
static int digits_value(const char *s, unsigned long long *v, char **end)
{
	errno = 0;
	*v = strtoull(s, end, 10);
	return errno == ERANGE ? -1 : 0;
}

static void size(const char *s)
{
	unsigned long long dv, mul = 1;
	uint64_t v;
	char *end;
	int ret = mw_parse_size(s, &v);

	/* -EDOM: a lowercase b, bits to tc and iperf3 */
	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ERANGE ||
		   ret == -EDOM);
	FUZZ_CHECK(ret != -EDOM || strchr(s, 'b'));
	if (ret)
		return;
	FUZZ_CHECK(isdigit((unsigned char)s[0]));
	FUZZ_CHECK(digits_value(s, &dv, &end) == 0);
	switch (toupper((unsigned char)*end)) {
	case 'K':
		mul = 1ull << 10;
		break;
	case 'M':
		mul = 1ull << 20;
		break;
	case 'G':
		mul = 1ull << 30;
		break;
	case 'T':
		mul = 1ull << 40;
		break;
	}
	FUZZ_CHECK(dv == 0 || mul <= UINT64_MAX / dv);
	FUZZ_CHECK(v == dv * mul);
}

/* A rate is a size, or bits with a decimal multiple ("100Mbit"). */
static void rate(const char *s)
{
	uint64_t v, sv;
	int ret = mw_parse_rate(s, &v);
	int sret = mw_parse_size(s, &sv);

	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ERANGE ||
		   ret == -EDOM);
	if (!strstr(s, "bit")) {
		FUZZ_CHECK(ret == sret);
		FUZZ_CHECK(ret || v == sv);
	}
}

static void u32(const char *s, uint32_t min, uint32_t max)
{
	unsigned long long dv;
	uint32_t v;
	char *end;
	int ret = mw_parse_u32(s, min, max, &v);

	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ERANGE);
	if (ret)
		return;
	FUZZ_CHECK(v >= min && v <= max);
	FUZZ_CHECK(isdigit((unsigned char)s[0]));
	FUZZ_CHECK(digits_value(s, &dv, &end) == 0 && *end == '\0');
	FUZZ_CHECK(dv == v);
}

static void cpus(const char *s)
{
	static struct mw_cpus c; /* 2 KiB: off the stack */
	unsigned i;
	int ret;

	memset(&c, 0xa5, sizeof(c));
	ret = mw_parse_cpus(s, &c);
	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ERANGE);
	if (ret)
		return;
	FUZZ_CHECK(c.n >= 1 && c.n <= MW_CPUS_MAX);
	for (i = 0; i < c.n; i++) {
		FUZZ_CHECK(c.cpu[i] < MW_CPUS_MAX);
		FUZZ_CHECK(i == 0 || c.cpu[i - 1] < c.cpu[i]);
	}
}

static void hostport(const char *s, size_t cap)
{
	char *host = malloc(cap), *host2 = malloc(cap + 2), re[TEXT_MAX + 16];
	uint16_t port, port2;
	int ret = mw_parse_hostport(s, host, cap, &port);

	FUZZ_CHECK(host && host2);
	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ERANGE);
	if (!ret) {
		FUZZ_CHECK(strlen(host) < cap);
		FUZZ_CHECK(port >= 1);
		/* brackets when the host needs them to read back */
		if (strchr(host, ':') || host[0] == '[')
			snprintf(re, sizeof(re), "[%s]:%u", host, port);
		else
			snprintf(re, sizeof(re), "%s:%u", host, port);
		FUZZ_CHECK(mw_parse_hostport(re, host2, cap + 2, &port2) == 0);
		FUZZ_CHECK(port2 == port && !strcmp(host, host2));
	}
	free(host);
	free(host2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size_)
{
	size_t n, cap;
	char *s;

	if (size_ < 1 || size_ > TEXT_MAX)
		return 0;
	cap = (size_t)data[0] + 1;
	n = size_ - 1;
	s = malloc(n + 1);
	FUZZ_CHECK(s);
	memcpy(s, data + 1, n);
	s[n] = '\0';
	size(s);
	rate(s);
	u32(s, 0, UINT32_MAX);
	u32(s, 1, 64);
	cpus(s);
	hostport(s, cap);
	free(s);
	return 0;
}
