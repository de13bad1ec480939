/* SPDX-License-Identifier: MIT */
/*
 * The migwire command line: `migwire send`, `migwire recv`, help, version.
 * Only option parsing and validation live here; the work is in transport/.
 * `migwire bench` is dispatched to the bench library (bench/mw_bench.h),
 * which owns that command's option table.
 * One table lists every option: getopt_long's array, --help and
 * --print-config are all generated from it. Exit codes: 0 ok, 1 failure,
 * 2 usage.
 */
#include <arpa/inet.h>
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

#include "mw_bench.h"
#include "mw_comp.h"
#include "mw_log.h"
#include "mw_cli.h"
#include "mw_parse.h"
#include "mw_wire.h"
#include "mw_xport.h"

#define SIDE_SEND 1
#define SIDE_RECV 2
#define SIDE_BOTH 3
#define MW_AUTHZ_MAX 64 /* --tls-authz given; more go in --tls-authz-file */

struct opts {
	struct mw_xp_cfg cfg;
	const char *to, *listen, *creds, *psk, *psk_id, *hostname;
	const char *input, *output, *cpus;
	unsigned nr_listen, nr_connect;
	const char *listen_eps[MW_ENDPOINTS_MAX + 1];
	const char *connect_eps[MW_ENDPOINTS_MAX + 1];
	const char *authz[MW_AUTHZ_MAX], *authz_file;
	unsigned nr_authz;
	bool no_tls, print_config, have_level, have_threads, no_rp;
	uint32_t qemu_pid;	   /* --qemu-pid; 0: look among the parents */
	struct mw_placement place; /* how cfg.cpus was chosen */
	const char *side_name;
};

typedef int opt_fn(struct opts *o, const char *arg);

struct opt_def {
	const char *name;
	int has_arg;
	int side;
	opt_fn *fn;
	const char *arg_name;
	const char *help;
};

/* "migwire send" or "migwire recv" once the side is known: every usage
 * line carries it, as the runtime's log lines do. */
static const char *prog = "migwire";

static int usage_err(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static int usage_err(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s (see --help)\n", prog, msg);
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
		prog, name, arg, range);
	return -MW_E_USAGE;
}

static int parse_size_opt(const char *name, const char *arg, uint64_t min,
			  uint64_t max, uint64_t *out)
{
	uint64_t v;
	int ret = mw_parse_size(arg, &v);

	if (ret == -EDOM)
		return usage_err("--%s: '%s': a lowercase b means bits; sizes "
				 "are bytes (K = KiB, M = MiB, G = GiB)",
				 name, arg);
	if (ret || v < min || v > max) {
		fprintf(stderr,
			"%s: --%s: '%s' is not a size in "
			"%llu..%llu bytes (suffixes K, M, G) (see --help)\n",
			prog, name, arg, (unsigned long long)min,
			(unsigned long long)max);
		return -MW_E_USAGE;
	}
	*out = v;
	return 0;
}

static int o_to(struct opts *o, const char *a)
{
	o->to = a;
	return 0;
}
static int o_listen(struct opts *o, const char *a)
{
	if (o->side_name[0] == 'r') {
		o->listen = a;
		return 0;
	}
	if (o->nr_listen == MW_ENDPOINTS_MAX)
		return usage_err("at most %u --listen endpoints",
				 MW_ENDPOINTS_MAX);
	o->listen_eps[o->nr_listen++] = a;
	return 0;
}

