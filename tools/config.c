/* SPDX-License-Identifier: MIT */
/*
 * What the options mean together: cross-option checks, the stream's
 * descriptors, CPU placement, and --print-config (tools/cli.h). Main
 * thread, before the run starts.
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

#include "cli.h"
#include "mw_fd.h"
#include "mw_comp.h"
#include "mw_log.h"
#include "mw_pages.h"
#include "mw_parse.h"
#include "mw_wire.h"

static int parse_fd(const char *name, const char *arg, int *out)
{
	uint32_t v;

	if (strncmp(arg, "fd:", 3) || mw_parse_u32(arg + 3, 0, 65535, &v))
		return cli_usage_err(
			"--%s: '%s' is not of the form fd:N (for a "
			"file, redirect: %s FILE)",
			name, arg, strcmp(name, "input") ? ">" : "<");
	if (fcntl((int)v, F_GETFD) < 0)
		return cli_usage_err("--%s: descriptor %u is not open", name,
				     v);
	*out = (int)v;
	return 0;
}

bool cli_is_pipe_or_socket(int fd)
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
			return cli_usage_err(
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
		return cli_usage_err("%s is closed", what);
	if ((fl & O_ACCMODE) == (out ? O_RDONLY : O_WRONLY))
		return cli_usage_err("%s is open %s", what,
				     out ? "read-only" : "write-only");
	if (isatty(fd))
		return cli_usage_err(
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
		nul = open("/dev/null", O_RDWR); /* inherited like the std fd */
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
		return cli_usage_err(
			"--qemu-pid %u: no vCPU threads ('CPU n/KVM' "
			"or 'CPU n/TCG') found: %s",
			o->qemu_pid, o->place.why);
	/* sharing with the vCPUs: their CPUs may be the isolated ones, so
	 * no fallback then; without a QEMU, the isolated CPUs as before */
	if (o->place.chosen.n || o->place.shared)
		o->cfg.cpus = o->place.chosen;
	else
		o->cfg.cpus = iso;
	if (!o->place.chosen.n && !o->place.shared && iso.n) {
		size_t n = strlen(o->place.why);

		snprintf(o->place.why + n, sizeof(o->place.why) - n,
			 "; the kernel's isolated CPUs");
	}
	return 0;
}

int cli_opt_authz(struct opts *o, const char *a)
{
	if (o->nr_authz == MW_AUTHZ_MAX)
		return cli_usage_err("--tls-authz: at most %u; put more in "
				     "--tls-authz-file",
				     MW_AUTHZ_MAX);
	if (!a[0])
		return cli_usage_err("--tls-authz: empty identity");
	o->authz[o->nr_authz++] = a;
	return 0;
}

int cli_opt_authz_file(struct opts *o, const char *a)
{
	o->authz_file = a;
	return 0;
}

int cli_opt_allow(struct opts *o, const char *a)
{
	struct mw_xp_cfg *c = &o->cfg;

	if (c->nr_allow == MW_ALLOW_MAX)
		return cli_usage_err("--allow-from: at most %u networks",
				     MW_ALLOW_MAX);
	if (mw_cidr_parse(a, &c->allow[c->nr_allow]))
		return cli_usage_err("--allow-from: '%s' is not an address or "
				     "ADDR/BITS network (e.g. 10.0.0.0/8, "
				     "fd00::/8)",
				     a);
	c->nr_allow++;
	return 0;
}

/* Cross-option checks and derived values. */
int cli_opt_pages(struct opts *o, const char *a)
{
	if (strcmp(a, "auto") && strcmp(a, "off"))
		return cli_usage_err("--pages: '%s' is neither auto nor off",
				     a);
	o->cfg.pages = !strcmp(a, "auto");
	return 0;
}

int cli_opt_page_cache(struct opts *o, const char *a)
{
	uint64_t v;

	if (mw_parse_size(a, &v) || v < MW_PAGES_CACHE_MIN ||
	    v > MW_PAGES_CACHE_MAX || v % MW_PAGES_PAGE)
		return cli_usage_err("--page-cache: '%s' is not a size in "
				     "1M..16G bytes, a multiple of 4K",
				     a);
	o->cfg.page_cache = v;
	return 0;
}

/*
 * send --to: every HOST:PORT of every --to (comma-separated) is a path;
 * paths[0] is also cfg.host/port, which the TLS host name check and the
 * messages use. A path given twice is refused: it would only double a
 * channel's home.
 */
