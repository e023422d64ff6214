#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages listed in scripts/debian-packages.txt that
# are not installed yet. Needs root (or sudo) only when something is missing.
# Used by the README's commands, .ci/run and docker/Dockerfile alike.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mapfile -t wanted < <(grep -v '^\s*#' "$here/debian-packages.txt" | grep -v '^\s*$')
missing=()
for p in "${wanted[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "pigeon: installing Debian packages: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian's mosquitto package enables its own system broker on port 1883. pigeon
# runs mosquitto itself, with its own configuration; when this script is what
# brought the package in, stop the stock service so the port is free.
if printf '%s\n' "${missing[@]}" | grep -qx mosquitto && [ -d /run/systemd/system ]; then
	echo "pigeon: disabling the stock mosquitto.service (pigeon starts its own broker)" >&2
	$sudo systemctl disable --now mosquitto.service || true
fi
if printf '%s\n' "${missing[@]}" | grep -qx prometheus && [ -d /run/systemd/system ]; then
	echo "pigeon: disabling the stock prometheus.service (the tests start their own on 127.0.0.1)" >&2
	$sudo systemctl disable --now prometheus.service || true
fi
