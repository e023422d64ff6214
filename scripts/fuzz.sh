#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every libFuzzer target of tests/fuzz (docs/fuzzing.md) for a bounded
# time each, one after the other, on a copy of the repo's seed corpus, in a
# clang build of its own (build-fuzz: ASan + UBSan, coverage of libpigeon,
# the whole tree compiled with -Werror under clang as a bonus check).
#
#   scripts/fuzz.sh                        every target, 60 s each
#   scripts/fuzz.sh token journal          only those
#   PIGEON_FUZZ_SECONDS=600 scripts/fuzz.sh request
#
# PIGEON_FUZZ_SECONDS  seconds per target (default 60)
# PIGEON_FUZZ_BUILD    build directory (default build-fuzz)
# PIGEON_FUZZ_CC       the compiler (default clang, Debian 12's clang-14)
#
# Exits non-zero if any target crashes, leaks, times out, runs out of memory
# or trips UBSan, and prints the report and where the input that did it is
# (a file to add to tests/fuzz/corpus/<target>/ as crash-<what> once fixed).
# The repo's corpus is never written to.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh

seconds=${PIGEON_FUZZ_SECONDS:-60}
build=${PIGEON_FUZZ_BUILD:-build-fuzz}
cc=${PIGEON_FUZZ_CC:-clang}
all=(token claims request topic journal push_answer dump_line sys_payload)
if [ $# -gt 0 ]; then
	targets=("$@")
else
	targets=("${all[@]}")
fi
for t in "${targets[@]}"; do
	if [ ! -f "tests/fuzz/fuzz_$t.c" ]; then
		echo "fuzz: no target '$t' (known: ${all[*]})" >&2
		exit 2
	fi
done

# Options per target. Longest input: a little over each parser's own bound,
# so the bound itself is exercised (tokens: PG_TOKEN_MAX 4096). fuzz_request
# is slow (a store per input) and its inputs are sequences: without
# -len_control=0 a one-minute run would never grow past a few requests.
# push_answer: provider answers are small JSON; 8 KiB leaves room for
# long strings and deep nesting. dump_line: 8 KiB is a 4 KiB message in
# hex, a SyncReply of a few dozen Envelopes.
target_opts() {
	case $1 in
	token) echo -max_len=4200 ;;
	claims) echo -max_len=3200 ;;
	topic) echo -max_len=600 ;;
	request) echo -max_len=4096 -len_control=0 ;;
	journal) echo -max_len=16384 ;;
	push_answer) echo -max_len=8192 ;;
	dump_line) echo -max_len=8192 ;;
	esac
}

echo "== fuzz: building $build with $cc"
CC=$cc cmake -S . -B "$build" -DPIGEON_FUZZ=ON -DPIGEON_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)"

work="$root/$build/fuzz-run"
rm -rf "$work"
mkdir -p "$work/tmp"
# The store targets make their temporary directories here, not in /dev/shm.
export TMPDIR="$work/tmp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
	export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

failed=()
for t in "${targets[@]}"; do
	dir="$work/$t"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
	seeds=$(find "$dir/corpus" -type f | wc -l)
	echo "== fuzz_$t: ${seconds}s from $seeds seeds"
	# shellcheck disable=SC2207
	opts=(-max_total_time="$seconds" $(target_opts "$t") -timeout=20 -rss_limit_mb=2048
		-print_final_stats=1 -artifact_prefix="$dir/artifacts/")
	if [ -f "tests/fuzz/$t.dict" ]; then
		opts+=(-dict="tests/fuzz/$t.dict")
	fi
	rc=0
	"$build/bin/fuzz_$t" "${opts[@]}" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
	bad=$(find "$dir/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o \
		-name 'timeout-*' -o -name 'oom-*' \) | sort)
	if [ $rc -ne 0 ] || [ -n "$bad" ]; then
		failed+=("$t")
		echo "-- fuzz_$t FAILED (exit $rc); the report:"
		# From the first report line on (the stats lines come from
		# -print_final_stats and say how far it got).
		awk '/ERROR: |runtime error|FUZZ_CHECK|^SUMMARY|Test unit written/ {on=1} on' \
			"$dir/log" | head -80
		echo "-- full log: $dir/log"
		for f in $bad; do
			echo "-- input: $f"
			echo "   again: $build/bin/fuzz_$t $f"
		done
	else
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
		speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log")
		echo "   ok: ${runs:-?} inputs (${speed:-?}/s), corpus $seeds -> $(find "$dir/corpus" -type f | wc -l)"
	fi
done
rm -rf "$work/tmp"

if [ ${#failed[@]} -gt 0 ]; then
	echo "== fuzz: FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "== fuzz: all targets ran ${seconds}s without a finding"
