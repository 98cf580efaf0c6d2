/*
 * The check macro of the C test programs: counts checks and failures and
 * names the failing line.  Each test program includes it once and ends
 * with its own summary (checks, failures).  CHECK_MAX_PRINTED bounds the
 * failures printed, for tests that check millions of frames.
 */
#ifndef SENTRY_TESTS_CHECK_H
#define SENTRY_TESTS_CHECK_H

#include <stdio.h>

#ifndef CHECK_MAX_PRINTED
#define CHECK_MAX_PRINTED 1000
#endif

static int checks, failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		checks++;                                                  \
		if (!(cond) && ++failures <= CHECK_MAX_PRINTED) {          \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__,      \
				__LINE__, #cond);                          \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
		}                                                          \
	} while (0)

#endif
