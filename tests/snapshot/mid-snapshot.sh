# SPDX-License-Identifier: MIT
# Sourced by test-snapshot-target-exit.sh and -exec.sh: stops uffsnapd (SIGSTOP) in the middle
# of a snapshot written to IMG: once more than the metadata is written (past the instant; in a
# pre-copy snapshot, into its first round), and before the trailer. Returns 0 with uffsnapd
# stopped there; 1 if the snapshot finished first (uffsnapd continued and reaped: try again).
# usage: stop_mid_snapshot DPID IMG
stop_mid_snapshot() {
	local dpid=$1 img=$2
	for _ in $(seq 3000); do # a hang guard only
		[ "$(stat -c %s "$img" 2>/dev/null || echo 0)" -gt 4194304 ] && break
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.01
	done
	kill -STOP "$dpid" 2>/dev/null
	if ! kill -0 "$dpid" 2>/dev/null ||
		[ "$(tail -c 80 "$img" | head -c 8 | od -An -tx1 | tr -d ' ')" = "895546534e440a" ]; then
		kill -CONT "$dpid" 2>/dev/null
		wait "$dpid"
		return 1
	fi
	return 0
}
