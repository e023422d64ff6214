#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Unpacks a Mosquitto broker from Debian 12's bookworm-backports into a
# private directory, without touching the system's apt sources or its
# /usr/sbin/mosquitto, and prints the path of the unpacked binary.
#
#   scripts/fetch-mosquitto.sh [DIR]     (default DIR: build-brokers)
#
# The version is the one bookworm-backports carries (2.0.21 when this was
# written); the binary lands in DIR/mosquitto-<version>/usr/sbin/mosquitto.
# Its libraries (libwebsockets17, libcjson1, ...) come from bookworm itself
# and are in scripts/debian-packages.txt. A second run reuses what is there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${1:-$root/build-brokers}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
apt_dir=$dir/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
echo "deb http://deb.debian.org/debian bookworm-backports main" >"$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
	-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
	-o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")

version=$(cat "$dir/version" 2>/dev/null || true)
if [ -z "$version" ] || [ ! -x "$dir/mosquitto-$version/usr/sbin/mosquitto" ]; then
	apt-get "${apt_opts[@]}" -q update >&2
	version=$(apt-cache "${apt_opts[@]}" show mosquitto 2>/dev/null |
		awk '/^Version:/ {print $2}' | grep '~bpo12' | sort -V | tail -1)
	[ -n "$version" ] || { echo "fetch-mosquitto: no mosquitto in bookworm-backports" >&2; exit 1; }
	(cd "$apt_dir/debs" && rm -f ./*.deb && apt-get "${apt_opts[@]}" -q download "mosquitto=$version" >&2)
	upstream=${version%%-*}
	rm -rf "$dir/mosquitto-$upstream"
	dpkg -x "$apt_dir/debs"/mosquitto_*.deb "$dir/mosquitto-$upstream"
	echo "$upstream" >"$dir/version"
	version=$upstream
fi
bin=$dir/mosquitto-$version/usr/sbin/mosquitto
if ! ldd "$bin" | grep -q 'not found'; then
	echo "$bin"
else
	echo "fetch-mosquitto: $bin misses libraries:" >&2
	ldd "$bin" | grep 'not found' >&2
	exit 1
fi
