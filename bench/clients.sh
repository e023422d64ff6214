#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The client benchmarks of docs/benchmarks.md ("Clients"):
#
#   send     pigeon-send to 10,000 users from a file (one CHAT each, 256-byte
#            body, default window 500): msg/s = 10,000 / the run's wall time
#            (connect included). In the same rounds, alternating which goes
#            first, the raw CHAT throughput of `pigeon-bench chat` (QoS 1,
#            256 bytes, window 500) against the same broker; medians over
#            ROUNDS and the ratio send/chat (target >= 0.8).
#   catchup  libpigeon-client handing a 10,000-message backlog to the app:
#            `pigeon-bench client-catchup`, messages/s from
#            pigeon_client_start() to the last message callback; median of 3.
#
#   bench/clients.sh [--rounds R (5)] [--count N (10000)] [--window W (500)]
#                    [--build-dir DIR (build-bench)] [--no-build]
#
# The broker listens on a free 127.0.0.1 port and is stopped on exit. The
# machine should be otherwise idle. Exit status 0 when measured.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=5
count=10000
window=500
build=$root/build-bench
do_build=1
mosquitto=${MOSQUITTO:-/usr/sbin/mosquitto}

die() {
	echo "bench/clients.sh: $*" >&2
	exit 1
}

while (($#)); do
	case $1 in
	--rounds) rounds=${2:?} && shift ;;
	--count) count=${2:?} && shift ;;
	--window) window=${2:?} && shift ;;
	--build-dir) build=${2:?} && shift ;;
	--no-build) do_build=0 ;;
	-h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' && exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 && $rounds -le 50 ]] || die "--rounds is 1..50"
[[ $count =~ ^[0-9]+$ && $count -ge 100 && $count -le 1000000 ]] || die "--count is 100..1000000"

if ((do_build)); then
	echo "# building in $build" >&2
	mkdir -p "$build"
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIGEON_WERROR=ON \
		>"$build/bench-build.log" 2>&1 || die "cmake failed, see $build/bench-build.log"
	cmake --build "$build" -j"$(nproc)" --target pigeon_auth pigeon_inbox pigeon-bench \
		pigeon-send pigeon-token >>"$build/bench-build.log" 2>&1 ||
		die "build failed, see $build/bench-build.log"
fi
bench=$build/bin/pigeon-bench
send=$build/bin/pigeon-send
[[ -x $bench && -x $send && -f $build/lib/pigeon_inbox.so ]] || die "not built: $build"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pigeon-clients-bench.XXXXXX")
declare -A pid port
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
cleanup() {
	local name
	for name in "${!pid[@]}"; do
		stop_pid "${pid[$name]}" 10
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
(umask 077 && head -c 32 /dev/urandom >"$tmp/jwt.secret")

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_broker NAME EXTRA_CONF
start_broker() {
	local name=$1 extra=$2 p i user_line=""
	[[ $(id -u) -ne 0 ]] || user_line="user root"
	p=$(free_port)
	cat >"$tmp/$name.conf" <<-CONF
		listener $p 127.0.0.1
		$user_line
		persistence false
		set_tcp_nodelay true
		max_queued_messages 1000
		log_dest file $tmp/$name.log
		log_type error
		log_type warning
		$extra
	CONF
	"$mosquitto" -c "$tmp/$name.conf" >>"$tmp/$name.out" 2>&1 &
	pid[$name]=$!
	port[$name]=$p
	for ((i = 0; i < 100; i++)); do
		if (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			return 0
		fi
		kill -0 "${pid[$name]}" 2>/dev/null || break
		sleep 0.1
	done
	cat "$tmp/$name.out" "$tmp/$name.log" >&2 2>/dev/null || true
	die "broker $name did not start"
}

stop_broker() { # waits for the exit: pigeon applies its journal on the way out
	stop_pid "${pid[$1]}" 30
	unset "pid[$1]"
}

start_broker pigeon "allow_anonymous false
plugin $build/lib/pigeon_auth.so
plugin_opt_jwt_secret_file $tmp/jwt.secret
plugin $build/lib/pigeon_inbox.so
plugin_opt_db_path $tmp/pigeon.db
plugin_opt_send_rate 0
plugin_opt_max_per_user 100000
plugin_opt_sys_interval 0"

figure() { # the figure (third field) of pigeon-bench's result line
	awk 'NR == 1 {print $3}'
}

median() {
	sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

run() { # run LABEL ARGS...: one pigeon-bench run against LABEL's broker
	local label=$1
	shift
	timeout 600 "$bench" "$@" --port "${port[$label]}" --secret-file "$tmp/jwt.secret" \
		--label "$label"
}

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# date: $(date -u +%Y-%m-%dT%H:%MZ), mosquitto $("$mosquitto" -h | awk 'NR == 1 {print $3}')"
echo "# load: $(cut -d" " -f1-3 /proc/loadavg) (1, 5, 15 min) before the first round"

token=$("$build/bin/pigeon-token" mint --secret-file "$tmp/jwt.secret" --sub backend \
	--role service --ttl 86400)

echo "## send: pigeon-send (window $window) to $count users from a file vs pigeon-bench chat, $rounds rounds"
: >"$tmp/send"
: >"$tmp/chat"
send_round() { # send_round R: one pigeon-send run to fresh users r<R>u<i>; prints its line
	local r=$1 t0 t1 n
	seq -f "r${r}u%g" 1 "$count" >"$tmp/users"
	head -c 256 /dev/zero | tr '\0' x >"$tmp/body"
	t0=$(date +%s.%N)
	timeout 600 "$send" -p "${port[pigeon]}" --token "$token" --body-file "$tmp/body" \
		--to-file "$tmp/users" --window "$window" --timeout 300 >"$tmp/send.out" || die "pigeon-send failed"
	t1=$(date +%s.%N)
	n=$(grep -c -E '^r[0-9]+u[0-9]+ [1-9][0-9]*$' "$tmp/send.out" || true)
	[[ $n -eq $count ]] || die "pigeon-send stored $n of $count"
	awk -v n="$count" -v a="$t0" -v b="$t1" \
		'BEGIN {printf "send pigeon %.0f msg/s count=%d seconds=%.3f\n", n / (b - a), n, b - a}'
}
for ((r = 1; r <= rounds; r++)); do
	for what in $( ((r % 2)) && echo "send chat" || echo "chat send"); do
		if [[ $what == send ]]; then
			out=$(send_round "$r")
		else
			out=$(run pigeon chat --count "$count" --to "c$r") || die "chat failed"
		fi
		echo "$out"
		echo "$out" | figure >>"$tmp/$what"
	done
done
ms=$(median <"$tmp/send")
mc=$(median <"$tmp/chat")
echo "median send $ms msg/s"
echo "median chat $mc msg/s"
awk -v s="$ms" -v c="$mc" 'BEGIN {printf "ratio send/chat %.2f (target >= 0.8)\n", s / c}'

echo "## catchup: libpigeon-client, 10000 stored messages handed to the app"
: >"$tmp/cc"
for ((r = 1; r <= 3; r++)); do
	out=$(run pigeon client-catchup --count 10000 --to "cc$r") || die "client-catchup failed"
	echo "$out"
	echo "$out" | figure >>"$tmp/cc"
done
echo "median client-catchup $(median <"$tmp/cc") msg/s"
