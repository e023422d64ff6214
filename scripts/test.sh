#!/usr/bin/env bash
# The whole pigeon test suite: unit tests of broker/ under ctest, then the
# integration tests (pytest, real /usr/sbin/mosquitto with the plugins on a
# free 127.0.0.1 port, real MQTT clients), first on a normal build with
# warnings as errors, then on an ASan+UBSan build.
#
#   scripts/test.sh            both builds (what CI runs)
#   scripts/test.sh --quick    the normal build only
#   PYTEST_ARGS="-k auth" scripts/test.sh --quick
#
# Exits non-zero on any failure, warning or sanitizer report.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)

build() {
	local dir=$1
	shift
	cmake -S . -B "$dir" -DPIGEON_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j"$jobs"
}

suite() {
	local dir=$1
	echo "== unit tests ($dir)"
	ctest --test-dir "$dir" --output-on-failure -j"$jobs"
	echo "== integration tests ($dir)"
	# shellcheck disable=SC2086
	PIGEON_BUILD_DIR="$root/$dir" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
		tests/integration ${PYTEST_ARGS:-}
}

build build
suite build

if [ "${1:-}" != "--quick" ]; then
	build build-asan -DPIGEON_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	PIGEON_SANITIZE=1 suite build-asan
fi
echo "== all tests passed"
