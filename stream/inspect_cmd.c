/* SPDX-License-Identifier: MIT */
/*
 * `migwire inspect [options] [FILE|-]`: reads a saved stream (QEMU's
 * migrate "exec:cat > FILE") or a live one on stdin to its end, feeds it
 * to an inspection (mw_inspect.h) and prints the report on stdout.
 * Errors are one line on stderr; exit status 0, 1 failure (unreadable,
 * not a QEMU stream), 2 usage. Context: the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mw_cli.h"
#include "mw_inspect.h"
#include "mw_log.h"
#include "mw_parse.h"

#define READ_SIZE (1u << 20)

struct inspect_opts {
	struct mw_inspect_cfg cfg;
	bool json;
	const char *path; /* NULL or "-": stdin */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: migwire inspect [options] [FILE|-]\n\n"
		"Reads a QEMU migration stream (a file saved with migrate "
		"\"exec:cat > FILE\",\nor stdin) and prints what it holds: "
		"sections, passes over RAM, pages by kind,\nhow re-sent pages "
		"relate to their last version, and what zstd, zlib and\nthe "
		"page stage would make of it.\n\n"
		"  --json             one JSON object instead of the table\n"
		"  --cache SIZE       page contents kept to classify re-sent "
		"pages (default 256M)\n"
		"  --chunk-size SIZE  codec estimate chunk, as send's "
		"(default 256K)\n"
		"  --no-codecs        skip the codec and page stage "
		"estimates\n"
		"  --page-size SIZE   target page size when the stream does "
		"not say (default 4K)\n"
		"  -v                 say on stderr where and why parsing "
		"stopped\n"
		"  -h, --help         this help\n"
		"  --version          the version\n"
		"Exit status: 0 success, 1 failure, 2 usage error.\n");
}

/* one usage line, as every migwire command prints it (mw_cli.c) */
#define usage_err(...) mw_usage_err("migwire inspect", __VA_ARGS__)

enum { O_JSON = 1000, O_CACHE, O_CHUNK, O_NOCODECS, O_PAGE, O_VERSION };

static int opt_size(const char *name, const char *arg, uint64_t min,
		    uint64_t max, uint64_t *out)
{
	if (mw_parse_size(arg, out) || *out < min || *out > max)
		return usage_err("--%s: '%s' is not a size in %llu..%llu", name,
				 arg, (unsigned long long)min,
				 (unsigned long long)max);
	return 0;
}

static int parse(struct inspect_opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", 0, NULL, O_JSON },
		{ "cache", 1, NULL, O_CACHE },
		{ "chunk-size", 1, NULL, O_CHUNK },
		{ "no-codecs", 0, NULL, O_NOCODECS },
		{ "page-size", 1, NULL, O_PAGE },
		{ "help", 0, NULL, 'h' },
		{ "version", 0, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = mw_getopt_exact(argc, argv, "+hv", lo,
				    "migwire inspect")) != -1) {
		switch (c) {
		case -2: /* an abbreviation, already said */
			return 2;
		case 'h':
			usage(stdout);
			return 0;
		case O_VERSION:
			printf("migwire %s\n", MW_VERSION);
			return 0;
		case 'v':
			mw_log_level = MW_LOG_INFO;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_NOCODECS:
			o->cfg.codecs = false;
			break;
		case O_CACHE:
			if (opt_size("cache", optarg, 0, 1ull << 40,
				     &o->cfg.cache))
				return 2;
			break;
		case O_CHUNK:
			if (opt_size("chunk-size", optarg, 4096, 16u << 20, &v))
				return 2;
			o->cfg.chunk_size = (uint32_t)v;
			break;
		case O_PAGE:
			if (opt_size("page-size", optarg, 1024,
				     MW_STREAM_PAGE_MAX, &v) ||
			    (v & (v - 1)))
				return usage_err("--page-size: '%s' is not a "
						 "power of two in 1K-64K",
						 optarg);
			o->cfg.page_size = (uint32_t)v;
			break;
		default:
			return usage_err("%s option '%s'",
					 optopt ? "missing value for" :
						  "unknown",
					 argv[optind - 1]);
		}
	}
	if (argc - optind > 1)
		return usage_err("one input only, got '%s' and '%s'",
				 argv[optind], argv[optind + 1]);
	if (optind < argc)
		o->path = argv[optind];
	return -1; /* go on */
}

/* Reads fd to its end into the inspection. Returns 0 or 1 (said why). */
static int run(struct mw_inspect *in, int fd, const char *name)
{
	uint8_t *buf = malloc(READ_SIZE);
	const struct mw_inspect_stats *s;
	struct mw_err err = { 0 };
	ssize_t n;
	int ret = 0;

	if (!buf) {
		fprintf(stderr, "migwire inspect: out of memory\n");
		return 1;
	}
	for (;;) {
		n = read(fd, buf, READ_SIZE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "migwire inspect: %s: %s\n", name,
				strerror(errno));
			ret = 1;
			break;
		}
		if (!n)
			break;
		if (mw_inspect_feed(in, buf, (size_t)n, &err)) {
			fprintf(stderr, "migwire inspect: %s\n", err.msg);
			ret = 1;
			break;
		}
		s = mw_inspect_stats(in);
		if (s->opaque && !s->header)
			break; /* not a stream: reading on tells nothing */
	}
	free(buf);
	if (!ret && mw_inspect_finish(in, &err)) {
		fprintf(stderr, "migwire inspect: %s\n", err.msg);
		ret = 1;
	}
	return ret;
}

/* A stream that never showed the QEVM header: say what it began with. */
static int not_a_stream(const struct mw_inspect_stats *s)
{
	uint32_t i;

	if (!s->bytes) {
		fprintf(stderr, "migwire inspect: empty input\n");
		return 1;
	}
	fprintf(stderr,
		"migwire inspect: not a QEMU migration stream: first bytes");
	for (i = 0; i < s->nfirst; i++)
		fprintf(stderr, " %02x", s->first[i]);
	fprintf(stderr, "\n");
	return 1;
}

int mw_cmd_inspect(int argc, char **argv)
{
	struct inspect_opts o = { .cfg = { .page_size = 4096,
					   .cache = 256ull << 20,
					   .chunk_size = 256u << 10,
					   .codecs = true } };
	const struct mw_inspect_stats *s;
	struct mw_inspect *in = NULL;
	struct mw_err err = { 0 };
	const char *name;
	int fd = 0, ret;

	mw_log_set_side("inspect");
	ret = parse(&o, argc, argv);
	if (ret >= 0)
		return ret;
	name = o.path && strcmp(o.path, "-") ? o.path : "(stdin)";
	if (o.path && strcmp(o.path, "-")) {
		fd = open(o.path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "migwire inspect: %s: %s\n", o.path,
				strerror(errno));
			return 1;
		}
	}
	if (mw_inspect_new(&in, &o.cfg, &err)) {
		fprintf(stderr, "migwire inspect: %s\n", err.msg);
		ret = 1;
		goto out;
	}
	ret = run(in, fd, name);
	if (ret)
		goto out;
	s = mw_inspect_stats(in);
	if (!s->header) {
		ret = not_a_stream(s);
		goto out;
	}
	if (o.json)
		mw_inspect_print_json(stdout, s, name);
	else
		mw_inspect_print_text(stdout, s, name);
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "migwire inspect: writing the report: %s\n",
			strerror(errno));
		ret = 1;
	}
out:
	mw_inspect_free(in);
	if (fd > 0)
		close(fd);
	return ret;
}
