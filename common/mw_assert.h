/* SPDX-License-Identifier: MIT */
/*
 * Checks for states that must never happen.
 *
 * MW_ASSERT(cond) is a debug check: live when MW_DEBUG is defined (the Debug
 * build type defines it, and the sanitizer builds use it), compiled out
 * otherwise, so it may be as costly as it likes. cond is not evaluated in
 * release builds and must not have side effects.
 *
 * MW_BUG_ON(cond) stays on in every build (STYLE.md): it guards what would
 * otherwise send or write wrong bytes (a sequence number, a length against
 * its capacity), where aborting beats corrupting a VM. Keep it cheap.
 *
 * Both print the failed expression with file and line, then abort().
 */
#ifndef MW_ASSERT_H
#define MW_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define MW_BUG_ON(cond)                                               \
	do {                                                          \
		if (__builtin_expect(!!(cond), 0)) {                  \
			fprintf(stderr, "%s:%d: BUG: %s\n", __FILE__, \
				__LINE__, #cond);                     \
			abort();                                      \
		}                                                     \
	} while (0)

#ifdef MW_DEBUG
#define MW_ASSERT(cond) MW_BUG_ON(!(cond))
#else
/* sizeof keeps the operands "used" without evaluating them */
#define MW_ASSERT(cond) ((void)sizeof(!(cond)))
#endif

#endif
