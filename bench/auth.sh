#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What authentication costs (docs/benchmarks.md, "Authentication").
#
# Builds pigeon-bench and pigeon_auth.so (RelWithDebInfo, in build-bench/),
# measures token verifications per second on one core (HS256, ES256, EdDSA),
# then runs two copies of the same /usr/sbin/mosquitto on free 127.0.0.1
# ports with the same listener settings (those of conf/mosquitto.conf:
# set_tcp_nodelay true, no persistence) and minimal logging:
#
#   pigeon  pigeon_auth.so with a fresh HS256 secret, allow_anonymous false
#   plain   no plugin, allow_anonymous true
#
# and runs sequential connect storms (connect -> CONNACK -> disconnect, COUNT
# each) in ROUNDS rounds, rotating the order every round, in three series:
#
#   pigeon     against pigeon, username + token (verified by pigeon_auth)
#   plain      against plain, the very same CONNECT packets (credentials ignored)
#   anonymous  against plain, no credentials
#
# It prints every round, the median connects/s and broker CPU per connect of
# each series, the median of the per-round ratios pigeon/plain and
# pigeon/anonymous with "auth cost = 1 - ratio", and whether the target
# (auth cost < 10 % by both ratios) is met. Both brokers are stopped on exit,
# whatever happens.
#
# On a machine with 2 or more cores both brokers run pinned to the last core
# and pigeon-bench to the first (taskset), so that the scheduler does not
# move them around between rounds; --no-pin leaves placement to the kernel.
#
#   bench/auth.sh [--rounds R (5)] [--count N (10000)] [--token-seconds S (2)]
#                 [--max-other-cpu PCT (10)] [--wait-quiet S (60)]
#                 [--build-dir DIR (build-bench)] [--no-build] [--no-pin]
#                 [--perf DIR]
#
# A benchmark needs a quiet machine. The script first waits up to S seconds
# for the machine to be idle, then measures, during every storm, how much
# CPU processes other than the broker and pigeon-bench used (from
# /proc/stat); a round in which that exceeded PCT percent of one core is
# shown but left out of the medians and replaced by another round (at most
# 3 x R rounds in all).
#
# --perf DIR: after the rounds, records one more storm per broker with
# `perf record --call-graph dwarf -p <broker pid>` into DIR and writes a
# summary of each profile next to it (DIR/pigeon.txt, DIR/plain.txt).
#
# Needs: cmake, a C compiler, mosquitto, libmosquitto-dev, ss (iproute2),
# taskset (util-linux); perf for --perf. Exit status 0 when measured (met or
# not), 1 on any failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cmdline="bench/auth.sh $*"
rounds=5
count=10000
token_seconds=2
build=$root/build-bench
do_build=1
perf_dir=""
pin=1
max_other=10
wait_quiet=60
mosquitto=${MOSQUITTO:-/usr/sbin/mosquitto}
# Bounds on every wait, in seconds.
storm_limit=120 # one storm (pigeon-bench --time-limit); timeout(1) adds 30
start_limit=5   # a broker to start listening
stop_limit=5    # a broker to exit after SIGTERM

die() {
	echo "bench/auth.sh: $*" >&2
	exit 1
}

usage() { # the comment at the top of this file
	awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"
}

check_uint() { # name value min max
	if [[ ! $2 =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
		die "$1 must be an integer in $3..$4, not '$2'"
	fi
}

while (($#)); do
	case $1 in
	--rounds | --count | --token-seconds | --max-other-cpu | --wait-quiet | --build-dir | --perf)
		(($# >= 2)) || die "$1 needs a value"
		;;
	esac
	case $1 in
	--rounds) rounds=${2:-} && shift ;;
	--count) count=${2:-} && shift ;;
	--token-seconds) token_seconds=${2:-} && shift ;;
	--max-other-cpu) max_other=${2:-} && shift ;;
	--wait-quiet) wait_quiet=${2:-} && shift ;;
	--build-dir) build=${2:-} && shift ;;
	--no-build) do_build=0 ;;
	--no-pin) pin=0 ;;
	--perf) perf_dir=${2:-} && shift ;;
	-h | --help) usage && exit 0 ;;
	*) usage >&2 && die "unknown argument '$1'" ;;
	esac
	shift
done
check_uint --rounds "$rounds" 1 50
check_uint --count "$count" 1 100000
check_uint --token-seconds "$token_seconds" 1 60
check_uint --max-other-cpu "$max_other" 0 200
check_uint --wait-quiet "$wait_quiet" 0 3600

for tool in cmake ss timeout taskset "$mosquitto"; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -z $perf_dir ]] || command -v perf >/dev/null || die "--perf needs perf"

