/* SPDX-License-Identifier: MIT */
/*
 * The send/recv option table: getopt_long's array, --help and the value
 * parsers all come from it (tools/cli.h). Main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "cli.h"
#include "mw_cli.h"
#include "mw_comp.h"
#include "mw_log.h"
#include "mw_parse.h"
#include "mw_wire.h"

typedef int opt_fn(struct opts *o, const char *arg);

struct opt_def {
	const char *name;
	int has_arg;
	int side;
	opt_fn *fn; /* NULL: the value is kept as given, at str_off */
	const char *arg_name;
	const char *help;
	size_t str_off; /* of a const char * in struct opts */
};

#define STR(field) offsetof(struct opts, field)

/* "migwire send" or "migwire recv" once the side is known: every usage
 * line carries it, as the runtime's log lines do. */
const char *cli_prog = "migwire";

int cli_usage_err(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s (see --help)\n", cli_prog, msg);
	return -MW_E_USAGE;
}

static int parse_u32_opt(const char *name, const char *arg, uint32_t min,
			 uint32_t max, uint32_t *out)
{
	char range[64];

	if (mw_parse_u32(arg, min, max, out) == 0)
		return 0;
	snprintf(range, sizeof(range), "%u..%u", min, max);
	fprintf(stderr, "%s: --%s: '%s' is not a number in %s (see --help)\n",
		cli_prog, name, arg, range);
	return -MW_E_USAGE;
}

static int parse_size_opt(const char *name, const char *arg, uint64_t min,
			  uint64_t max, uint64_t *out)
{
	uint64_t v;
	int ret = mw_parse_size(arg, &v);

	if (ret == -EDOM)
		return cli_usage_err(
			"--%s: '%s': a lowercase b means bits; sizes "
			"are bytes (K = KiB, M = MiB, G = GiB)",
			name, arg);
	if (ret || v < min || v > max) {
		fprintf(stderr,
			"%s: --%s: '%s' is not a size in "
			"%llu..%llu bytes (suffixes K, M, G) (see --help)\n",
			cli_prog, name, arg, (unsigned long long)min,
			(unsigned long long)max);
		return -MW_E_USAGE;
	}
	*out = v;
	return 0;
}

static int o_listen(struct opts *o, const char *a)
{
	if (o->side_name[0] == 'r') {
		o->listen = a;
		return 0;
	}
	if (o->nr_listen == MW_ENDPOINTS_MAX)
		return cli_usage_err("at most %u --listen endpoints",
				     MW_ENDPOINTS_MAX);
	o->listen_eps[o->nr_listen++] = a;
	return 0;
}

static int o_to(struct opts *o, const char *a)
{
	if (o->nr_to_args == MW_PATHS_MAX)
		return cli_usage_err("at most %u --to paths", MW_PATHS_MAX);
	o->to_args[o->nr_to_args++] = a;
	if (!o->to)
		o->to = a;
	return 0;
}

static int o_connect(struct opts *o, const char *a)
{
	if (o->nr_connect == MW_ENDPOINTS_MAX)
		return cli_usage_err("at most %u --connect endpoints",
				     MW_ENDPOINTS_MAX);
	o->connect_eps[o->nr_connect++] = a;
	return 0;
}
static int o_notls(struct opts *o, const char *a)
{
	o->no_tls = true;
	return 0;
}
static int o_norp(struct opts *o, const char *a)
{
	o->no_rp = true;
	return 0;
}
static int o_qemu_pid(struct opts *o, const char *a)
{
	return parse_u32_opt("qemu-pid", a, 2, 1u << 22, &o->qemu_pid);
}

static int o_verbose(struct opts *o, const char *a)
{
	o->cfg.verbose++;
	if (mw_log_level < MW_LOG_TRACE)
		mw_log_level++;
	return 0;
}
static int o_quiet(struct opts *o, const char *a)
{
	mw_log_level = MW_LOG_ERR;
	return 0;
}
/* --progress (every second) or --progress=SECS; 0 turns it off */
static int o_progress(struct opts *o, const char *a)
{
	o->have_progress = true;
	o->cfg.progress_s = 1;
	return a ? parse_u32_opt("progress", a, 0, 3600, &o->cfg.progress_s) :
		   0;
}

static int o_printcfg(struct opts *o, const char *a)
{
	o->print_config = true;
	return 0;
}

static int o_probe(struct opts *o, const char *a)
{
	o->probe = true;
	return 0;
}

