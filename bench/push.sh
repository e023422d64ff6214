#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The push benchmarks of docs/benchmarks.md ("Push"):
#
#   throughput  pushes/s from pigeon_push to a local APNs-like HTTP/2 server
#               (tests/integration/fakepush/fake_provider.js) over one
#               connection: U offline users with one APNs device each
#               (registered straight into pigeon_push's push_devices table
#               before the broker starts), a sender publishing N QoS 1 CHATs
#               round-robin to them (pigeon-bench push-load), coalesce_ms 0,
#               so each message is one push. pushes/s = requests the fake
#               accepted per second between 10 % and 90 % of N; also the
#               fake's connection count and the broker's CPU. Each round
#               first measures the fake alone with h2load (one connection,
#               the same request), so the figure is pigeon's, not the fake's.
#   latency     publish -> delivery latency to an online device at a fixed
#               offered rate (pigeon-bench latency), two brokers, rounds
#               alternating which goes first: (a) auth + inbox; (b) auth +
#               inbox + push, where the recipient also has an offline APNs
#               device and the fake never answers (mode stall,
#               request_timeout_ms 10000), so every push stalls: with the
#               default coalesce_ms 1000 one per second, with --lat-coalesce 0
#               one per message. Medians over rounds of p50/p99/p99.9/max,
#               and p99 (b)/(a): the goal is <= 1.2.
#
#   bench/push.sh [--rounds R (5)] [--count N (100000)] [--users U (20000)]
#                 [--load-rate M (0: as fast as a window of 1000 allows)]
#                 [--lat-rate M (2000)] [--lat-seconds S (15)]
#                 [--lat-coalesce MS (1000, the default; 0: every message its own push)]
#                 [--build-dir DIR (build-bench)] [--no-build]
#                 [--skip-throughput] [--skip-latency] [--wait-quiet S (60)]
#                 [--perf DIR] [--keep (the work directory, for its logs)]
#                 [--log-all (brokers log everything, for diagnosis)]
#                 [--fake-streams N (1000, APNs' limit): the fake's MAX_CONCURRENT_STREAMS]
#
# Needs node (18+), h2load (Debian: apt-get install nghttp2-client) and
# /usr/bin/python3 with the integration tests' modules (cryptography, PyJWT,
# paho-mqtt). Brokers and fakes listen on free 127.0.0.1 ports and are
# stopped on exit. --perf DIR records the push broker with perf during one
# more throughput run (DIR/push-throughput.txt). Exit status 0 when measured.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=5
count=100000
users=20000
load_rate=0
lat_rate=2000
lat_coalesce=1000
coalesce=0
lat_seconds=15
build=$root/build-bench
do_build=1
do_tp=1
do_lat=1
wait_quiet=60
perf_dir=
keep=0
fake_streams=1000
log_all=0
mosquitto=${MOSQUITTO:-/usr/sbin/mosquitto}
py=/usr/bin/python3
node=${PIGEON_NODE:-node}
cmdline="bench/push.sh $*"

die() {
	echo "bench/push.sh: $*" >&2
	exit 1
}

while (($#)); do
	case $1 in
	--rounds) rounds=${2:?} && shift ;;
	--count) count=${2:?} && shift ;;
	--users) users=${2:?} && shift ;;
	--load-rate) load_rate=${2:?} && shift ;;
	--lat-rate) lat_rate=${2:?} && shift ;;
	--lat-coalesce) lat_coalesce=${2:?} && shift ;;
	--lat-seconds) lat_seconds=${2:?} && shift ;;
	--build-dir) build=${2:?} && shift ;;
	--no-build) do_build=0 ;;
	--skip-throughput) do_tp=0 ;;
	--skip-latency) do_lat=0 ;;
	--wait-quiet) wait_quiet=${2:?} && shift ;;
	--perf) perf_dir=${2:?} && shift ;;
	--fake-streams) fake_streams=${2:?} && shift ;;
	--keep) keep=1 ;;
	--log-all) log_all=1 ;;
	-h | --help) sed -n '2,36p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' && exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
	shift
done
uint() { [[ $2 =~ ^[0-9]+$ && $2 -ge $3 && $2 -le $4 ]] || die "$1 is $3..$4"; }
uint --rounds "$rounds" 1 50
uint --count "$count" 1000 10000000
uint --users "$users" 1 1000000
uint --load-rate "$load_rate" 0 1000000
uint --lat-rate "$lat_rate" 1 100000
uint --lat-coalesce "$lat_coalesce" 0 3600000
uint --lat-seconds "$lat_seconds" 2 600
uint --wait-quiet "$wait_quiet" 0 3600
uint --fake-streams "$fake_streams" 1 100000