# ---- build ---------------------------------------------------------------
if ((do_build)); then
	echo "# building in $build" >&2
	mkdir -p "$build"
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIGEON_WERROR=ON \
		>"$build/bench-build.log" 2>&1 || die "cmake failed, see $build/bench-build.log"
	cmake --build "$build" -j"$(nproc)" --target pigeon-bench pigeon_auth \
		>>"$build/bench-build.log" 2>&1 || die "build failed, see $build/bench-build.log"
fi
bench=$build/bin/pigeon-bench
ncpu=$(nproc)
broker_cpus=0-$((ncpu - 1))
client_cpus=0-$((ncpu - 1))
if ((pin && ncpu >= 2)); then
	broker_cpus=$((ncpu - 1))
	client_cpus=0
fi
plugin=$build/lib/pigeon_auth.so
[[ -x $bench && -f $plugin ]] || die "no $bench or $plugin (build first)"

# ---- ephemeral ports -----------------------------------------------------
# Every connect leaves a client socket in TIME_WAIT for 60 s. Without
# tcp_tw_reuse, a run needing more ports towards one broker port than the
# ephemeral range holds fails with EADDRNOTAVAIL half way.
read -r port_lo port_hi </proc/sys/net/ipv4/ip_local_port_range
tw_reuse=$(cat /proc/sys/net/ipv4/tcp_tw_reuse)
per_port=$(((2 * rounds + 2) * count + 2000)) # the plain broker's share, worst case
if ((tw_reuse == 0 && per_port > (port_hi - port_lo + 1) * 3 / 4)); then
	die "this run opens ~$per_port connections to one port within a minute, more than" \
		"the ephemeral range $port_lo-$port_hi can hold in TIME_WAIT; allow reuse on" \
		"loopback (sysctl -w net.ipv4.tcp_tw_reuse=2) or lower --rounds/--count"
fi

# ---- brokers -------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pigeon-bench.XXXXXX")
declare -A pid port
perf_pid=""
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
cleanup() {
	local name
	[[ -z $perf_pid ]] || kill -KILL "$perf_pid" 2>/dev/null || true
	for name in "${!pid[@]}"; do
		stop_pid "${pid[$name]}" "$stop_limit"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "bench/auth.sh: interrupted" >&2; exit 1' INT TERM

(umask 077 && head -c 32 /dev/urandom >"$tmp/jwt.secret")

# A port below the ephemeral range that nothing listens on.
free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 10000))
		if ((p < port_lo || p > port_hi)) && [[ -z $(ss -Hltn "sport = :$p") ]]; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

# start_broker NAME EXTRA_CONF: starts mosquitto, waits until it listens.
start_broker() {
	local name=$1 extra=$2 conf=$tmp/$1.conf p attempt i user_line=""
	# As root, mosquitto would switch to the 'mosquitto' user, which cannot
	# read a build tree under /root.
	[[ $(id -u) -ne 0 ]] || user_line="user root"
	for ((attempt = 0; attempt < 5; attempt++)); do
		p=$(free_port)
		cat >"$conf" <<-CONF
			listener $p 127.0.0.1
			set_tcp_nodelay true
			$user_line
			persistence false
			max_connections -1
			connection_messages false
			log_dest file $tmp/$name.log
			log_type error
			log_type warning
			log_type notice
			$extra
		CONF
		taskset -c "$broker_cpus" "$mosquitto" -c "$conf" >>"$tmp/$name.out" 2>&1 &
		pid[$name]=$!
		for ((i = 0; i < start_limit * 10; i++)); do
			if ! kill -0 "${pid[$name]}" 2>/dev/null; then
				break # exited: port taken meanwhile, or a bad config
			fi
			if ss -Hltnp "sport = :$p" | grep -q "pid=${pid[$name]},"; then
				port[$name]=$p
				return 0
			fi
			sleep 0.1
		done
		kill -KILL "${pid[$name]}" 2>/dev/null || true
		wait "${pid[$name]}" 2>/dev/null || true
		unset "pid[$name]"
	done
	cat "$tmp/$name.out" "$tmp/$name.log" >&2 2>/dev/null || true
	die "broker $name did not start listening within ${start_limit} s (5 attempts)"
}

start_broker pigeon "allow_anonymous false
plugin $plugin
plugin_opt_jwt_secret_file $tmp/jwt.secret"
start_broker plain "allow_anonymous true"

# CPU time the whole machine has been busy in ms, and one process in us.
clk_tck=$(getconf CLK_TCK)
busy_ms() { # cpu user nice system idle iowait irq softirq steal ...
	local f
	read -r -a f </proc/stat
	echo $(((f[1] + f[2] + f[3] + f[6] + f[7] + f[8]) * 1000 / clk_tck))
}
proc_us() { # mosquitto is single-threaded: its thread's run time in ns, to us
	awk '{print int($1 / 1000)}' "/proc/$1/schedstat"
}