static int o_channels(struct opts *o, const char *a)
{
	return parse_u32_opt("channels", a, 1, MW_CHANNELS_MAX,
			     &o->cfg.nr_chans);
}

static int o_compress(struct opts *o, const char *a)
{
	if (mw_codec_parse(a, &o->cfg.codec))
		return cli_usage_err(
			"--compress: unknown codec '%s'; use none, "
			"zlib or zstd",
			a);
	return 0;
}

static int o_adaptive(struct opts *o, const char *a)
{
	(void)a;
	o->cfg.adaptive = true;
	return 0;
}

static int o_level(struct opts *o, const char *a)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(a, &end, 10);
	if (errno || *end || end == a || v < -1000 || v > 1000)
		return cli_usage_err("--compress-level: '%s' is not a level",
				     a);
	o->cfg.level = (int)v;
	o->have_level = true;
	return 0;
}

static int o_threads(struct opts *o, const char *a)
{
	o->have_threads = true;
	return parse_u32_opt(o->side_name[0] == 's' ? "compress-threads" :
						      "decompress-threads",
			     a, 1, 64, &o->cfg.threads);
}

static int o_chunk(struct opts *o, const char *a)
{
	uint64_t v = 0;
	int ret =
		parse_size_opt("chunk-size", a, MW_CHUNK_MIN, MW_CHUNK_MAX, &v);

	if (!ret)
		o->cfg.chunk_size = (uint32_t)v;
	return ret;
}

/*
 * The window is allocated up front (a fixed pool, no malloc on the data
 * path), so a typo like 1T would take the host's memory before anything
 * connects: it may be at most half of the RAM this host has.
 */
static int o_window(struct opts *o, const char *a)
{
	struct sysinfo si;
	uint64_t ram, max;
	int ret = parse_size_opt("window", a, 64 << 10, 1ull << 40,
				 &o->cfg.window);

	if (ret || sysinfo(&si))
		return ret;
	ram = (uint64_t)si.totalram * si.mem_unit;
	max = ram / 2;
	if (o->cfg.window > max)
		return cli_usage_err(
			"--window: '%s' is more than half of this "
			"host's memory (%.1f GiB); at most %.1f GiB",
			a, (double)ram / (1 << 30), (double)max / (1 << 30));
	return 0;
}

/* Bytes per second as sizes are written (100M = 100 MiB/s), or bits as tc
 * and iperf3 write them (1Gbit = 10^9 bit/s); "1Gb" is refused. */
static int o_maxbw(struct opts *o, const char *a)
{
	uint64_t v;
	int ret = mw_parse_rate(a, &v);

	if (ret == -EDOM)
		return cli_usage_err(
			"--max-bandwidth: '%s' is ambiguous: write "
			"M or G for MiB/s or GiB/s (bytes), Mbit or "
			"Gbit for bits per second",
			a);
	if (ret || v < (1 << 10) || v > (1ull << 50))
		return cli_usage_err(
			"--max-bandwidth: '%s' is not a rate in "
			"1K..1024T bytes/s (e.g. 100M = 100 MiB/s, "
			"1Gbit = 1 Gbit/s)",
			a);
	o->cfg.max_bw = v;
	return 0;
}

static int o_timeout(struct opts *o, const char *a)
{
	return parse_u32_opt("timeout", a, 1, 86400, &o->cfg.timeout_s);
}

static int o_reconnect(struct opts *o, const char *a)
{
	return parse_u32_opt("reconnect-timeout", a, 0, 86400,
			     &o->cfg.reconnect_s);
}

static int o_wait(struct opts *o, const char *a)
{
	return parse_u32_opt("wait", a, 0, 86400 * 7, &o->cfg.wait_s);
}

static int o_io(struct opts *o, const char *a)
{
	if (mw_io_parse(a, &o->cfg.io))
		return cli_usage_err(
			"--io: unknown engine '%s'; use auto, uring "
			"or poll",
			a);
	return 0;
}

