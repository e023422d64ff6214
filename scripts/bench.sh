#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# pigeon's benchmark suite in one command: installs the Debian packages it
# needs (scripts/install-deps.sh, a no-op when all are there), builds
# RelWithDebInfo into build-bench/, then runs bench/suite.py, which measures
# every workload against pigeon and plain Mosquitto and writes the report.
#
#   scripts/bench.sh            full mode (~15 min on 2 cores): docs/benchmarks.md,
#                               docs/bench/*.png, docs/bench/results.json
#   scripts/bench.sh --quick    1 repetition, small counts (< 2 min), written to
#                               build-bench/quick/ (never over the committed report)
#   scripts/bench.sh [--no-build] [suite options: --out DIR --reps N --mosquitto PATH
#                    --only W,W --skip W,W --max-other-cpu PCT --report-only FILE]
#
# The machine should be otherwise idle: other processes' load lowers both
# brokers' figures, and not necessarily equally (the report says how much
# other CPU each run saw). Exit status: that of bench/suite.py.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build=$root/build-bench
do_build=1
args=()
for a in "$@"; do
	case $a in
	--no-build) do_build=0 ;;
	-h | --help)
		awk 'NR > 2 && /^#/ {sub(/^# ?/, ""); print; next} NR > 2 {exit}' "${BASH_SOURCE[0]}"
		exec /usr/bin/python3 bench/suite.py --help
		;;
	*) args+=("$a") ;;
	esac
done

bash scripts/install-deps.sh

if ((do_build)); then
	echo "# building in $build (RelWithDebInfo)" >&2
	mkdir -p "$build"
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIGEON_WERROR=ON \
		>"$build/bench-build.log" 2>&1 || {
		tail -30 "$build/bench-build.log" >&2
		echo "scripts/bench.sh: cmake failed, see $build/bench-build.log" >&2
		exit 1
	}
	cmake --build "$build" -j"$(nproc)" --target pigeon-bench pigeon_auth pigeon_inbox \
		pigeon_push pigeon-send pigeon-token >>"$build/bench-build.log" 2>&1 || {
		tail -30 "$build/bench-build.log" >&2
		echo "scripts/bench.sh: build failed, see $build/bench-build.log" >&2
		exit 1
	}
fi

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec /usr/bin/python3 bench/suite.py --build-dir "$build" --command "./scripts/bench.sh $*" \
	"${args[@]}"
