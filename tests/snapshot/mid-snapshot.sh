# SPDX-License-Identifier: MIT
# Sourced by test-snapshot-target-exit.sh and -exec.sh.
# stop_mid_snapshot stops uffsnapd (SIGSTOP) in the middle of a snapshot written to IMG: once
# more than the metadata is written (256 KiB: past the instant), and before the trailer (its
# magic, "\x89UFSEND\n", 80 bytes from the end: FORMAT.md). Returns 0 with uffsnapd stopped
# there; 1 if the snapshot finished first (uffsnapd continued and reaped: try again). The
# threshold is low because the workload's memory is mostly never touched, which is not read:
# the image grows by little until its last data pages.
# usage: stop_mid_snapshot DPID IMG
stop_mid_snapshot() {
	local dpid=$1 img=$2
	for _ in $(seq 3000); do # a hang guard only
		[ "$(stat -c %s "$img" 2>/dev/null || echo 0)" -gt 262144 ] && break
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.01
	done
	kill -STOP "$dpid" 2>/dev/null
	if ! kill -0 "$dpid" 2>/dev/null ||
		[ "$(tail -c 80 "$img" | head -c 8 | od -An -tx1 | tr -d ' ')" = "89554653454e440a" ]; then
		kill -CONT "$dpid" 2>/dev/null
		wait "$dpid"
		return 1
	fi
	return 0
}

# A pre-copy snapshot, by uffsnapd-test started with UFFSNAPD_TEST_PAUSE=round:DIR: waits until
# it has paused after its first round (DIR/round), before any instant; DIR/go lets it go on.
# Stopping by the image's size cannot do this: once rounds are quick it can land after the
# instant, where the snapshot rightly completes. Returns 1 if uffsnapd exited first.
# usage: stop_in_rounds DPID DIR
stop_in_rounds() {
	local dpid=$1 dir=$2
	for _ in $(seq 1200); do # a hang guard only
		[ -e "$dir/round" ] && return 0
		kill -0 "$dpid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