# storm SERIES COUNT [LABEL]: one storm; prints pigeon-bench's result line
# followed by broker_us=U, the broker's CPU time per connect in microseconds,
# and other_cpu=P, how much CPU (percent of one core) processes other than
# the broker and pigeon-bench used meanwhile.
storm() {
	local series=$1 n=$2 label=${3:-$1} broker args out b0 b1 p0 p1
	case $series in
	pigeon) broker=pigeon args=(--secret-file "$tmp/jwt.secret") ;;
	plain) broker=plain args=(--secret-file "$tmp/jwt.secret") ;;
	anonymous) broker=plain args=(--anonymous) ;;
	esac
	b0=$(busy_ms)
	p0=$(proc_us "${pid[$broker]}")
	if ! out=$(timeout $((storm_limit + 30)) taskset -c "$client_cpus" "$bench" connect \
		--port "${port[$broker]}" --count "$n" --label "$label" --time-limit "$storm_limit" \
		"${args[@]}" 2>"$tmp/err"); then
		cat "$tmp/err" >&2
		echo "--- broker $broker log:" >&2
		tail -20 "$tmp/$broker.log" >&2 || true
		die "$series storm failed"
	fi
	b1=$(busy_ms)
	kill -0 "${pid[$broker]}" 2>/dev/null || die "broker $broker died during the $series storm"
	p1=$(proc_us "${pid[$broker]}")
	awk -v b=$((b1 - b0)) -v p=$((p1 - p0)) '{
		for (i = 5; i <= NF; i++) {
			split($i, kv, "=")
			v[kv[1]] = kv[2]
		}
		other = (b - p / 1000 - v["cpu_ms"]) / (v["seconds"] * 10)
		printf "%s broker_us=%.1f other_cpu=%.0f\n", $0, p / v["count"],
			other < 0 ? 0 : other
	}' <<<"$out"
}

field() { # KEY LINE: the value of KEY=value in a result line
	awk -v k="$1=" '{for (i = 1; i <= NF; i++) if (index($i, k) == 1) print substr($i, length(k) + 1)}' \
		<<<"$2"
}

median() { # numbers on stdin
	sort -g | awk '{v[NR] = $1} END {
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---- run -----------------------------------------------------------------
# Waits up to --wait-quiet seconds for a 2 s window in which the machine is
# (nearly) idle, so that the run starts on a quiet machine if it can.
quiet=0
for ((waited = 0; waited < wait_quiet; waited += 2)); do
	b0=$(busy_ms)
	sleep 2
	b1=$(busy_ms)
	if (((b1 - b0) / 20 <= max_other)); then
		quiet=1
		break
	fi
done
((quiet || wait_quiet == 0)) ||
	echo "# WARNING: the machine was still busy after waiting ${wait_quiet} s to start"

echo "# pigeon authentication benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# command: $cmdline"
echo "# settings: --rounds $rounds --count $count --token-seconds $token_seconds" \
	"--max-other-cpu $max_other --wait-quiet $wait_quiet$( ((pin)) || echo ' --no-pin')"
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] ||
	rev="$rev + uncommitted changes"
echo "# source: $rev"
echo "# machine: $ncpu cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')," \
	"Linux $(uname -r)"
echo "# broker: $("$mosquitto" -h 2>/dev/null | head -1), pigeon build type RelWithDebInfo"
echo "# net.ipv4.tcp_tw_reuse=$tw_reuse, ephemeral ports $port_lo-$port_hi"
echo "# brokers: pigeon on 127.0.0.1:${port[pigeon]}, plain on 127.0.0.1:${port[plain]}," \
	"on CPU $broker_cpus; pigeon-bench on CPU $client_cpus"

taskset -c "$client_cpus" "$bench" tokens --seconds "$token_seconds" ||
	die "pigeon-bench tokens failed"

series=(pigeon plain anonymous)
for s in "${series[@]}"; do
	storm "$s" 1000 "warmup-$s" | sed 's/^/# /'
done

