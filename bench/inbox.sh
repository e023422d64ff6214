#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The inbox benchmarks of docs/benchmarks.md ("Inbox"):
#
#   chat     1 sender -> 1 online recipient, QoS 1, 256-byte bodies, every
#            message durably stored by pigeon, against plain Mosquitto (same
#            binary, no plugin, allow_anonymous true, same client, QoS,
#            payload and topics), ROUNDS rounds alternating which goes first;
#            medians and the ratio pigeon/plain. Also with a msg-id on every
#            message (pigeon then checks dedup per message).
#   catchup  a user with 10,000 stored messages connects and syncs them all.
#   notify   100,000 notifications of 10 types to 1,000 offline users; the
#            store must hold exactly 10,000 of them afterwards.
#   growth   chat msg/s to a user with 1,000 stored messages vs one with
#            1,000,000 (filled through the broker first).
#
#   bench/inbox.sh [--rounds R (5)] [--count N (100000)] [--growth-fill N (1000000)]
#                  [--build-dir DIR (build-bench)] [--no-build] [--skip-growth]
#
# Both brokers listen on free 127.0.0.1 ports and are stopped on exit. The
# machine should be otherwise idle: load from other processes lowers both
# brokers' figures, and not necessarily equally. Exit status 0 when measured.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=5
count=100000
fill=1000000
build=$root/build-bench
do_build=1
growth=1
mosquitto=${MOSQUITTO:-/usr/sbin/mosquitto}

die() {
	echo "bench/inbox.sh: $*" >&2
	exit 1
}

while (($#)); do
	case $1 in
	--rounds) rounds=${2:?} && shift ;;
	--count) count=${2:?} && shift ;;
	--growth-fill) fill=${2:?} && shift ;;
	--build-dir) build=${2:?} && shift ;;
	--no-build) do_build=0 ;;
	--skip-growth) growth=0 ;;
	-h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' && exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 && $rounds -le 50 ]] || die "--rounds is 1..50"
[[ $count =~ ^[0-9]+$ && $count -ge 1000 && $count -le 10000000 ]] || die "--count is 1000..10000000"
[[ $fill =~ ^[0-9]+$ && $fill -ge 1000 && $fill -le 10000000 ]] || die "--growth-fill is 1000..10000000"

if ((do_build)); then
	echo "# building in $build" >&2
	mkdir -p "$build"
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIGEON_WERROR=ON \
		>"$build/bench-build.log" 2>&1 || die "cmake failed, see $build/bench-build.log"
	cmake --build "$build" -j"$(nproc)" >>"$build/bench-build.log" 2>&1 ||
		die "build failed, see $build/bench-build.log"
fi
bench=$build/bin/pigeon-bench
[[ -x $bench && -f $build/lib/pigeon_inbox.so ]] || die "not built: $build"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pigeon-inbox-bench.XXXXXX")
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

start_broker plain "allow_anonymous true"
start_broker pigeon "allow_anonymous false
plugin $build/lib/pigeon_auth.so
plugin_opt_jwt_secret_file $tmp/jwt.secret
plugin $build/lib/pigeon_inbox.so
plugin_opt_db_path $tmp/pigeon.db
plugin_opt_send_rate 0
plugin_opt_max_per_user $((fill + rounds * count + 10000))
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
	local auth=(--secret-file "$tmp/jwt.secret")
	[[ $label == plain ]] && auth=(--anonymous)
	timeout 600 "$bench" "$@" --port "${port[$label]}" "${auth[@]}" --label "$label"
}

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# date: $(date -u +%Y-%m-%dT%H:%MZ), mosquitto $("$mosquitto" -h | awk 'NR == 1 {print $3}')"

chat_series() { # chat_series NAME EXTRA_ARGS...
	local name=$1 r first second out
	shift
	: >"$tmp/$name.plain"
	: >"$tmp/$name.pigeon"
	for ((r = 1; r <= rounds; r++)); do
		if ((r % 2)); then first=plain second=pigeon; else first=pigeon second=plain; fi
		for b in $first $second; do
			out=$(run "$b" chat --count "$count" --to "r$r$name" "$@") || die "chat $b failed"
			echo "$out"
			echo "$out" | figure >>"$tmp/$name.$b"
		done
	done
	local mp mg
	mp=$(median <"$tmp/$name.plain")
	mg=$(median <"$tmp/$name.pigeon")
	echo "median $name plain $mp msg/s"
	echo "median $name pigeon $mg msg/s"
	awk -v g="$mg" -v p="$mp" -v n="$name" 'BEGIN {printf "ratio %s pigeon/plain %.2f\n", n, g / p}'
}

echo "## chat: $rounds rounds of $count messages, QoS 1, 256 bytes"
chat_series chat
echo "## chat with a msg-id on every message"
chat_series chatid --msg-id

echo "## catchup: 10000 stored messages, connect + sync all"
: >"$tmp/catchup"
for ((r = 1; r <= 3; r++)); do
	out=$(run pigeon catchup --count 10000 --to "cu$r") || die "catchup failed"
	echo "$out"
	echo "$out" | figure >>"$tmp/catchup"
done
echo "median catchup $(median <"$tmp/catchup") ms"

echo "## notify storm: 100000 notifications, 10 types, 1000 offline users"
run pigeon notify --count 100000 --users 1000 --types 10 --to ns || die "notify failed"

if ((growth)); then
	echo "## store growth: chat to a user with 1000 stored vs $fill stored"
	run pigeon chat --count "$fill" --to gbig --window 1000 >/dev/null || die "fill gbig failed"
	: >"$tmp/g1k"
	: >"$tmp/gbig"
	for ((r = 1; r <= rounds; r++)); do
		# A fresh small inbox every round (1000 stored, untimed), then both.
		run pigeon chat --count 1000 --to "gs$r" >/dev/null || die "fill gs$r failed"
		sleep 2 # let the store thread catch up with the fills
		for u in "gs$r" gbig; do
			out=$(run pigeon chat --count "$count" --to "$u") || die "growth chat failed"
			echo "$u $out"
			echo "$out" | figure >>"$tmp/${u/gs$r/g1k}"
		done
	done
	m1=$(median <"$tmp/g1k")
	m2=$(median <"$tmp/gbig")
	echo "median growth 1k-stored $m1 msg/s"
	echo "median growth $fill-stored $m2 msg/s"
	awk -v a="$m1" -v b="$m2" 'BEGIN {printf "ratio growth big/small %.2f\n", b / a}'
fi

# Stop pigeon (its store applies everything on the way out) and count.
stop_broker pigeon
rows=$(sqlite3 "$tmp/pigeon.db" "SELECT count(*) FROM messages WHERE uid LIKE 'ns%'")
echo "notify stored rows $rows (expected 10000)"
[[ $rows -eq 10000 ]] || die "the notification storm left $rows rows, not 10000"
if ((growth)); then
	big=$(sqlite3 "$tmp/pigeon.db" "SELECT stored FROM users WHERE uid = 'gbig'")
	echo "growth gbig stored $big"
fi
