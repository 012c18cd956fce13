#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz/ and runs
# each for a fixed time on its corpus (test/fuzz/corpus/<name>). New inputs
# go to a scratch directory, never into the repository's corpus. Ends with
# one "N passed, N failed" line (a target passes when it ran its time
# without a crash, leak, timeout or sanitizer report).
#
#   test/fuzz/run.sh                  every target, FUZZ_SECONDS (25) each
#   test/fuzz/run.sh scram config     only these
#   FUZZ_SECONDS=1200 nice -n 19 test/fuzz/run.sh frontend    a campaign
#   FUZZ_BUILD_DIR=/path              build directory (default build-fuzz)
#   FUZZ_WORK=/path                   scratch corpus and logs (default a temp dir)
#
# Debian packages: clang libclang-rt-dev (installed when run as root).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
BUILD=${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-25}
WORK=${FUZZ_WORK:-$(mktemp -d /tmp/tidepool-fuzz.XXXXXX)}
ALL=(frontend backend scram config hba conninfo sql pstmt proto)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

say() { printf '==> %s\n' "$*" >&2; }

if ! command -v clang >/dev/null 2>&1 || ! dpkg-query -W -f='${Status}\n' libclang-rt-dev 2>/dev/null | grep -q 'ok installed'; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "installing clang libclang-rt-dev"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang libclang-rt-dev </dev/null >/dev/null ||
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang libclang-rt-dev </dev/null >/dev/null; } ||
			{ say "could not install clang"; echo "0 passed, 1 failed"; exit 1; }
	else
		command -v clang >/dev/null 2>&1 || { say "needs clang and libclang-rt-dev"; echo "0 passed, 1 failed"; exit 1; }
	fi
fi

if [ ! -f "$BUILD/Makefile" ]; then
	[ -x "$ROOT/configure" ] || autoreconf -fi || exit 1
	mkdir -p "$BUILD"
	(cd "$BUILD" && "$ROOT/configure" CC=clang --enable-fuzzing >/dev/null) ||
		{ say "configure failed"; echo "0 passed, 1 failed"; exit 1; }
fi
say "make fuzz"
make -C "$BUILD" -j2 fuzz >/dev/null || { say "build failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
for t in "${TARGETS[@]}"; do
	bin=$BUILD/test/fuzz/fuzz_$t
	[ -x "$bin" ] || { say "no target $t"; failed=$((failed + 1)); continue; }
	mkdir -p "$WORK/$t/new" "$WORK/$t/artifacts"
	seeds=$ROOT/test/fuzz/corpus/$t
	opts=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
	      -artifact_prefix="$WORK/$t/artifacts/")
	[ -f "$ROOT/test/fuzz/dict/$t.dict" ] && opts+=(-dict="$ROOT/test/fuzz/dict/$t.dict")
	say "fuzz_$t for ${SECONDS_EACH}s (log $WORK/$t/log)"
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
		"$bin" "${opts[@]}" "$WORK/$t/new" "$seeds" >"$WORK/$t/log" 2>&1
	rc=$?
	stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$WORK/$t/log" | tail -n 1)
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		say "fuzz_$t ok: $stats"
	else
		failed=$((failed + 1))
		say "fuzz_$t FAILED (exit $rc); crash inputs in $WORK/$t/artifacts:"
		grep -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' "$WORK/$t/log" | head -n 40 >&2
	fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
