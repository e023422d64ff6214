# SPDX-License-Identifier: Apache-2.0
# Shared by the bench/ scripts (sourced, not run).

# stop_pid PID SECONDS: SIGTERM, wait up to SECONDS for the exit, then SIGKILL.
stop_pid() {
	local p=$1 limit=$2 i
	kill -TERM "$p" 2>/dev/null || return 0
	for ((i = 0; i < limit * 10; i++)); do
		kill -0 "$p" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null || true
}