static int o_connect(struct opts *o, const char *a)
{
	if (o->nr_connect == MW_ENDPOINTS_MAX)
		return usage_err("at most %u --connect endpoints",
				 MW_ENDPOINTS_MAX);
	o->connect_eps[o->nr_connect++] = a;
	return 0;
}
static int o_creds(struct opts *o, const char *a)
{
	o->creds = a;
	return 0;
}
static int o_psk(struct opts *o, const char *a)
{
	o->psk = a;
	return 0;
}
static int o_psk_id(struct opts *o, const char *a)
{
	o->psk_id = a;
	return 0;
}
static int o_host(struct opts *o, const char *a)
{
	o->hostname = a;
	return 0;
}
static int o_authz(struct opts *o, const char *a)
{
	if (o->nr_authz == MW_AUTHZ_MAX)
		return usage_err("--tls-authz: at most %u; put more in "
				 "--tls-authz-file",
				 MW_AUTHZ_MAX);
	if (!a[0])
		return usage_err("--tls-authz: empty identity");
	o->authz[o->nr_authz++] = a;
	return 0;
}
static int o_authz_file(struct opts *o, const char *a)
{
	o->authz_file = a;
	return 0;
}
static int o_allow(struct opts *o, const char *a)
{
	struct mw_xp_cfg *c = &o->cfg;

	if (c->nr_allow == MW_ALLOW_MAX)
		return usage_err("--allow-from: at most %u networks",
				 MW_ALLOW_MAX);
	if (mw_cidr_parse(a, &c->allow[c->nr_allow]))
		return usage_err("--allow-from: '%s' is not an address or "
				 "ADDR/BITS network (e.g. 10.0.0.0/8, "
				 "fd00::/8)",
				 a);
	c->nr_allow++;
	return 0;
}
static int o_notls(struct opts *o, const char *a)
{
	o->no_tls = true;
	return 0;
}
static int o_input(struct opts *o, const char *a)
{
	o->input = a;
	return 0;
}
static int o_norp(struct opts *o, const char *a)
{
	o->no_rp = true;
	return 0;
}
static int o_output(struct opts *o, const char *a)
{
	o->output = a;
	return 0;
}
static int o_cpus(struct opts *o, const char *a)
{
	o->cpus = a;
	return 0;
}
static int o_qemu_pid(struct opts *o, const char *a)
{
	return parse_u32_opt("qemu-pid", a, 2, 1u << 22, &o->qemu_pid);
}
static int o_stats(struct opts *o, const char *a)
{
	o->cfg.stats_file = a;
	return 0;
}
static int o_latency(struct opts *o, const char *a)
{
	o->cfg.latency_file = a;
	return 0;
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
static int o_printcfg(struct opts *o, const char *a)
{
	o->print_config = true;
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
		return usage_err("--compress: unknown codec '%s'; use none, "
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
		return usage_err("--compress-level: '%s' is not a level", a);
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
		return usage_err("--window: '%s' is more than half of this "
				 "host's memory (%.1f GiB); at most %.1f GiB",
				 a, (double)ram / (1 << 30),
				 (double)max / (1 << 30));
	return 0;
}

/* Bytes per second as sizes are written (100M = 100 MiB/s), or bits as tc
 * and iperf3 write them (1Gbit = 10^9 bit/s); "1Gb" is refused. */
static int o_maxbw(struct opts *o, const char *a)
{
	uint64_t v;
	int ret = mw_parse_rate(a, &v);

	if (ret == -EDOM)
		return usage_err("--max-bandwidth: '%s' is ambiguous: write "
				 "M or G for MiB/s or GiB/s (bytes), Mbit or "
				 "Gbit for bits per second",
				 a);
	if (ret || v < (1 << 10) || v > (1ull << 50))
		return usage_err("--max-bandwidth: '%s' is not a rate in "
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

static int o_wait(struct opts *o, const char *a)
{
	return parse_u32_opt("wait", a, 0, 86400 * 7, &o->cfg.wait_s);
}

static int o_io(struct opts *o, const char *a)
{
	if (mw_io_parse(a, &o->cfg.io))
		return usage_err("--io: unknown engine '%s'; use auto, uring "
				 "or poll",
				 a);
	return 0;
}

static const struct opt_def opt_defs[] = {
	{ "to", 1, SIDE_SEND, o_to, "HOST:PORT",
	  "receiver address (required)" },
	{ "listen", 1, SIDE_RECV, o_listen, "HOST:PORT",
	  "address to accept the sender's channels on (required)" },
	{ "listen", 1, SIDE_SEND, o_listen, "ADDR",
	  "unix:PATH or tcp:HOST:PORT where QEMU connects (repeatable; "
	  "default: the exec: stream on stdin/stdout)" },
	{ "connect", 1, SIDE_RECV, o_connect, "ADDR",
	  "unix:PATH or tcp:HOST:PORT of the destination QEMU, paired with "
	  "the sender's --listen in order (repeatable; default: stdout/stdin)" },
	{ "channels", 1, SIDE_SEND, o_channels, "N",
	  "parallel TCP+TLS channels, 1-64 (default 2)" },
	{ "compress", 1, SIDE_SEND, o_compress, "CODEC",
	  "none | zlib | zstd (default zstd)" },
	{ "compress-level", 1, SIDE_SEND, o_level, "L",
	  "codec level (zstd -7..19, negative is faster, default 1; zlib "
	  "1..9, default 1)" },
	{ "adaptive", 0, SIDE_SEND, o_adaptive, NULL,
	  "send a chunk uncompressed when a channel has room for it before "
	  "a compress worker has started it (the network is faster than the "
	  "codec): more bytes on the wire, less CPU, higher throughput on "
	  "fast links (default off: every chunk is compressed)" },
	{ "compress-threads", 1, SIDE_SEND, o_threads, "N",
	  "compression workers (default: online CPUs, at most 8)" },
	{ "decompress-threads", 1, SIDE_RECV, o_threads, "N",
	  "decompression workers (default: half the online CPUs, at least 1, "
	  "at most 4)" },
	{ "chunk-size", 1, SIDE_SEND, o_chunk, "SIZE",
	  "bytes per chunk, 4K-16M (default 256K)" },
	{ "window", 1, SIDE_BOTH, o_window, "SIZE",
	  "memory for chunks in flight on this side, at most half the "
	  "host's RAM (default 8M)" },
	{ "tls-creds", 1, SIDE_BOTH, o_creds, "DIR",
	  "QEMU tls-creds-x509 directory: ca-cert.pem and server-cert.pem/"
	  "server-key.pem (recv) or client-cert.pem/client-key.pem (send)" },
	{ "tls-hostname", 1, SIDE_SEND, o_host, "NAME",
	  "name the receiver's certificate must carry (default: host of --to)" },
	{ "tls-psk", 1, SIDE_BOTH, o_psk, "FILE",
	  "QEMU tls-creds-psk keys.psk file (identity:hexkey lines)" },
	{ "tls-psk-identity", 1, SIDE_SEND, o_psk_id, "NAME",
	  "PSK identity to use (default qemu)" },
	{ "tls-authz", 1, SIDE_RECV, o_authz, "ID",
	  "allow only this client as the source: its certificate's subject "
	  "DN as QEMU's tls-authz writes it (e.g. 'CN=src.example,O=Example'), "
	  "or its PSK identity (repeatable; default: any authenticated "
	  "client)" },
	{ "tls-authz", 1, SIDE_SEND, o_authz, "DN",
	  "also require this subject DN of the receiver's certificate "
	  "(repeatable; the host name check stays)" },
	{ "tls-authz-file", 1, SIDE_BOTH, o_authz_file, "FILE",
	  "more --tls-authz identities, one a line ('#' starts a comment)" },
	{ "allow-from", 1, SIDE_RECV, o_allow, "CIDR",
	  "accept connections only from this network, e.g. 10.1.0.0/16 or "
	  "fd00::/8 (repeatable; others are closed at accept, one log line "
	  "a second; default: any address)" },
	{ "no-tls", 0, SIDE_BOTH, o_notls, NULL,
	  "plaintext: no encryption, no authentication" },
	{ "input", 1, SIDE_SEND, o_input, "fd:N",
	  "read the stream from inherited descriptor N (default stdin)" },
	{ "output", 1, SIDE_RECV, o_output, "fd:N",
	  "write the stream to inherited descriptor N (default stdout)" },
	{ "cpus", 1, SIDE_BOTH, o_cpus, "LIST",
	  "pin worker threads to these CPUs, e.g. 4-7,12 (default: the CPUs "
	  "this process may use that the VM's vCPU threads may not, "
	  "preferring isolated ones; else the kernel's isolated CPUs, if "
	  "any)" },
	{ "qemu-pid", 1, SIDE_BOTH, o_qemu_pid, "PID",
	  "the QEMU whose vCPU threads migwire keeps off (default: under "
	  "exec:, the QEMU that started migwire)" },
	{ "max-bandwidth", 1, SIDE_SEND, o_maxbw, "RATE",
	  "cap wire bytes per second over all channels: 100M is 100 MiB/s, "
	  "1Gbit is 1 Gbit/s (default: no cap)" },
	{ "timeout", 1, SIDE_BOTH, o_timeout, "SECS",
	  "seconds allowed for setup: per channel the connect, TLS handshake "
	  "and HELLO (recv: at most 10 s per connection), all channels to "
	  "join, and recv's --connect to QEMU; also the TCP user timeout "
	  "(data unacknowledged that long ends a channel). It bounds neither "
	  "the migration nor a peer that is alive but silent (default 30)" },
	{ "no-return-path", 0, SIDE_RECV, o_norp, NULL,
	  "exec: mode: do not relay stdin back to the sender (by default "
	  "it is relayed, as QEMU's return path, when stdin and stdout are "
	  "both pipes or sockets)" },
	{ "wait", 1, SIDE_RECV, o_wait, "SECS",
	  "how long to wait for the sender to connect (default 0: forever)" },
	{ "io", 1, SIDE_BOTH, o_io, "ENGINE",
	  "how channels wait for their sockets: uring (io_uring, fail "
	  "without it), poll (poll(2); works where io_uring is blocked, "
	  "e.g. by a container's seccomp profile, and under valgrind) or "
	  "auto (default: io_uring, else poll with a warning)" },
	{ "stats-file", 1, SIDE_BOTH, o_stats, "PATH",
	  "append a JSON stats line every second and a final one" },
	{ "latency-file", 1, SIDE_BOTH, o_latency, "PATH",
	  "write 'stream seq monotonic-ns' for every chunk read (send) or "
	  "written (recv), for chunk latency measurements (migwire bench)" },
	{ "print-config", 0, SIDE_BOTH, o_printcfg, NULL,
	  "print the configuration in effect and exit" },
	{ "verbose", 0, SIDE_BOTH, o_verbose, NULL,
	  "-v: summary line at the end; -vv: more" },
	{ "quiet", 0, SIDE_BOTH, o_quiet, NULL, "errors only" },
};

#define NOPTS (sizeof(opt_defs) / sizeof(opt_defs[0]))

static void print_usage(FILE *f, int side)
{
	size_t i;

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
	fprintf(f, "options:\n");
	for (i = 0; i < NOPTS; i++) {
		const struct opt_def *d = &opt_defs[i];
		char left[48];

		if (!(d->side & side))
			continue;
		snprintf(left, sizeof(left), "--%s%s%s", d->name,
			 d->arg_name ? " " : "",
			 d->arg_name ? d->arg_name : "");
		mw_help_opt(f, left, d->help);
	}
	mw_help_opt(f, "-h, --help", "this text");
	mw_help_opt(f, "--version", "print the version and exit");
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

static void print_main_help(FILE *f)
{
	fprintf(f,
		"migwire %s: the data plane of QEMU live migration\n\n"
		"usage: migwire send --to HOST:PORT [options]   (source side, "
		"QEMU migrate exec:)\n"
		"       migwire recv --listen HOST:PORT [options] (destination, "
		"-incoming exec:)\n"
		"       migwire bench [options]\n"
		"       migwire help [send|recv]\n"
		"       migwire --version\n\n"
		"`migwire send --help` and `migwire recv --help` list the "
		"options.\nSee also: man migwire (docs/migwire.1), "
		"docs/usage.md.\n",
		MW_VERSION);
}

static int parse_fd(const char *name, const char *arg, int *out)
{
	uint32_t v;

	if (strncmp(arg, "fd:", 3) || mw_parse_u32(arg + 3, 0, 65535, &v))
		return usage_err("--%s: '%s' is not of the form fd:N (for a "
				 "file, redirect: %s FILE)",
				 name, arg, strcmp(name, "input") ? ">" : "<");
	if (fcntl((int)v, F_GETFD) < 0)
		return usage_err("--%s: descriptor %u is not open", name, v);
	*out = (int)v;
	return 0;
}

static bool is_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static bool is_pipe_or_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 &&
	       (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode));
}

/*
 * Codec workers: send, the online CPUs (at most 8); recv, half of that, at
 * least 1: decompression costs about a quarter of compression (zstd and
 * zlib at level 1), and extra workers on a busy host only contend (on 2
 * CPUs with both sides on them, 1 decompress worker was 5-15 % faster and
 * used 2-7 % less CPU than 2).
 */
static unsigned default_threads(int side)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned t = n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;

	return side == SIDE_RECV ? (t + 1) / 2 : t;
}

/* A CPU that is not online would fail every pin at run time, silently for
 * the channel threads: name it now, with what is online. */
static int check_cpus_online(const struct mw_cpus *want)
{
	struct mw_cpus on = { 0 };
	char text[256] = "", list[256];
	FILE *f = fopen("/sys/devices/system/cpu/online", "re");
	unsigned i, k;

	if (!f)
		return 0; /* no sysfs: the kernel will say it at pin time */
	if (!fgets(text, sizeof(text), f))
		text[0] = '\0';
	fclose(f);
	text[strcspn(text, "\n")] = '\0';
	if (mw_parse_cpus(text, &on))
		return 0;
	for (i = 0; i < want->n; i++) {
		for (k = 0; k < on.n && on.cpu[k] != want->cpu[i]; k++)
			;
		if (k == on.n) {
			mw_cpus_format(&on, list, sizeof(list));
			return usage_err(
				"--cpus: CPU %u is not online; online: "
				"%s",
				want->cpu[i], list);
		}
	}
	return 0;
}

/*
 * exec: mode reads the stream from stdin (or --input) and writes it to
 * stdout (or --output). A descriptor that is closed, open the wrong way or
 * a terminal would only fail after the sender connected, with a misleading
 * errno ("Bad file descriptor"), or write binary to a terminal: say so now.
 */
static int check_stream_fd(int fd, bool out, const char *what)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return usage_err("%s is closed", what);
	if ((fl & O_ACCMODE) == (out ? O_RDONLY : O_WRONLY))
		return usage_err("%s is open %s", what,
				 out ? "read-only" : "write-only");
	if (isatty(fd))
		return usage_err(
			"%s is a terminal; %s", what,
			out ? "redirect it to a file or pipe (> FILE)" :
			      "give the stream on it (< FILE) or run "
			      "under QEMU's exec:");
	return 0;
}

static int check_stream_fds(const struct opts *o, int side)
{
	char what[48];

	if (side == SIDE_SEND) {
		snprintf(what, sizeof(what), "%s",
			 o->input ? "the --input descriptor" :
				    "standard input");
		return check_stream_fd(o->cfg.in_fd, false, what);
	}
	snprintf(what, sizeof(what), "%s",
		 o->output ? "the --output descriptor" : "standard output");
	return check_stream_fd(o->cfg.out_fd, true, what);
}

/* Sockets must not become fd 0-2 (a closed stdout would then receive a
 * channel's bytes from a stray write): park closed ones on /dev/null. */
static void keep_std_fds_taken(void)
{
	int fd;

	for (fd = 0; fd <= 2; fd++) {
		int nul;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0 && nul != fd) {
			dup2(nul, fd);
			close(nul);
		}
	}
}