static const struct opt_def opt_defs[] = {
	{ "to", 1, SIDE_SEND, o_to, "HOST:PORT[,HOST:PORT...]",
	  "receiver address (required); several, comma-separated or "
	  "repeated (at most 8), are paths to the same receiver (its other "
	  "addresses or routes): channel i dials path i % paths, and a "
	  "channel whose path fails (at setup, or twice in a row when it "
	  "redials) tries the others",
	  0 },
	{ "listen", 1, SIDE_RECV, o_listen, "HOST:PORT",
	  "address to accept the sender's channels on (required)", 0 },
	{ "listen", 1, SIDE_SEND, o_listen, "ADDR",
	  "unix:PATH or tcp:HOST:PORT where QEMU connects (repeatable; "
	  "default: the exec: stream on stdin/stdout)",
	  0 },
	{ "connect", 1, SIDE_RECV, o_connect, "ADDR",
	  "unix:PATH or tcp:HOST:PORT of the destination QEMU, paired with "
	  "the sender's --listen in order (repeatable; default: stdout/stdin)",
	  0 },
	{ "channels", 1, SIDE_SEND, o_channels, "N",
	  "parallel TCP+TLS channels, 1-64 (default 2)", 0 },
	{ "compress", 1, SIDE_SEND, o_compress, "CODEC",
	  "none | zlib | zstd (default zstd)", 0 },
	{ "compress-level", 1, SIDE_SEND, o_level, "L",
	  "codec level (zstd -7..19, negative is faster, default 1; zlib "
	  "1..9, default 1)",
	  0 },
	{ "adaptive", 0, SIDE_SEND, o_adaptive, NULL,
	  "send a chunk uncompressed when a channel has room for it before "
	  "a compress worker has started it (the network is faster than the "
	  "codec): more bytes on the wire, less CPU, higher throughput on "
	  "fast links (default off: every chunk is compressed)",
	  0 },
	{ "compress-threads", 1, SIDE_SEND, o_threads, "N",
	  "compression workers (default: online CPUs, at most 8)", 0 },
	{ "decompress-threads", 1, SIDE_RECV, o_threads, "N",
	  "decompression workers (default: half the online CPUs, at least 1, "
	  "at most 4)",
	  0 },
	{ "chunk-size", 1, SIDE_SEND, o_chunk, "SIZE",
	  "bytes per chunk, 4K-16M (default 256K)", 0 },
	{ "pages", 1, SIDE_BOTH, cli_opt_pages, "auto|off",
	  "send a re-sent RAM page as a reference to or a delta against the "
	  "version both sides cached; both sides alike (default off)",
	  0 },
	{ "page-cache", 1, SIDE_BOTH, cli_opt_page_cache, "SIZE",
	  "page cache of --pages on each side, the same on both (default 64M)",
	  0 },
	{ "window", 1, SIDE_BOTH, o_window, "SIZE",
	  "memory for chunks in flight on this side, at most half the "
	  "host's RAM (default 8M)",
	  0 },
	{ "tls-creds", 1, SIDE_BOTH, NULL, "DIR",
	  "QEMU tls-creds-x509 directory: ca-cert.pem and server-cert.pem/"
	  "server-key.pem (recv) or client-cert.pem/client-key.pem (send)",
	  STR(creds) },
	{ "tls-hostname", 1, SIDE_SEND, NULL, "NAME",
	  "name the receiver's certificate must carry (default: host of --to)",
	  STR(hostname) },
	{ "tls-psk", 1, SIDE_BOTH, NULL, "FILE",
	  "QEMU tls-creds-psk keys.psk file (identity:hexkey lines)",
	  STR(psk) },
	{ "tls-psk-identity", 1, SIDE_SEND, NULL, "NAME",
	  "PSK identity to use (default qemu)", STR(psk_id) },
	{ "tls-authz", 1, SIDE_RECV, cli_opt_authz, "ID",
	  "allow only this client as the source: its certificate's subject "
	  "DN as QEMU's tls-authz writes it (e.g. 'CN=src.example,O=Example'), "
	  "or its PSK identity (repeatable; default: any authenticated "
	  "client)",
	  0 },
	{ "tls-authz", 1, SIDE_SEND, cli_opt_authz, "DN",
	  "also require this subject DN of the receiver's certificate "
	  "(repeatable; the host name check stays)",
	  0 },
	{ "tls-authz-file", 1, SIDE_BOTH, cli_opt_authz_file, "FILE",
	  "more --tls-authz identities, one a line ('#' starts a comment)", 0 },
	{ "allow-from", 1, SIDE_RECV, cli_opt_allow, "CIDR",
	  "accept connections only from this network, e.g. 10.1.0.0/16 or "
	  "fd00::/8 (repeatable; default: any address)",
	  0 },
	{ "join-token", 1, SIDE_BOTH, NULL, "FILE",
	  "per-migration secret (16+ bytes) every channel proves it holds, "
	  "the same file on both sides; required by recv --no-tls on a "
	  "non-loopback address. Make one: head -c 32 /dev/urandom | base64",
	  STR(join_token_path) },
	{ "no-tls", 0, SIDE_BOTH, o_notls, NULL,
	  "plaintext: no encryption, no authentication", 0 },
	{ "input", 1, SIDE_SEND, NULL, "fd:N",
	  "read the stream from inherited descriptor N (default stdin)",
	  STR(input) },
	{ "output", 1, SIDE_RECV, NULL, "fd:N",
	  "write the stream to inherited descriptor N (default stdout)",
	  STR(output) },
	{ "cpus", 1, SIDE_BOTH, NULL, "LIST",
	  "pin worker threads to these CPUs, e.g. 4-7,12 (default: the CPUs "
	  "this process may use that the VM's vCPU threads may not, "
	  "preferring isolated ones; else the kernel's isolated CPUs, if "
	  "any)",
	  STR(cpus) },
	{ "qemu-pid", 1, SIDE_BOTH, o_qemu_pid, "PID",
	  "the QEMU whose vCPU threads migwire keeps off (default: under "
	  "exec:, the QEMU that started migwire)",
	  0 },
	{ "cpu-budget", 1, SIDE_BOTH, cli_opt_cpu_budget, "CORES",
	  "keep this side's CPU use to CORES (fractions allowed, e.g. 0.5): "
	  "at most ceil(CORES) codec workers, and reading pauses while over "
	  "it, so the migration slows instead (default: no budget)",
	  0 },
	{ "max-bandwidth", 1, SIDE_SEND, o_maxbw, "RATE",
	  "cap wire bytes per second over all channels: 100M is 100 MiB/s, "
	  "1Gbit is 1 Gbit/s (default: no cap)",
	  0 },
	{ "timeout", 1, SIDE_BOTH, o_timeout, "SECS",
	  "seconds allowed for setup: per channel the connect, TLS handshake "
	  "and HELLO (recv: at most 5 s per connection), all channels to "
	  "join, and recv's --connect to QEMU; also the TCP user timeout "
	  "(data unacknowledged that long ends a channel) and the heartbeat: "
	  "a channel that hears nothing from its peer for SECS fails (an idle "
	  "live peer sends a PING every second). It does not bound the "
	  "migration (default 30)",
	  0 },
	{ "reconnect-timeout", 1, SIDE_BOTH, o_reconnect, "SECS",
	  "seconds a lost channel may take to come back before the migration "
	  "fails (the source VM keeps running); 0: fail at once (default 60)",
	  0 },
	{ "no-return-path", 0, SIDE_RECV, o_norp, NULL,
	  "exec: mode: do not relay stdin back to the sender (by default "
	  "it is relayed, as QEMU's return path, when stdin and stdout are "
	  "both pipes or sockets)",
	  0 },
	{ "wait", 1, SIDE_SEND, o_wait, "SECS",
	  "keep dialling a receiver that is not listening yet for up to "
	  "SECS, so the two sides may start in either order (default 0: "
	  "fail at once)",
	  0 },
	{ "wait", 1, SIDE_RECV, o_wait, "SECS",
	  "how long to wait for the sender to connect (default 0: forever)",
	  0 },
	{ "io", 1, SIDE_BOTH, o_io, "ENGINE",
	  "how channels wait for their sockets: uring (io_uring, fail "
	  "without it), poll (poll(2); works where io_uring is blocked, "
	  "e.g. by a container's seccomp profile, and under valgrind) or "
	  "auto (default: io_uring, else poll with a warning)",
	  0 },
	{ "stats-file", 1, SIDE_BOTH, NULL, "PATH",
	  "append a JSON stats line every second and a final one",
	  STR(cfg.stats_file) },
	{ "latency-file", 1, SIDE_BOTH, NULL, "PATH",
	  "write 'stream seq monotonic-ns' for every chunk read (send) or "
	  "written (recv), for chunk latency measurements (migwire bench)",
	  STR(cfg.latency_file) },
	{ "progress", 2, SIDE_BOTH, o_progress, "[=SECS]",
	  "one line every SECS (default 1): bytes moved, input and wire "
	  "rate, ratio, channels, time; on a terminal it is rewritten in "
	  "place, and it is on by default there unless QEMU started migwire "
	  "(--progress=0: off)",
	  0 },
	{ "print-config", 0, SIDE_BOTH, o_printcfg, NULL,
	  "print the configuration in effect and exit", 0 },
	{ "probe", 0, SIDE_SEND, o_probe, NULL,
	  "check that the receiver is reachable, accepts these credentials "
	  "and would take this session (it answers without starting one), "
	  "print what it said and exit: 0 when it would",
	  0 },
	{ "verbose", 0, SIDE_BOTH, o_verbose, NULL,
	  "-v: summary line at the end; -vv: more", 0 },
	{ "quiet", 0, SIDE_BOTH, o_quiet, NULL, "errors only", 0 },
};