# A round runs the three series back to back, in an order that rotates. A
# round in which other processes took more than --max-other-cpu percent of a
# core during any storm is reported but not counted, and one more round is
# run, up to 3 x ROUNDS attempts in all.
declare -A fig cpu m mc
counted=()
for ((r = 1; r <= 3 * rounds && ${#counted[@]} < rounds; r++)); do
	noisy=0
	for ((k = 0; k < 3; k++)); do
		s=${series[$(((r - 1 + k) % 3))]}
		line=$(storm "$s" "$count")
		fig[$r,$s]=$(awk '{print $3}' <<<"$line")
		cpu[$r,$s]=$(field broker_us "$line")
		other=$(field other_cpu "$line")
		((other <= max_other)) || noisy=1
		echo "round $r $line"
	done
	fig[$r,noisy]=$noisy
	((noisy)) || counted+=("$r")
done
attempts=$((r - 1))
reliable=1
if ((${#counted[@]} == 0)); then
	reliable=0
	echo "# WARNING: every round was disturbed by other processes; the figures below" \
		"use all of them and are not reliable"
	mapfile -t counted < <(seq 1 "$attempts")
elif ((${#counted[@]} < rounds)); then
	echo "# WARNING: only ${#counted[@]} of $attempts rounds were undisturbed"
fi

echo
printf '%-6s %10s %10s %10s %13s %17s  %s\n' round pigeon plain anonymous pigeon/plain \
	pigeon/anonymous counted
for ((r = 1; r <= attempts; r++)); do
	awk -v r="$r" -v a="${fig[$r,pigeon]}" -v b="${fig[$r,plain]}" -v c="${fig[$r,anonymous]}" \
		-v n="${fig[$r,noisy]}" 'BEGIN {
		printf "%-6s %10d %10d %10d %13.3f %17.3f  %s\n", r, a, b, c, a / b, a / c,
			n ? "no (other processes busy)" : "yes"
	}'
done
for s in "${series[@]}"; do
	m[$s]=$(for r in "${counted[@]}"; do echo "${fig[$r,$s]}"; done | median)
	mc[$s]=$(for r in "${counted[@]}"; do echo "${cpu[$r,$s]}"; done | median)
done
rp=$(for r in "${counted[@]}"; do
	awk -v a="${fig[$r,pigeon]}" -v b="${fig[$r,plain]}" 'BEGIN {print a / b}'
done | median)
ra=$(for r in "${counted[@]}"; do
	awk -v a="${fig[$r,pigeon]}" -v c="${fig[$r,anonymous]}" 'BEGIN {print a / c}'
done | median)
echo
echo "counted rounds: ${counted[*]}"
for s in "${series[@]}"; do
	printf 'median %s %.0f connects/s, broker CPU %.1f us per connect\n' "$s" "${m[$s]}" \
		"${mc[$s]}"
done
awk -v a="${m[pigeon]}" -v b="${m[plain]}" -v c="${m[anonymous]}" -v rp="$rp" -v ra="$ra" \
	-v ca="${mc[pigeon]}" -v cb="${mc[plain]}" -v cc="${mc[anonymous]}" -v ok="$reliable" 'BEGIN {
	printf "ratio of medians pigeon/plain %.3f, pigeon/anonymous %.3f\n", a / b, a / c
	printf "ratio pigeon/plain %.3f auth cost %.1f %% (median of per-round ratios)\n",
		rp, (1 - rp) * 100
	printf "ratio pigeon/anonymous %.3f auth cost %.1f %% (median of per-round ratios)\n",
		ra, (1 - ra) * 100
	printf "broker CPU per connect: pigeon_auth adds %.1f us over plain, %.1f us over anonymous" \
		" (%.1f %% / %.1f %% of the pigeon broker'"'"'s %.1f us)\n", ca - cb, ca - cc,
		(ca - cb) * 100 / ca, (ca - cc) * 100 / ca, ca
	verdict = (1 - rp < 0.10 && 1 - ra < 0.10) ? "met" : "NOT met"
	if (!ok)
		verdict = "undetermined (no undisturbed round)"
	printf "target HS256 auth cost < 10 %% of connect throughput: %s\n", verdict
}'

# ---- profile (optional) --------------------------------------------------
if [[ -n $perf_dir ]]; then
	mkdir -p "$perf_dir"
	for s in pigeon plain; do
		perf record -q --call-graph dwarf,16384 -F 2000 -p "${pid[$s]}" \
			-o "$perf_dir/$s.perf.data" -- sleep $((storm_limit + 30)) \
			2>"$perf_dir/$s.perf.log" &
		perf_pid=$!
		sleep 1 # let perf attach
		storm "$s" "$count" "perf-$s" | sed 's/^/# /'
		kill -INT "$perf_pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$perf_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$perf_pid" 2>/dev/null || true
		wait "$perf_pid" 2>/dev/null || true
		perf_pid=""
		{
			echo "## $s broker: share of its samples by object (self)"
			perf report -i "$perf_dir/$s.perf.data" --stdio --no-children -g none \
				--sort dso 2>/dev/null | grep -v '^#' | grep -v '^$'
			echo "## $s broker: functions with their callees (children), then self"
			perf report -i "$perf_dir/$s.perf.data" --stdio --children -g none \
				--sort sym --percent-limit 0.2 2>/dev/null | grep -v '^#' | grep -v '^$'
		} >"$perf_dir/$s.txt" || true
		echo "# perf profile of the $s broker: $perf_dir/$s.perf.data, summary in $perf_dir/$s.txt"
	done
fi