/*
 * The default placement: off the VM's vCPUs (DESIGN, "Threads and CPUs"),
 * else the kernel's isolated CPUs as before.
 */
static int choose_cpus(struct opts *o)
{
	struct mw_cpus iso;

	mw_cpus_isolated(&iso);
	if (mw_place_auto((int)o->qemu_pid, &iso, &o->place) == -ESRCH)
		return usage_err("--qemu-pid %u: no vCPU threads ('CPU n/KVM' "
				 "or 'CPU n/TCG') found: %s",
				 o->qemu_pid, o->place.why);
	o->cfg.cpus = o->place.chosen.n ? o->place.chosen : iso;
	if (!o->place.chosen.n && iso.n) {
		size_t n = strlen(o->place.why);

		snprintf(o->place.why + n, sizeof(o->place.why) - n,
			 "; the kernel's isolated CPUs");
	}
	return 0;
}

/* Cross-option checks and derived values. */
static int finish_cfg(struct opts *o, int side)
{
	struct mw_xp_cfg *c = &o->cfg;
	int tls_ways = !!o->creds + !!o->psk + !!o->no_tls;
	const char *addr = side == SIDE_SEND ? o->to : o->listen;
	int lmin, lmax;

	if (!addr)
		return usage_err("%s is required",
				 side == SIDE_SEND ? "--to HOST:PORT" :
						     "--listen HOST:PORT");
	if (mw_parse_hostport(addr, c->host, sizeof(c->host), &c->port))
		return usage_err("'%s' is not HOST:PORT", addr);
	if (side == SIDE_SEND && !c->host[0])
		return usage_err("--to '%s' needs a host", addr);
	if (tls_ways == 0)
		return usage_err("choose --tls-creds DIR, --tls-psk FILE or, "
				 "for plaintext, --no-tls");
	if (tls_ways > 1)
		return usage_err("--tls-creds, --tls-psk and --no-tls exclude "
				 "each other");
	c->tls.server = side == SIDE_RECV;
	if (o->creds) {
		c->tls.mode = MW_TLS_X509;
		c->tls.creds_dir = o->creds;
	} else if (o->psk) {
		c->tls.mode = MW_TLS_PSK;
		c->tls.psk_file = o->psk;
		c->tls.psk_identity = o->psk_id ? o->psk_id : "qemu";
	}
	if (o->hostname && !o->creds)
		return usage_err("--tls-hostname has no effect without "
				 "--tls-creds (X.509)");
	if (o->psk_id && !o->psk)
		return usage_err("--tls-psk-identity has no effect without "
				 "--tls-psk");
	if ((o->nr_authz || o->authz_file) && o->no_tls)
		return usage_err("--tls-authz needs TLS: with --no-tls no "
				 "peer is authenticated");
	if ((o->nr_authz || o->authz_file) && side == SIDE_SEND && o->psk)
		return usage_err("send --tls-authz checks the receiver's "
				 "certificate: it needs --tls-creds (a PSK "
				 "receiver has no identity)");
	c->tls.authz = o->authz;
	c->tls.nr_authz = o->nr_authz;
	c->tls.authz_file = o->authz_file;
	c->tls.hostname = o->hostname ? o->hostname : c->host;
	mw_codec_level_range(c->codec, &lmin, &lmax);
	if (o->have_level && c->codec == MW_CODEC_NONE)
		return usage_err("--compress-level has no effect with "
				 "--compress none");
	if (!o->have_level)
		c->level = mw_codec_level_default(c->codec);
	else if (c->codec != MW_CODEC_NONE &&
		 (c->level < lmin || c->level > lmax)) {
		return usage_err("--compress-level must be in %d..%d for %s",
				 lmin, lmax, mw_codec_name(c->codec));
	}
	if (c->adaptive && c->codec == MW_CODEC_NONE)
		return usage_err("--adaptive needs a codec (--compress zlib "
				 "or zstd)");
	if (!o->have_threads)
		c->threads = default_threads(side);
	if (o->input && parse_fd("input", o->input, &c->in_fd))
		return -MW_E_USAGE;
	if (o->output && parse_fd("output", o->output, &c->out_fd))
		return -MW_E_USAGE;
	/* a socket from QEMU's fd: URI carries both directions */
	c->rev_fd = side == SIDE_SEND ?
			    (o->input && is_socket(c->in_fd) ? c->in_fd :
							       STDOUT_FILENO) :
			    (o->output && is_socket(c->out_fd) ? c->out_fd :
								 STDIN_FILENO);
	/* a receiver writing to a file or terminal is not under QEMU: its
	 * stdin (e.g. an ssh session's) is no return path */
	if (side == SIDE_RECV && (o->no_rp || !is_pipe_or_socket(c->out_fd)))
		c->rev_fd = -1;
	{
		const char *const *eps = side == SIDE_SEND ? o->listen_eps :
							     o->connect_eps;
		unsigned n = side == SIDE_SEND ? o->nr_listen : o->nr_connect;
		unsigned i;

		if (n && (o->input || o->output))
			return usage_err("--input/--output are for the exec: "
					 "mode, not with %s endpoints",
					 side == SIDE_SEND ? "--listen" :
							     "--connect");
		if (n && o->no_rp)
			return usage_err("--no-return-path is for the exec: "
					 "mode; with --connect every QEMU "
					 "connection carries its own return "
					 "path");
		for (i = 0; i < n; i++)
			if (mw_endpoint_parse(eps[i], &c->eps[i]))
				return usage_err("'%s' is not unix:PATH or "
						 "tcp:HOST:PORT",
						 eps[i]);
		c->nr_eps = n;
	}
	if (o->cpus) {
		if (mw_parse_cpus(o->cpus, &c->cpus))
			return usage_err("--cpus: '%s' is not a CPU list like "
					 "0-3,8",
					 o->cpus);
		if (check_cpus_online(&c->cpus))
			return -MW_E_USAGE;
		snprintf(o->place.why, sizeof(o->place.why), "--cpus");
	} else if (choose_cpus(o)) {
		return -MW_E_USAGE;
	}
	/* --print-config is run from a shell, where the stream's descriptors
	 * are not the ones QEMU will pass */
	if (!c->nr_eps && !o->print_config && check_stream_fds(o, side))
		return -MW_E_USAGE;
	keep_std_fds_taken();
	return 0;
}