command -v h2load >/dev/null ||
	die "h2load not found: it measures the fake APNs server alone. On Debian/Ubuntu: apt-get install nghttp2-client"
command -v "$node" >/dev/null || die "node not found (set PIGEON_NODE)"
"$py" -c 'import cryptography, jwt, paho' 2>/dev/null ||
	die "$py lacks cryptography, PyJWT or paho-mqtt (the integration tests' modules)"
[[ -z $perf_dir ]] || command -v perf >/dev/null || die "--perf needs perf"

if ((do_build)); then
	echo "# building in $build" >&2
	mkdir -p "$build"
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIGEON_WERROR=ON \
		>"$build/bench-build.log" 2>&1 || die "cmake failed, see $build/bench-build.log"
	cmake --build "$build" -j"$(nproc)" --target pigeon-bench pigeon_auth pigeon_inbox pigeon_push \
		>>"$build/bench-build.log" 2>&1 || die "build failed, see $build/bench-build.log"
fi
bench=$build/bin/pigeon-bench
for f in "$bench" "$build/lib/pigeon_auth.so" "$build/lib/pigeon_inbox.so" "$build/lib/pigeon_push.so"; do
	[[ -e $f ]] || die "not built: $f"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pigeon-push-bench.XXXXXX")
declare -A pid port
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
cleanup() {
	local name
	for name in "${!pid[@]}"; do
		stop_pid "${pid[$name]}" 10
	done
	exec 7>&- 2>/dev/null || true
	if ((keep)); then echo "# kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
(umask 077 && head -c 32 /dev/urandom >"$tmp/jwt.secret")

# ---- the fake APNs server -------------------------------------------------
mkdir -p "$tmp/fake"
eval "$("$py" "$root/bench/push_lib.py" creds "$tmp/fake")"
topic=com.example.pigeon
mkfifo -m 600 "$tmp/fake.in"
# The fake exits when its stdin ends: fd 7 of this script holds the fifo.
"$node" "${PIGEON_FAKE_APNS:-$root/bench/fake_apns.js}" --cert "$CERT" \
	--key "$KEY" --port 0 --apns-key-pub "$PUB" --apns-key-id "$KID" --apns-team-id "$TEAM" \
	--max-streams "$fake_streams" \
	<"$tmp/fake.in" >"$tmp/fake.out" 2>"$tmp/fake.log" &
pid[fake]=$!
exec 7>"$tmp/fake.in"
for ((i = 0; i < 100; i++)); do
	[[ -s $tmp/fake.out ]] && break
	kill -0 "${pid[fake]}" 2>/dev/null || break
	sleep 0.1
done
[[ -s $tmp/fake.out ]] || { cat "$tmp/fake.log" >&2; die "the fake APNs server did not start"; }
fport=$("$py" -c 'import json,sys; print(json.load(sys.stdin)["port"])' <"$tmp/fake.out")
fcontrol=$("$py" -c 'import json,sys; print(json.load(sys.stdin)["control"])' <"$tmp/fake.out")
lib() { "$py" "$root/bench/push_lib.py" "$@"; }

# ---- brokers --------------------------------------------------------------
free_port() {
	"$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

inbox_conf() { # NAME
	cat <<-CONF
		allow_anonymous false
		plugin $build/lib/pigeon_auth.so
		plugin_opt_jwt_secret_file $tmp/jwt.secret
		plugin $build/lib/pigeon_inbox.so
		plugin_opt_db_path $tmp/$1-inbox.db
		plugin_opt_send_rate 0
		plugin_opt_max_per_user 1000000
		plugin_opt_sys_interval 0
	CONF
}

push_conf() { # NAME
	inbox_conf "$1"
	cat <<-CONF
		plugin $build/lib/pigeon_push.so
		plugin_opt_db_path $tmp/$1-push.db
		plugin_opt_ca_file $CA_FILE
		plugin_opt_apns_key_file $P8
		plugin_opt_apns_key_id $KID
		plugin_opt_apns_team_id $TEAM
		plugin_opt_apns_topic $topic
		plugin_opt_apns_url https://127.0.0.1:$fport
		plugin_opt_coalesce_ms $coalesce
		plugin_opt_request_timeout_ms 10000
		plugin_opt_sys_interval 1
	CONF
}

# start_broker NAME CONF_TEXT
start_broker() {
	local name=$1 conf=$2 p i user_line=""
	[[ $(id -u) -ne 0 ]] || user_line="user root"
	p=$(free_port)
	cat >"$tmp/$name.conf" <<-CONF
		listener $p 127.0.0.1
		$user_line
		persistence false
		set_tcp_nodelay true
		max_queued_messages 100000
		log_dest file $tmp/$name.log
		log_type error
		log_type warning
		$( ((log_all)) && printf 'log_type all\nconnection_messages true' )
		$conf
	CONF
	"$mosquitto" -c "$tmp/$name.conf" >>"$tmp/$name.out" 2>&1 &
	pid[$name]=$!
	port[$name]=$p
	for ((i = 0; i < 300; i++)); do
		if (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			return 0
		fi
		kill -0 "${pid[$name]}" 2>/dev/null || break
		sleep 0.1
	done
	cat "$tmp/$name.out" "$tmp/$name.log" >&2 2>/dev/null || true
	die "broker $name did not start"
}

stop_broker() {
	stop_pid "${pid[$1]}" 30
	unset "pid[$1]"
}

# A push broker with N devices PREFIX0..PREFIX<N-1>/DEVICE: started once so
# that pigeon_push makes its tables, stopped, filled, started again.
start_push_broker() { # NAME PREFIX N DEVICE
	start_broker "$1" "$(push_conf "$1")"
	stop_broker "$1"
	lib fill "$tmp/$1-push.db" "$2" "$3" "$4"
	start_broker "$1" "$(push_conf "$1")"
}

field() { # KEY LINE: the value of KEY=value in a result line
	awk -v k="$1=" '{for (i = 1; i <= NF; i++) if (index($i, k) == 1) print substr($i, length(k) + 1)}' <<<"$2"
}

median() {
	sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

cpu_ticks() { # PID: utime + stime of all its threads, clock ticks
	awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"
}

# ---- a quiet machine ------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
busy_ms() {
	local f
	read -r -a f </proc/stat
	echo $(((f[1] + f[2] + f[3] + f[6] + f[7] + f[8]) * 1000 / clk_tck))
}
quiet=0
for ((waited = 0; waited < wait_quiet; waited += 2)); do
	b0=$(busy_ms)
	sleep 2
	b1=$(busy_ms)
	if (((b1 - b0) / 20 <= 10)); then
		quiet=1
		break
	fi
done
((quiet || wait_quiet == 0)) ||
	echo "# WARNING: the machine was still busy (more than 10 % of a core) after waiting ${wait_quiet} s"

echo "# pigeon push benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# command: $cmdline"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
echo "# mosquitto $("$mosquitto" -h | awk 'NR == 1 {print $3}'), node $("$node" --version), $(h2load --version | head -1)"
echo "# pigeon at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" status --porcelain 2>/dev/null | grep -q . && echo ' plus uncommitted changes')"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
others=$({ pgrep -a cc1; pgrep -af pytest; pgrep -a mosquitto; } | grep -v "$tmp" || true)
[[ -z $others ]] || echo "# WARNING: other builds, tests or brokers are running: $(echo "$others" | cut -c1-80 | tr '\n' ';')"

# ---- throughput -----------------------------------------------------------
h2load_once() { # N: the fake alone, one connection, 100 streams; prints a result line
	local n=$1 out
	lib mode "$fcontrol" RESET
	out=$(timeout 300 h2load -n "$n" -c 1 -m 100 -d "$tmp/fake/body.json" \
		-H "authorization: bearer $(cat "$tmp/fake/h2load.jwt")" -H "apns-topic: $topic" \
		-H 'apns-push-type: alert' -H 'apns-priority: 10' -H 'apns-expiration: 0' \
		"https://127.0.0.1:$fport/3/device/$(printf '%064d' 0)") || die "h2load failed: $out"
	local rps ok
	rps=$(awk '/^finished in/ {gsub(/,/, ""); print $4}' <<<"$out")
	ok=$(awk '/^status codes:/ {print $3}' <<<"$out")
	[[ $ok -eq $n ]] || die "h2load: $ok of $n answered 2xx: $out"
	echo "h2load fake ${rps%.*} req/s count=$n connections=1 streams=100 ok=$ok $(lib stats "$fcontrol" | tr ' ' '\n' | grep -E '^(requests|sessions)=' | tr '\n' ' ')"
}

pigeon_once() { # N: one push-load run against the push broker; prints result lines
	local n=$1 spid out acc0 acc1 sline
	lib mode "$fcontrol" RESET
	acc0=0
	timeout 300 "$bench" push-load --port "${port[tp]}" --secret-file "$tmp/jwt.secret" \
		--count "$n" --users "$users" --to pu --rate "$load_rate" --label pigeon \
		>"$tmp/load.out" 2>"$tmp/load.err" &
	spid=$!
	sline=$(lib sample "$fcontrol" "$n" 240 "${pid[tp]}" "${pid[fake]}" "$spid")
	wait "$spid" || { cat "$tmp/load.err" >&2; die "push-load failed"; }
	acc1=$(lib stats "$fcontrol" | tr ' ' '\n' | awk -F= '$1 == "ok" {print $2}')
	cat "$tmp/load.out"
	echo "$sline" | sed "1s/\$/ accepted=$((acc1 - acc0))/"
	echo "fake $(lib stats "$fcontrol")"
}

if ((do_tp)); then
	echo "## throughput: $users offline users with one APNs device, $count CHATs per round, coalesce_ms 0"
	start_push_broker tp pu "$users" ios
	# One untimed warm-up of each (TLS session, JIT, page cache).
	h2load_once 10000 >/dev/null
	pigeon_once 10000 >/dev/null
	sessions_total=0
	: >"$tmp/tp.h2"
	: >"$tmp/tp.pg"
	: >"$tmp/tp.cpu"
	for ((r = 1; r <= rounds; r++)); do
		if ((r % 2)); then order="h2load pigeon"; else order="pigeon h2load"; fi
		for what in $order; do
			if [[ $what == h2load ]]; then
				line=$(h2load_once "$count")
				echo "round $r $line"
				awk '{print $3}' <<<"$line" >>"$tmp/tp.h2"
			else
				lines=$(pigeon_once "$count")
				sed "s/^/round $r /" <<<"$lines"
				pl=$(grep '^pushes ' <<<"$lines")
				awk '{print $3}' <<<"$pl" >>"$tmp/tp.pg"
				field broker_cores "$pl" >>"$tmp/tp.cpu"
				s=$(field sessions "$pl")
				sessions_total=$((sessions_total + s))
				fl=$(grep '^fake ' <<<"$lines")
				msgs=$(field messages "$fl")
				if [[ $(field accepted "$pl") -ne $count ]]; then
					echo "# round $r: $(field accepted "$pl") pushes for $count messages; the pushes' counts add up to $msgs (a message stored while its device's push waited joined it)"
				fi
				[[ $msgs -eq $count ]] ||
					echo "# WARNING: round $r: the pushes stand for $msgs of $count messages"
			fi
		done
	done
	mh=$(median <"$tmp/tp.h2")
	mp=$(median <"$tmp/tp.pg")
	echo "median h2load fake alone $mh req/s (1 connection, 100 streams)"
	echo "median pigeon $mp pushes/s (1 connection), broker CPU $(median <"$tmp/tp.cpu") cores"
	echo "connections the fake accepted from pigeon over all rounds: $sessions_total"
	awk -v p="$mp" -v h="$mh" 'BEGIN {printf "ratio pigeon/fake-alone %.2f\n", p / h}'
	awk -v p="$mp" 'BEGIN {printf "target >= 5000 pushes/s over one connection: %s\n", (p >= 5000) ? "met" : "NOT met"}'
	if [[ -n $perf_dir ]]; then
		mkdir -p "$perf_dir"
		lib mode "$fcontrol" RESET
		perf record -q -g -F 999 -p "${pid[tp]}" -o "$perf_dir/push-throughput.data" \
			-- sleep $((count / 5000 + 5)) 2>/dev/null &
		ppid=$!
		pigeon_once "$count" | sed 's/^/perf run /'
		wait "$ppid" || true
		perf report -i "$perf_dir/push-throughput.data" --no-children --sort dso,sym --stdio \
			2>/dev/null | head -80 >"$perf_dir/push-throughput.txt" || true
		echo "# perf summary in $perf_dir/push-throughput.txt"
	fi
	stop_broker tp
fi

# ---- latency --------------------------------------------------------------
if ((do_lat)); then
	lat_count=$((lat_rate * lat_seconds))
	warm=$((lat_rate / 2))
	coalesce=$lat_coalesce
	echo "## latency: $lat_rate msg/s for $lat_seconds s ($lat_count messages, the first $warm not counted), QoS 1, 256 bytes, $rounds rounds, push coalesce_ms $coalesce"
	lib mode "$fcontrol" RESET
	lib mode "$fcontrol" stall
	start_broker inbox "$(inbox_conf inbox)"
	start_push_broker push lat $((rounds + 1)) ipad
	for b in inbox push; do
		: >"$tmp/lat.$b"
		for k in p50_us p99_us p999_us max_us; do : >"$tmp/lat.$b.$k"; done
	done
	: >"$tmp/lat.ratio"
	for ((r = 1; r <= rounds; r++)); do
		if ((r % 2)); then order="inbox push"; else order="push inbox"; fi
		declare -A p99=()
		for b in $order; do
			c0=$(cpu_ticks "${pid[$b]}")
			lib snapshot "${pid[$b]}" "$tmp/snap0"
			if [[ -n $perf_dir && $b == push && $r -eq 1 ]]; then
				mkdir -p "$perf_dir"
				perf record -q --call-graph dwarf -F 499 -p "${pid[push]}" -o "$perf_dir/push-latency.data" \
					-- sleep "$lat_seconds" 2>/dev/null &
				ppid=$!
			fi
			out=$(timeout $((lat_seconds + 60)) "$bench" latency --port "${port[$b]}" \
				--secret-file "$tmp/jwt.secret" --to "lat$r" --rate "$lat_rate" \
				--count "$lat_count" --warmup "$warm" --label "$b" --time-limit $((lat_seconds + 30)) \
				2>"$tmp/lat.err") || { cat "$tmp/lat.err" >&2; die "latency $b failed"; }
			c1=$(cpu_ticks "${pid[$b]}")
			lib snapshot "${pid[$b]}" "$tmp/snap1"
			if [[ -n $perf_dir && $b == push && $r -eq 1 ]]; then
				wait "$ppid" || true
				perf report -i "$perf_dir/push-latency.data" --no-children --sort comm,dso,sym \
					--stdio 2>/dev/null | grep -v '^$' | head -120 >"$perf_dir/push-latency.txt" || true
				echo "# perf summary of round 1 (push) in $perf_dir/push-latency.txt"
			fi
			extra="broker_cpu_us_per_msg=$(awk -v t=$((c1 - c0)) -v n="$lat_count" -v h="$clk_tck" 'BEGIN {printf "%.1f", t / h * 1e6 / n}')"
			[[ $b == push ]] && extra="$extra fake_$(lib stats "$fcontrol" | tr ' ' '\n' | grep -E '^(requests|stalled|sessions)=' | tr '\n' ' ' | sed 's/ $//; s/ / fake_/g')"
			echo "round $r $out $extra threads_cores: $(lib cpudiff "${pid[$b]}" "$tmp/snap0" "$tmp/snap1")"
			for k in p50_us p99_us p999_us max_us; do field "$k" "$out" >>"$tmp/lat.$b.$k"; done
			p99[$b]=$(field p99_us "$out")
		done
		awk -v a="${p99[inbox]}" -v b="${p99[push]}" 'BEGIN {printf "%.3f\n", b / a}' >>"$tmp/lat.ratio"
	done
	for b in inbox push; do
		echo "median latency $b p50 $(median <"$tmp/lat.$b.p50_us") us, p99 $(median <"$tmp/lat.$b.p99_us") us, p99.9 $(median <"$tmp/lat.$b.p999_us") us, max $(median <"$tmp/lat.$b.max_us") us"
	done
	mr=$(median <"$tmp/lat.ratio")
	awk -v a="$(median <"$tmp/lat.inbox.p99_us")" -v b="$(median <"$tmp/lat.push.p99_us")" \
		'BEGIN {printf "ratio of medians p99 push/inbox %.3f\n", b / a}'
	echo "ratio p99 push/inbox $mr (median of per-round ratios: $(tr '\n' ' ' <"$tmp/lat.ratio"))"
	echo "fake APNs after the latency rounds: $(lib stats "$fcontrol")"
	awk -v m="$mr" 'BEGIN {printf "target p99 with a stalled provider within 1.2x of without push: %s\n", (m <= 1.2) ? "met" : "NOT met"}'
	stop_broker push
	stop_broker inbox
fi
