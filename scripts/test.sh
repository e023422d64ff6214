#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole pigeon test suite: unit tests of broker/ under ctest, then the
# integration tests (pytest, the real mosquitto with the plugins on a free
# 127.0.0.1 port, real MQTT clients) against every supported broker, first
# on a normal build with warnings as errors, then on an ASan+UBSan build,
# then the fuzz targets for a bounded time (scripts/fuzz.sh).
#
# Brokers: Debian 12's /usr/sbin/mosquitto (2.0.11) and the newest 2.0 from
# bookworm-backports (2.0.21), unpacked privately by scripts/fetch-mosquitto.sh
# without touching the system's broker. The unit tests do not involve a
# broker, so they run once per build.
#
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --quick    the normal build only, no fuzzing
#   PIGEON_MOSQUITTO=/path/to/mosquitto scripts/test.sh --quick   one broker only
#   PYTEST_ARGS="-k auth" scripts/test.sh --quick
#
# Exits non-zero on any failure, warning or sanitizer report.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)

if [ -n "${PIGEON_MOSQUITTO:-}" ]; then
	brokers=("$PIGEON_MOSQUITTO")
else
	brokers=(/usr/sbin/mosquitto "$(bash scripts/fetch-mosquitto.sh "$root/build-brokers")")
fi

build() {
	local dir=$1
	shift
	cmake -S . -B "$dir" -DPIGEON_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j"$jobs"
}

suite() {
	local dir=$1 broker
	echo "== unit tests ($dir)"
	ctest --test-dir "$dir" --output-on-failure -j"$jobs"
	for broker in "${brokers[@]}"; do
		echo "== integration tests ($dir, $("$broker" -h | head -1))"
		# shellcheck disable=SC2086
		PIGEON_MOSQUITTO="$broker" PIGEON_BUILD_DIR="$root/$dir" /usr/bin/python3 -m pytest -q \
			-p no:cacheprovider tests/integration ${PYTEST_ARGS:-}
	done
}

build build
suite build

if [ "${1:-}" != "--quick" ]; then
	build build-asan -DPIGEON_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	PIGEON_SANITIZE=1 suite build-asan
	if [ -f scripts/fuzz.sh ]; then
		echo "== fuzzing (scripts/fuzz.sh)"
		bash scripts/fuzz.sh
	fi
fi
echo "== all tests passed"