static void print_config(const struct opts *o, int side)
{
	const struct mw_xp_cfg *c = &o->cfg;
	const char *records = mw_tls_records_mode();
	char buf[300];
	unsigned i;

	printf("side=%s\n", side == SIDE_SEND ? "send" : "recv");
	printf("address=%s:%u\n", c->host, c->port);
	printf("tls=%s\n", c->tls.mode == MW_TLS_X509 ? "x509" :
			   c->tls.mode == MW_TLS_PSK  ? "psk" :
							"off");
	if (c->tls.mode == MW_TLS_X509)
		printf("tls-creds=%s\n", c->tls.creds_dir);
	if (c->tls.mode == MW_TLS_PSK)
		printf("tls-psk=%s\n", c->tls.psk_file);
	if (c->tls.mode != MW_TLS_OFF)
		printf("tls-records=%s\n", records);
	for (i = 0; i < o->nr_authz; i++)
		printf("tls-authz=%s\n", o->authz[i]);
	if (o->authz_file)
		printf("tls-authz-file=%s\n", o->authz_file);
	for (i = 0; i < c->nr_allow; i++) {
		char a[64] = "?";

		inet_ntop(c->allow[i].af, c->allow[i].addr, a, sizeof(a));
		printf("allow-from=%s/%u\n", a, c->allow[i].bits);
	}
	if (side == SIDE_SEND) {
		printf("channels=%u\ncompress=%s\n", c->nr_chans,
		       mw_codec_name(c->codec));
		if (c->codec != MW_CODEC_NONE)
			printf("compress-level=%d\n", c->level);
		printf("adaptive=%s\n", c->adaptive ? "on" : "off");
		printf("chunk-size=%u\nmax-bandwidth=%llu\n", c->chunk_size,
		       (unsigned long long)c->max_bw);
		if (c->tls.mode == MW_TLS_X509)
			printf("tls-hostname=%s\n", c->tls.hostname);
		if (c->tls.mode == MW_TLS_PSK)
			printf("tls-psk-identity=%s\n", c->tls.psk_identity);
		printf("compress-threads=%u\n", c->threads);
	} else {
		printf("decompress-threads=%u\n", c->threads);
		printf("wait=%u\n", c->wait_s);
		printf("return-path=%s\n",
		       c->nr_eps ? "per connection" :
		       c->rev_fd >= 0 && is_pipe_or_socket(c->rev_fd) ?
				   "stdin" :
				   "off");
	}
	for (i = 0; i < c->nr_eps; i++)
		printf("%s=%s\n", side == SIDE_SEND ? "listen" : "connect",
		       side == SIDE_SEND ? o->listen_eps[i] :
					   o->connect_eps[i]);
	if (!c->nr_eps && side == SIDE_SEND)
		printf("input=%s\n", o->input ? o->input : "stdin");
	if (!c->nr_eps && side == SIDE_RECV)
		printf("output=%s\n", o->output ? o->output : "stdout");
	printf("window=%llu\ntimeout=%u\n", (unsigned long long)c->window,
	       c->timeout_s);
	printf("io=%s\n", mw_io_name(c->io));
	mw_cpus_format(&c->cpus, buf, sizeof(buf));
	printf("cpus=%s\n", c->cpus.n ? buf : "(not pinned)");
	printf("placement=%s\n", o->place.why);
	if (c->stats_file)
		printf("stats-file=%s\n", c->stats_file);
	if (c->latency_file)
		printf("latency-file=%s\n", c->latency_file);
}

