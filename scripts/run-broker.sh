#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the real mosquitto with pigeon's plugins on 127.0.0.1:1883 for
# development: installs missing Debian packages, builds, creates the data
# directory with a development HS256 signing key on first run, writes the
# broker configuration there, prints how to connect, and runs the broker in
# the foreground (Ctrl-C stops it).
#
# Environment (all optional):
#   PIGEON_DATA       data directory (default: <repo>/data): key, db, config
#   PIGEON_PORT       listener port (default: 1883)
#   PIGEON_BIND       listener address (default: 127.0.0.1)
#   PIGEON_BUILD_DIR  build directory (default: <repo>/build)
#   PIGEON_MOSQUITTO  the broker binary (default: /usr/sbin/mosquitto)
#   PIGEON_WEBHOOK_URL, PIGEON_WEBHOOK_SECRET
#                     enable pigeon_push's webhook provider (docs/push.md);
#                     without them pigeon_push runs with no provider and
#                     answers RegisterDevice with 501
#
# The data directory holds the signing key and every stored message: it is
# made 0700 and the broker runs with umask 077, so its files are 0600.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=${PIGEON_DATA:-$root/data}
port=${PIGEON_PORT:-1883}
bind=${PIGEON_BIND:-127.0.0.1}
build=${PIGEON_BUILD_DIR:-$root/build}
mosquitto=${PIGEON_MOSQUITTO:-/usr/sbin/mosquitto}

bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

umask 077
mkdir -p "$data"
chmod 0700 "$data"
data=$(cd "$data" && pwd)
if [ ! -s "$data/jwt.secret" ]; then
	(umask 077 && head -c 32 /dev/urandom >"$data/jwt.secret")
	echo "pigeon: generated a development HS256 signing key in $data/jwt.secret"
fi

# Mosquitto started as root switches to the 'mosquitto' user before it loads
# plugins, which could then not read a build tree under /root. This is a
# development broker run by hand, so it stays the user that started it; the
# Docker image (docker/) shows the production layout under a service user.
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root"

conf="$data/mosquitto.conf"
cat >"$conf" <<CONF
# Written by scripts/run-broker.sh; edit conf/mosquitto.conf for the full,
# commented list of options.
listener $port $bind
allow_anonymous false
set_tcp_nodelay true
$user_line
log_dest stdout
log_type error
log_type warning
log_type notice
log_type information

plugin $build/lib/pigeon_auth.so
plugin_opt_jwt_secret_file $data/jwt.secret

plugin $build/lib/pigeon_inbox.so
plugin_opt_db_path $data/pigeon.db

plugin $build/lib/pigeon_push.so
plugin_opt_db_path $data/pigeon-push.db
CONF
if [ -n "${PIGEON_WEBHOOK_URL:-}" ]; then
	printf 'plugin_opt_webhook_url %s\nplugin_opt_webhook_secret %s\n' \
		"$PIGEON_WEBHOOK_URL" "${PIGEON_WEBHOOK_SECRET:?PIGEON_WEBHOOK_SECRET is needed with PIGEON_WEBHOOK_URL}" >>"$conf"
fi

tok="$build/bin/pigeon-token"
cat <<MSG
pigeon: starting mosquitto on $bind:$port (config: $conf)

Mint a token and connect (in another shell):
  TOKEN=\$($tok mint --secret-file $data/jwt.secret --sub alice --dev phone)
  mosquitto_sub -h $bind -p $port -V mqttv5 -u alice -P "\$TOKEN" -i alice:phone -t 'im/alice/#' -v

  SVC=\$($tok mint --secret-file $data/jwt.secret --sub backend --dev api --role service)
  mosquitto_pub -h $bind -p $port -V mqttv5 -u backend -P "\$SVC" -i backend:api -q 1 \\
      -t im/alice/chat -m 'hello alice'

MSG
cd "$data"
exec "$mosquitto" -c "$conf"
