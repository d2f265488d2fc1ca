/*
 * unit.h - a tiny test harness. Each test file defines test functions and a
 * main() that runs them with UNIT_RUN(); the process prints one line per
 * failed check, a final "N passed, N failed" line, and exits 1 on failure.
 */
#ifndef DD_UNIT_H
#define DD_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;
static const char *unit_current;

#define CHECK(cond) do { \
	if (cond) { unit_passed++; } else { unit_failed++; \
		fprintf(stderr, "FAIL %s:%d %s: %s\n", __FILE__, __LINE__, \
			unit_current, #cond); } \
} while (0)

#define CHECK_EQ(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (_a == _b) { unit_passed++; } else { unit_failed++; \
		fprintf(stderr, "FAIL %s:%d %s: %s == %s (%lld != %lld)\n", \
			__FILE__, __LINE__, unit_current, #a, #b, _a, _b); } \
} while (0)

#define UNIT_RUN(fn) do { unit_current = #fn; fn(); } while (0)

#define UNIT_DONE() do { \
	printf("%s: %d passed, %d failed\n", __FILE__, unit_passed, unit_failed); \
	return unit_failed ? 1 : 0; \
} while (0)

#endif