static int parse_paths(struct opts *o)
{
	struct mw_xp_cfg *c = &o->cfg;
	unsigned i, k;

	c->nr_paths = 0;
	for (i = 0; i < o->nr_to_args; i++) {
		const char *p = o->to_args[i];

		for (;;) {
			const char *comma = strchr(p, ',');
			size_t n = comma ? (size_t)(comma - p) : strlen(p);
			char one[300];

			if (c->nr_paths == MW_PATHS_MAX)
				return cli_usage_err("--to: at most %u paths",
						     MW_PATHS_MAX);
			if (n >= sizeof(one))
				return cli_usage_err("--to: '%.*s' is too long",
						     40, p);
			memcpy(one, p, n);
			one[n] = 0;
			if (mw_parse_hostport(one, c->paths[c->nr_paths].host,
					      sizeof(c->paths[0].host),
					      &c->paths[c->nr_paths].port))
				return cli_usage_err("--to: '%s' is not "
						     "HOST:PORT",
						     one);
			if (!c->paths[c->nr_paths].host[0])
				return cli_usage_err("--to '%s' needs a host",
						     one);
			for (k = 0; k < c->nr_paths; k++)
				if (!strcmp(c->paths[k].host,
					    c->paths[c->nr_paths].host) &&
				    c->paths[k].port ==
					    c->paths[c->nr_paths].port)
					return cli_usage_err("--to: '%s' is "
							     "given twice",
							     one);
			c->nr_paths++;
			if (!comma)
				break;
			p = comma + 1;
		}
	}
	memcpy(c->host, c->paths[0].host, sizeof(c->host));
	c->port = c->paths[0].port;
	return 0;
}