#define NOPTS (sizeof(opt_defs) / sizeof(opt_defs[0]))

void cli_print_usage(FILE *f, int side)
{
	size_t i;

	cli_usage_intro(f, side);
	fprintf(f, "options:\n");
	for (i = 0; i < NOPTS; i++) {
		const struct opt_def *d = &opt_defs[i];
		char left[48];

		if (!(d->side & side))
			continue;
		snprintf(left, sizeof(left), "--%s%s%s", d->name,
			 d->arg_name && d->has_arg == 1 ? " " : "",
			 d->arg_name ? d->arg_name : "");
		mw_help_opt(f, left, d->help);
	}
	mw_help_opt(f, "-h, --help", "this text");
	mw_help_opt(f, "--version", "print the version and exit");
	cli_usage_notes(f);
}

static int opt_index(const char *name)
{
	int i;

	for (i = 0; i < (int)NOPTS; i++)
		if (!strcmp(opt_defs[i].name, name))
			return i;
	return -1;
}

int cli_parse(struct opts *o, int side, int argc, char **argv)
{
	struct option lopts[NOPTS + 2];
	const struct opt_def *d;
	size_t i, n = 0;
	int c;

	o->side_name = side == SIDE_SEND ? "send" : "recv";
	cli_prog = side == SIDE_SEND ? "migwire send" : "migwire recv";
	mw_log_set_side(o->side_name);
	o->cfg.codec = MW_CODEC_ZSTD;
	o->cfg.nr_chans = 2;
	o->cfg.chunk_size = 256u << 10;
	o->cfg.window = 8u << 20;
	o->cfg.timeout_s = 30;
	o->cfg.reconnect_s = 60;
	o->cfg.in_fd = 0;
	o->cfg.out_fd = 1;
	for (i = 0; i < NOPTS; i++) {
		if (!(opt_defs[i].side & side))
			continue;
		lopts[n++] = (struct option){ opt_defs[i].name,
					      opt_defs[i].has_arg, NULL,
					      (int)(1000 + i) };
	}
	lopts[n++] = (struct option){ "help", 0, NULL, 'h' };
	lopts[n++] = (struct option){ "version", 0, NULL, 'V' };
	lopts[n] = (struct option){ 0 };
	optind = 1;
	opterr = 0; /* one line of our own instead of getopt's two */
	/* full names only: mw_getopt_exact refuses --chan for --channels */
	while ((c = mw_getopt_exact(argc, argv, "+hvq", lopts, cli_prog)) !=
	       -1) {
		if (c == -2) /* an abbreviation, already said */
			return 2;
		if (c == 'h') {
			cli_print_usage(stdout, side);
			return 1;
		}
		if (c == 'V') {
			cli_print_version();
			return 1;
		}
		if (c == 'v' || c == 'q')
			c = 1000 + opt_index(c == 'v' ? "verbose" : "quiet");
		if (c < 1000 || c >= 1000 + (int)NOPTS) {
			if (c == ':' || (c == '?' && optopt && optopt >= 1000))
				fprintf(stderr,
					"migwire %s: option '%s' needs "
					"a value (see --help)\n",
					o->side_name, argv[optind - 1]);
			else
				fprintf(stderr,
					"migwire %s: unknown option "
					"'%s' (see --help)\n",
					o->side_name, argv[optind - 1]);
			return 2;
		}
		d = &opt_defs[c - 1000];
		if (!d->fn)
			*(const char **)((char *)o + d->str_off) = optarg;
		else if (d->fn(o, optarg))
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr,
			"migwire %s: unexpected argument '%s' (see "
			"--help)\n",
			o->side_name, argv[optind]);
		return 2;
	}
	return 0;
}