/*
 * --print-config checks what a run checks before it touches the network:
 * the TLS credentials load (and MIGWIRE_TLS_RECORDS is valid), so a dry run
 * fails with the same line and status as the run would.
 */
static int check_config(const struct opts *o)
{
	struct mw_tls_ctx *tls = NULL;
	struct mw_err err = { 0 };
	int ret;

	if (o->cfg.tls.mode == MW_TLS_OFF)
		return 0;
	ret = mw_tls_ctx_new(&tls, &o->cfg.tls, &err);
	if (ret) {
		mw_log_emit(MW_LOG_ERR, "%s",
			    err.msg[0] ? err.msg : mw_strerror(ret));
		return ret == -MW_E_USAGE ? 2 : 1;
	}
	mw_tls_ctx_free(tls);
	return 0;
}

static int opt_index(const char *name)
{
	int i;

	for (i = 0; i < (int)NOPTS; i++)
		if (!strcmp(opt_defs[i].name, name))
			return i;
	return -1;
}

static void print_version(void)
{
	printf("migwire %s (protocol %u)\n", MW_VERSION,
	       (unsigned)MW_PROTO_VERSION);
}

static int run_side(int side, int argc, char **argv)
{
	struct option lopts[NOPTS + 2];
	struct opts o = { 0 };
	struct mw_err err = { 0 };
	size_t i, n = 0;
	int c, idx, ret;

	o.side_name = side == SIDE_SEND ? "send" : "recv";
	prog = side == SIDE_SEND ? "migwire send" : "migwire recv";
	mw_log_set_side(o.side_name);
	o.cfg.codec = MW_CODEC_ZSTD;
	o.cfg.nr_chans = 2;
	o.cfg.chunk_size = 256u << 10;
	o.cfg.window = 8u << 20;
	o.cfg.timeout_s = 30;
	o.cfg.in_fd = 0;
	o.cfg.out_fd = 1;
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
	/* "+": stop at the first non-option, so argv[optind] before each call
	 * is the token getopt is about to read (checked by mw_opt_exact) */
	for (;;) {
		const char *tok = optind < argc ? argv[optind] : NULL;

		idx = -1;
		c = getopt_long(argc, argv, "+hvq", lopts, &idx);
		if (c == -1)
			break;
		if (idx >= 0 && !mw_opt_exact(tok, lopts[idx].name)) {
			fprintf(stderr,
				"migwire %s: unknown option '%s' (did you "
				"mean --%s?) (see --help)\n",
				o.side_name, tok, lopts[idx].name);
			return 2;
		}
		if (c == 'h') {
			print_usage(stdout, side);
			return 0;
		}
		if (c == 'V') {
			print_version();
			return 0;
		}
		if (c == 'v' || c == 'q')
			c = 1000 + opt_index(c == 'v' ? "verbose" : "quiet");
		if (c < 1000 || c >= 1000 + (int)NOPTS) {
			if (c == ':' || (c == '?' && optopt && optopt >= 1000))
				fprintf(stderr,
					"migwire %s: option '%s' needs "
					"a value (see --help)\n",
					o.side_name, argv[optind - 1]);
			else
				fprintf(stderr,
					"migwire %s: unknown option "
					"'%s' (see --help)\n",
					o.side_name, argv[optind - 1]);
			return 2;
		}
		if (opt_defs[c - 1000].fn(&o, optarg))
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr,
			"migwire %s: unexpected argument '%s' (see "
			"--help)\n",
			o.side_name, argv[optind]);
		return 2;
	}
	if (finish_cfg(&o, side))
		return 2;
	if (o.place.why[0] && !o.print_config)
		MW_LOG(o.place.warn ? MW_LOG_WARN : MW_LOG_INFO,
		       "placement: %s", o.place.why);
	if (o.print_config) {
		ret = check_config(&o);
		if (!ret)
			print_config(&o, side);
		return ret;
	}
	ret = side == SIDE_SEND ? mw_xp_send_run(&o.cfg, &err) :
				  mw_xp_recv_run(&o.cfg, &err);
	if (ret) {
		mw_log_emit(MW_LOG_ERR, "%s",
			    err.msg[0] ? err.msg : mw_strerror(ret));
		/* a bad setting found only at start-up (the environment) */
		return ret == -MW_E_USAGE ? 2 : 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_main_help(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		print_version();
		return 0;
	}
	if (!strcmp(argv[1], "send"))
		return run_side(SIDE_SEND, argc - 1, argv + 1);
	if (!strcmp(argv[1], "recv"))
		return run_side(SIDE_RECV, argc - 1, argv + 1);
	if (!strcmp(argv[1], "bench"))
		return mw_bench_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h")) {
		if (argc > 2 && !strcmp(argv[2], "send"))
			print_usage(stdout, SIDE_SEND);
		else if (argc > 2 && !strcmp(argv[2], "recv"))
			print_usage(stdout, SIDE_RECV);
		else
			print_main_help(stdout);
		return 0;
	}
	fprintf(stderr, "migwire: unknown command '%s' (try 'migwire help')\n",
		argv[1]);
	return 2;
}