int cli_finish(struct opts *o, int side)
{
	struct mw_xp_cfg *c = &o->cfg;
	int tls_ways = !!o->creds + !!o->psk + !!o->no_tls;
	const char *addr = side == SIDE_SEND ? o->to : o->listen;
	int lmin, lmax;

	if (!addr)
		return cli_usage_err("%s is required",
				     side == SIDE_SEND ? "--to HOST:PORT" :
							 "--listen HOST:PORT");
	if (side == SIDE_SEND) {
		if (parse_paths(o))
			return -MW_E_USAGE;
	} else if (mw_parse_hostport(addr, c->host, sizeof(c->host),
				     &c->port)) {
		return cli_usage_err("'%s' is not HOST:PORT", addr);
	}
	if (tls_ways == 0)
		return cli_usage_err(
			"choose --tls-creds DIR, --tls-psk FILE or, "
			"for plaintext, --no-tls");
	if (tls_ways > 1)
		return cli_usage_err(
			"--tls-creds, --tls-psk and --no-tls exclude "
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
		return cli_usage_err("--tls-hostname has no effect without "
				     "--tls-creds (X.509)");
	if (o->psk_id && !o->psk)
		return cli_usage_err("--tls-psk-identity has no effect without "
				     "--tls-psk");
	if ((o->nr_authz || o->authz_file) && o->no_tls)
		return cli_usage_err("--tls-authz needs TLS: with --no-tls no "
				     "peer is authenticated");
	if ((o->nr_authz || o->authz_file) && side == SIDE_SEND && o->psk)
		return cli_usage_err("send --tls-authz checks the receiver's "
				     "certificate: it needs --tls-creds (a PSK "
				     "receiver has no identity)");
	if (cli_load_join_token(o))
		return -MW_E_USAGE;
	c->tls.authz = o->authz;
	c->tls.nr_authz = o->nr_authz;
	c->tls.authz_file = o->authz_file;
	c->tls.hostname = o->hostname ? o->hostname : c->host;
	mw_codec_level_range(c->codec, &lmin, &lmax);
	if (o->have_level && c->codec == MW_CODEC_NONE)
		return cli_usage_err("--compress-level has no effect with "
				     "--compress none");
	if (!o->have_level)
		c->level = mw_codec_level_default(c->codec);
	else if (c->codec != MW_CODEC_NONE &&
		 (c->level < lmin || c->level > lmax)) {
		return cli_usage_err(
			"--compress-level must be in %d..%d for %s", lmin, lmax,
			mw_codec_name(c->codec));
	}
	/*
	 * The token bucket makes a channel wait up to chunk x channels / rate
	 * before its next frame, and a receiver takes a peer silent for its
	 * --timeout for dead (the heartbeat cannot go out past a frame that
	 * is waiting for budget): refuse what would be cut off
	 */
	if (side == SIDE_SEND && c->max_bw &&
	    (double)c->chunk_size * c->nr_chans / (double)c->max_bw * 2 >
		    (double)c->timeout_s)
		return cli_usage_err(
			"--max-bandwidth %llu B/s: a channel may wait %.0f s "
			"for its next %u-byte chunk (--chunk-size x --channels "
			"/ rate), more than half of --timeout %u s, after "
			"which a receiver takes it for dead: raise --timeout "
			"or lower --chunk-size",
			(unsigned long long)c->max_bw,
			(double)c->chunk_size * c->nr_chans / (double)c->max_bw,
			c->chunk_size, c->timeout_s);
	if (c->adaptive && c->codec == MW_CODEC_NONE)
		return cli_usage_err(
			"--adaptive needs a codec (--compress zlib "
			"or zstd)");
	if (!o->have_threads)
		c->threads = default_threads(side);
	if (!c->page_cache)
		c->page_cache = MW_PAGES_CACHE_DEFAULT;
	if (o->input && parse_fd("input", o->input, &c->in_fd))
		return -MW_E_USAGE;
	if (o->output && parse_fd("output", o->output, &c->out_fd))
		return -MW_E_USAGE;
	/* a socket from QEMU's fd: URI carries both directions */
	c->rev_fd =
		side == SIDE_SEND ?
			(o->input && mw_fd_is_sock(c->in_fd) ? c->in_fd :
							       STDOUT_FILENO) :
			(o->output && mw_fd_is_sock(c->out_fd) ? c->out_fd :
								 STDIN_FILENO);
	/* a receiver writing to a file or terminal is not under QEMU: its
	 * stdin (e.g. an ssh session's) is no return path */
	if (side == SIDE_RECV &&
	    (o->no_rp || !cli_is_pipe_or_socket(c->out_fd)))
		c->rev_fd = -1;
	{
		const char *const *eps = side == SIDE_SEND ? o->listen_eps :
							     o->connect_eps;
		unsigned n = side == SIDE_SEND ? o->nr_listen : o->nr_connect;
		unsigned i;

		if (n && (o->input || o->output))
			return cli_usage_err(
				"--input/--output are for the exec: "
				"mode, not with %s endpoints",
				side == SIDE_SEND ? "--listen" : "--connect");
		if (n && o->no_rp)
			return cli_usage_err(
				"--no-return-path is for the exec: "
				"mode; with --connect every QEMU "
				"connection carries its own return "
				"path");
		for (i = 0; i < n; i++)
			if (mw_endpoint_parse(eps[i], &c->eps[i]))
				return cli_usage_err("'%s' is not unix:PATH or "
						     "tcp:HOST:PORT",
						     eps[i]);
		c->nr_eps = n;
	}
	if (o->cpus) {
		if (mw_parse_cpus(o->cpus, &c->cpus))
			return cli_usage_err(
				"--cpus: '%s' is not a CPU list like "
				"0-3,8",
				o->cpus);
		if (check_cpus_online(&c->cpus))
			return -MW_E_USAGE;
		snprintf(o->place.why, sizeof(o->place.why), "--cpus");
	} else if (choose_cpus(o)) {
		return -MW_E_USAGE;
	}
	if (cli_finish_budget(o, side))
		return -MW_E_USAGE;
	/* --print-config is run from a shell, where the stream's descriptors
	 * are not the ones QEMU will pass */
	if (!c->nr_eps && !o->print_config && !o->probe &&
	    check_stream_fds(o, side))
		return -MW_E_USAGE;
	keep_std_fds_taken();
	/* a person watches a terminal; QEMU's stderr is QEMU's log */
	c->progress_tty = isatty(STDERR_FILENO);
	if (!o->have_progress && c->progress_tty && !mw_qemu_ancestor() &&
	    mw_log_level >= MW_LOG_WARN)
		c->progress_s = 1;
	return 0;
}

void cli_print_config(const struct opts *o, int side)
{
	const struct mw_xp_cfg *c = &o->cfg;
	const char *records = mw_tls_records_mode();
	char buf[300];
	unsigned i;

	printf("side=%s\n", side == SIDE_SEND ? "send" : "recv");
	printf("address=%s:%u\n", c->host, c->port);
	for (i = 1; side == SIDE_SEND && i < c->nr_paths; i++)
		printf("address=%s:%u\n", c->paths[i].host, c->paths[i].port);
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
	if (o->join_token_path)
		printf("join-token=%s (%zu bytes)\n", o->join_token_path,
		       c->join_token_len);
	for (i = 0; i < c->nr_allow; i++) {
		char a[64] = "?";

		inet_ntop(c->allow[i].af, c->allow[i].addr, a, sizeof(a));
		printf("allow-from=%s/%u\n", a, c->allow[i].bits);
	}
	printf("pages=%s\npage-cache=%llu\n", c->pages ? "auto" : "off",
	       (unsigned long long)c->page_cache);
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
		       c->rev_fd >= 0 && cli_is_pipe_or_socket(c->rev_fd) ?
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
	if (c->reconnect_s)
		printf("reconnect-timeout=%u\n", c->reconnect_s);
	else
		printf("reconnect-timeout=0 (a lost channel fails at once)\n");
	printf("io=%s\n", mw_io_name(c->io));
	if (c->progress_s)
		printf("progress=%u%s\n", c->progress_s,
		       c->progress_tty ? " (terminal)" : "");
	else
		printf("progress=off\n");
	mw_cpus_format(&c->cpus, buf, sizeof(buf));
	printf("cpus=%s\n", c->cpus.n ? buf : "(not pinned)");
	printf("placement=%s\n", o->place.why);
	cli_print_budget(o);
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
int cli_check_config(const struct opts *o)
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
