/* SPDX-License-Identifier: MIT */
/*
 * The fixed texts of the command line: what send and recv are for (before
 * their option list, which opts.c prints from its table), the notes after
 * it, the top-level help and the version line.
 */
#include <stdio.h>

#include "cli.h"
#include "mw_wire.h"

void cli_usage_intro(FILE *f, int side)
{
	if (side == SIDE_SEND)
		fprintf(f,
			"usage: migwire send --to HOST:PORT [options]\n\n"
			"Reads a QEMU migration stream from stdin (QEMU's "
			"exec: URI) and carries it to\n`migwire recv` over "
			"parallel, compressed, encrypted channels. Exits 0 only\n"
			"after the receiver confirmed that every byte reached "
			"its output.\n\n"
			"  QMP: {\"execute\":\"migrate\",\"arguments\":{\"uri\":"
			"\"exec:migwire send --to dst:4444\n"
			"        --channels 4 --tls-creds /etc/pki/qemu\"}}\n\n");
	else
		fprintf(f,
			"usage: migwire recv --listen HOST:PORT [options]\n\n"
			"Accepts the channels of one `migwire send`, "
			"authenticates, decrypts,\ndecompresses and verifies "
			"every chunk, and writes the original stream to\n"
			"stdout in order (QEMU's -incoming exec: URI).\n\n"
			"  qemu-system-x86_64 ... -incoming \"exec:migwire recv "
			"--listen 0.0.0.0:4444\n"
			"        --tls-creds /etc/pki/qemu\"\n\n");
}

void cli_usage_notes(FILE *f)
{
	fprintf(f,
		"\nOne of --tls-creds, --tls-psk or --no-tls is required: TLS 1.3 "
		"with mutual\nX.509 or PSK authentication, or plaintext only "
		"when said.\n"
		"Sizes are bytes, K = KiB, M = MiB, G = GiB (a lowercase b is "
		"refused); rates\nare bytes per second the same way, or bits "
		"per second as Kbit, Mbit, Gbit\n(decimal, as tc and iperf3 "
		"write them).\n"
		"Environment: MIGWIRE_TLS_RECORDS=own (default: migwire seals "
		"the records\nafter OpenSSL's handshake) or openssl (OpenSSL "
		"does; the wire is the same).\n"
		"Exit status: 0 success, 1 failure, 2 usage error. Errors are "
		"one line on stderr.\n");
}

void cli_print_main_help(FILE *f)
{
	fprintf(f,
		"migwire %s: the data plane of QEMU live migration\n\n"
		"usage: migwire send --to HOST:PORT [options]   (source side, "
		"QEMU migrate exec:)\n"
		"       migwire recv --listen HOST:PORT [options] (destination, "
		"-incoming exec:)\n"
		"       migwire bench [options]\n"
		"       migwire inspect [options] [FILE|-] (what a saved or "
		"live stream holds)\n"
		"       migwire migrate --qmp SOCKET --to HOST:PORT [options] "
		"(source, via QMP)\n"
		"       migwire help [send|recv]\n"
		"       migwire --version\n\n"
		"`migwire send --help` and `migwire recv --help` list the "
		"options.\nSee also: man migwire (docs/migwire.1), "
		"docs/usage.md.\n",
		MW_VERSION);
}

void cli_print_version(void)
{
	printf("migwire %s (protocol %u)\n", MW_VERSION,
	       (unsigned)MW_PROTO_VERSION);
}
