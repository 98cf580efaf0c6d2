/*
 * die(): bench/flood's one way out of an error - print why and exit 2.
 * exit() runs the bench's atexit handler, which removes what the run
 * made.  Header-only because every file of the bench uses it.
 */
#ifndef SN_BENCH_DIE_H
#define SN_BENCH_DIE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((format(printf, 1, 2), noreturn, unused))
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench/flood: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

#endif
