/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: mw_tls_psk_parse(), QEMU keys.psk text from a hostile or
 * broken file. Input: byte 0 picks the identity looked for (NULL = only
 * validate, "qemu", or the identity of the first line), byte 1 the key
 * buffer's capacity (0..79, allocated exactly so ASan sees any overrun),
 * the rest is the file text (not NUL-terminated).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mw_tls.h"

static ssize_t parse(const char *text, size_t len, const char *id, size_t cap,
		     struct mw_err *err)
{
	uint8_t *key = malloc(cap ? cap : 1);
	ssize_t ret;

	FUZZ_CHECK(key);
	memset(err, 0, sizeof(*err));
	ret = mw_tls_psk_parse(text, len, id, key, cap, err);
	free(key);
	FUZZ_CHECK(ret >= 0 || ret == -ENOENT || ret == -EINVAL);
	FUZZ_CHECK(ret < 0 || (size_t)ret <= cap);
	FUZZ_CHECK(memchr(err->msg, '\0', sizeof(err->msg)));
	if (ret == -EINVAL)
		FUZZ_CHECK(err->msg[0]);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data + 2;
	size_t len = size - 2, cap;
	char first[64] = "";
	struct mw_err err;
	const char *id;
	ssize_t any, ret;

	if (size < 2)
		return 0;
	cap = data[1] % 80;
	if (data[0] % 3 == 2) {
		const char *c = memchr(text, ':', len < 63 ? len : 63);

		if (c) {
			memcpy(first, text, (size_t)(c - text));
			first[c - text] = '\0';
		}
		id = first;
	} else {
		id = data[0] % 3 ? "qemu" : NULL;
	}
	any = parse(text, len, NULL, 0, &err);
	FUZZ_CHECK(any == 0 || any == -EINVAL);
	if (!id)
		return 0;
	ret = parse(text, len, id, cap, &err);
	/* a file that validates fails only on lookup or the key's size */
	if (any == 0 && ret == -EINVAL)
		FUZZ_CHECK(strstr(err.msg, "longer than"));
	return 0;
}
