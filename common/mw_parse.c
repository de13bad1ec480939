/* SPDX-License-Identifier: MIT */
/* Command-line value parsers; strict, overflow-checked (zstdcli habits). */
#include "mw_parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mw_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	switch (toupper((unsigned char)*p)) {
	case 'K':
		mul = 1ull << 10;
		p++;
		break;
	case 'M':
		mul = 1ull << 20;
		p++;
		break;
	case 'G':
		mul = 1ull << 30;
		p++;
		break;
	case 'T':
		mul = 1ull << 40;
		p++;
		break;
	default:
		break;
	}
	if (mul > 1 && *p == 'i')
		p++;
	if (*p == 'b')
		return -EDOM; /* bits, as tc and iperf3 write them */
	if (*p == 'B')
		p++;
	if (!strcmp(p, "/s"))
		p += 2;
	if (*p)
		return -EINVAL;
	if (v && mul > UINT64_MAX / v)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

int mw_parse_rate(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t bits;
	} units[] = { { "bit", 1 },
		      { "kbit", 1000 },
		      { "Kbit", 1000 },
		      { "mbit", 1000000 },
		      { "Mbit", 1000000 },
		      { "gbit", 1000000000 },
		      { "Gbit", 1000000000 },
		      { "tbit", 1000000000000ull },
		      { "Tbit", 1000000000000ull } };
	uint64_t v = 0;
	const char *p = s;
	size_t i, n;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	while (isdigit((unsigned char)*p))
		p++;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		n = strlen(units[i].unit);
		if (strncmp(p, units[i].unit, n) ||
		    (p[n] && strcmp(p + n, "/s")))
			continue;
		for (p = s; isdigit((unsigned char)*p); p++) {
			if (v > (UINT64_MAX - 9) / 10)
				return -ERANGE;
			v = v * 10 + (unsigned)(*p - '0');
		}
		if (v && units[i].bits > UINT64_MAX / v)
			return -ERANGE;
		*out = v * units[i].bits / 8;
		return 0;
	}
	if (*p && strchr("kKmMgGtT", *p))
		p++;
	if (!strncmp(p, "bit", 3))
		return -EINVAL; /* bits, but not a form we know ("1bit/") */
	return mw_parse_size(s, out);
}

int mw_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		v = v * 10 + (unsigned)(*p - '0');
		if (v > UINT32_MAX)
			return -ERANGE;
	}
	if (*p)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

static int parse_cpu_num(const char **pp, unsigned *out)
{
	const char *p = *pp;
	unsigned v = 0;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		v = v * 10 + (unsigned)(*p - '0');
		if (v >= MW_CPUS_MAX)
			return -ERANGE;
	}
	*pp = p;
	*out = v;
	return 0;
}

int mw_parse_cpus(const char *s, struct mw_cpus *out)
{
	unsigned char seen[MW_CPUS_MAX] = { 0 };
	const char *p = s;
	unsigned i;
	int ret;

	if (!s || !*s)
		return -EINVAL;
	for (;;) {
		unsigned lo, hi;

		ret = parse_cpu_num(&p, &lo);
		if (ret)
			return ret;
		hi = lo;
		if (*p == '-') {
			p++;
			ret = parse_cpu_num(&p, &hi);
			if (ret)
				return ret;
			if (hi < lo)
				return -EINVAL;
		}
		for (i = lo; i <= hi; i++)
			seen[i] = 1;
		if (*p == '\0')
			break;
		if (*p != ',')
			return -EINVAL;
		p++;
	}
	out->n = 0;
	for (i = 0; i < MW_CPUS_MAX; i++)
		if (seen[i])
			out->cpu[out->n++] = (uint16_t)i;
	return 0;
}

int mw_cpus_isolated(struct mw_cpus *out)
{
	char line[4096];
	FILE *f = fopen("/sys/devices/system/cpu/isolated", "r");
	size_t n;

	out->n = 0;
	if (!f)
		return 0;
	n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	while (n && isspace((unsigned char)line[n - 1]))
		line[--n] = '\0';
	if (!n)
		return 0;
	return mw_parse_cpus(line, out);
}

int mw_parse_hostport(const char *s, char *hostbuf, size_t hostcap,
		      uint16_t *port)
{
	const char *colon, *h = s;
	size_t hl;
	uint32_t pv;
	int ret;

	if (!s)
		return -EINVAL;
	/* "tcp:HOST:PORT" as --listen/--connect endpoints write it; "tcp:80"
	 * stays the host named tcp */
	if (!strncmp(s, "tcp:", 4) && strchr(s + 4, ':'))
		h = s += 4;
	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl))
			return -EINVAL; /* bare IPv6 needs brackets */
	}
	if (hl >= hostcap)
		return -ERANGE;
	ret = mw_parse_u32(colon + 1, 1, 65535, &pv);
	if (ret)
		return ret;
	memcpy(hostbuf, h, hl);
	hostbuf[hl] = '\0';
	*port = (uint16_t)pv;
	return 0;
}

void mw_cpus_format(const struct mw_cpus *c, char *buf, size_t cap)
{
	size_t at = 0;
	unsigned i = 0;

	buf[0] = '\0';
	while (i < c->n && at < cap) {
		unsigned j = i;

		while (j + 1 < c->n && c->cpu[j + 1] == c->cpu[j] + 1)
			j++;
		at += (size_t)snprintf(buf + at, cap - at, "%s%u", i ? "," : "",
				       c->cpu[i]);
		if (j > i && at < cap)
			at += (size_t)snprintf(buf + at, cap - at, "-%u",
					       c->cpu[j]);
		i = j + 1;
	}
}
