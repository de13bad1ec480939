/* SPDX-License-Identifier: MIT */
/* Parsers for command-line values. Pure functions; any thread. */
#ifndef MW_PARSE_H
#define MW_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MW_CPUS_MAX 1024

/* A set of CPU numbers, e.g. from "4-7,12". */
struct mw_cpus {
	uint16_t n;
	uint16_t cpu[MW_CPUS_MAX];
};

/*
 * Bytes: "123", "64K", "4M", "1G", "2T" (binary multiples, K = KiB; a
 * trailing "B", "iB" or "/s" is accepted). Rejects empty, negative, junk
 * and overflow. A lowercase "b" ("1Gb") means bits to tc and iperf3, so it
 * is refused with -EDOM rather than read as bytes. Returns 0 or -EINVAL /
 * -ERANGE / -EDOM.
 */
int mw_parse_size(const char *s, uint64_t *out);
/*
 * A rate in bytes per second: anything mw_parse_size takes, or bits as tc
 * and iperf3 write them, with decimal multiples: "800bit", "100kbit",
 * "100Mbit", "1Gbit", "10Gbit/s" (1Gbit = 125000000 bytes/s). Returns 0 or
 * -EINVAL / -ERANGE / -EDOM (a bare lowercase "b", e.g. "1Gb").
 */
int mw_parse_rate(const char *s, uint64_t *out);
/* Decimal unsigned in [min, max]. Returns 0, -EINVAL or -ERANGE. */
int mw_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* "0-3,8,10-11": ascending or not, duplicates folded; "" is rejected. */
int mw_parse_cpus(const char *s, struct mw_cpus *out);
/* The reverse, with ranges ("0-3,8"); "" for an empty set. The set must be
 * sorted, as mw_parse_cpus leaves it. */
void mw_cpus_format(const struct mw_cpus *c, char *buf, size_t cap);
/*
 * The kernel's isolated CPUs (/sys/devices/system/cpu/isolated), as the
 * default placement. Returns 0 with out->n == 0 when there are none.
 */
int mw_cpus_isolated(struct mw_cpus *out);
/* "host:port", "[v6]:port", optionally written "tcp:host:port" as
 * endpoints are; host may be empty for "any" (":4444").
 * host is written NUL-terminated into hostbuf. */
int mw_parse_hostport(const char *s, char *hostbuf, size_t hostcap,
		      uint16_t *port);

#endif
