#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Container start: make sure the data volume has a signing key and belongs to
# the mosquitto user (mosquitto switches to it before loading plugins), then
# run the command (the broker by default). The volume holds the key and every
# stored message: only its owner may enter it (0700), and files the broker
# creates are 0600 (umask 077).
set -eu
data=${PIGEON_DATA:-/var/lib/pigeon}
if [ ! -s "$data/jwt.secret" ]; then
	(umask 077 && head -c 32 /dev/urandom >"$data/jwt.secret")
	echo "pigeon: generated a development HS256 signing key in $data/jwt.secret" >&2
	echo "pigeon: mint tokens with: docker exec <container> pigeon-token mint --secret-file $data/jwt.secret --sub alice --dev phone" >&2
fi
chown -R mosquitto:mosquitto "$data"
chmod 0700 "$data"
umask 077
exec "$@"
