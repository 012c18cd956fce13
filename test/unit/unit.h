/* Minimal unit test helpers: each test file defines test functions and a
 * main() that runs them with RUN(). The last line printed is the summary
 * "N passed, N failed"; the exit code is non-zero when any check failed. */
#ifndef TIDEPOOL_UNIT_H
#define TIDEPOOL_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_checks_failed;
static int unit_tests_passed, unit_tests_failed;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		unit_checks_failed++; \
	} \
} while (0)

#define CHECK_INT(a, b) do { \
	long long unit_a_ = (long long)(a), unit_b_ = (long long)(b); \
	if (unit_a_ != unit_b_) { \
		fprintf(stderr, "%s:%d: CHECK_INT failed: %s == %lld, expected %lld\n", \
			__FILE__, __LINE__, #a, unit_a_, unit_b_); \
		unit_checks_failed++; \
	} \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *unit_a_ = (a), *unit_b_ = (b); \
	if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_) != 0) { \
		fprintf(stderr, "%s:%d: CHECK_STR failed: %s == \"%s\", expected \"%s\"\n", \
			__FILE__, __LINE__, #a, unit_a_ ? unit_a_ : "(null)", unit_b_ ? unit_b_ : "(null)"); \
		unit_checks_failed++; \
	} \
} while (0)

#define RUN(fn) do { \
	int unit_before_ = unit_checks_failed; \
	fn(); \
	if (unit_checks_failed == unit_before_) { unit_tests_passed++; printf("ok   %s\n", #fn); } \
	else { unit_tests_failed++; printf("FAIL %s\n", #fn); } \
} while (0)

#define UNIT_DONE() ( \
	printf("%d passed, %d failed\n", unit_tests_passed, unit_tests_failed), \
	unit_tests_failed ? 1 : 0)

#endif
