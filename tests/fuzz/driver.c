/* SPDX-License-Identifier: MIT */
/*
 * Corpus replay driver (zstd's regression_driver.c habit): runs a fuzz
 * target's LLVMFuzzerTestOneInput() once over every file named on the
 * command line, or found (not recursively) in a directory named there. It
 * links instead of libFuzzer, so every corpus runs under CTest with any
 * compiler; a crash, sanitizer report or failed check aborts the run and
 * names the input file first, so the failing input is the last line of
 * the test log.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path, unsigned long *nrun)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;
	size_t got;

	if (!f) {
		fprintf(stderr, "driver: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET)) {
		fprintf(stderr, "driver: %s: cannot size\n", path);
		fclose(f);
		return -1;
	}
	/* an exact-size heap copy, so ASan catches a read one byte past */
	buf = malloc(len ? (size_t)len : 1);
	if (!buf) {
		fclose(f);
		return -1;
	}
	got = fread(buf, 1, (size_t)len, f);
	fclose(f);
	if (got != (size_t)len) {
		fprintf(stderr, "driver: %s: short read\n", path);
		free(buf);
		return -1;
	}
	fprintf(stderr, "driver: %s (%zu bytes)\n", path, got);
	LLVMFuzzerTestOneInput(buf, got);
	free(buf);
	(*nrun)++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs the files of dir in name order, so a log is reproducible. */
static int run_dir(const char *dir, unsigned long *nrun)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	int ret = 0;

	if (!d) {
		fprintf(stderr, "driver: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		char **nn;

		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			nn = realloc(names, cap * sizeof(*names));
			if (!nn) {
				ret = -1;
				break;
			}
			names = nn;
		}
		if (asprintf(&names[n], "%s/%s", dir, e->d_name) < 0) {
			ret = -1;
			break;
		}
		n++;
	}
	closedir(d);
	if (names)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++) {
		struct stat st;

		if (!ret && !stat(names[i], &st) && S_ISREG(st.st_mode))
			ret = run_file(names[i], nrun);
		free(names[i]);
	}
	free(names);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned long nrun = 0;
	int i;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++) {
		struct stat st;
		int ret;

		if (stat(argv[i], &st)) {
			fprintf(stderr, "driver: %s: %s\n", argv[i],
				strerror(errno));
			return 1;
		}
		ret = S_ISDIR(st.st_mode) ? run_dir(argv[i], &nrun) :
					    run_file(argv[i], &nrun);
		if (ret)
			return 1;
	}
	if (!nrun) {
		fprintf(stderr, "driver: no inputs\n");
		return 1;
	}
	fprintf(stderr, "driver: %lu inputs ok\n", nrun);
	return 0;
}
