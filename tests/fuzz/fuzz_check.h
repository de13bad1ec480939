/* SPDX-License-Identifier: MIT */
/*
 * The one check macro of the fuzz targets. assert() is compiled out in the
 * RelWithDebInfo builds that replay the corpora (NDEBUG), so the targets
 * abort on their own: libFuzzer and the replay driver both turn the abort
 * into a failure that names the input.
 */
#ifndef MW_FUZZ_CHECK_H
#define MW_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
