#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The target exits in the middle of a snapshot: uffsnapd exits 1 with a clear error and the
# image is marked incomplete (no trailer), readable up to its last frame. The image goes to
# stdout, a file the shell owns: a failed `--output FILE` leaves nothing behind (see
# test-snapshot-output.sh), so stdout is the way to see what was written.
# Deterministic: uffsnapd is paused (SIGSTOP) once it is past the snapshot instant (the image
# has grown beyond its metadata) and before it has finished, then the target is killed.
# With a 4th argument, --precopy: a pre-copy snapshot, the target killed during its rounds,
# before any instant. UFFSNAPD must then be uffsnapd-test: it pauses after the first round
# (pause point "round"), where the target is killed. (Stopping it by the image's size, as
# above, could land after the instant once rounds are quick: the snapshot then rightly
# completes.)
# usage: test-snapshot-target-exit.sh UFFSNAPD WORKLOAD UFFSNAPCTL [--precopy]
set -u
. "$(dirname "$0")/mid-snapshot.sh"
D=$1 W=$2 C=$3 MODE=${4:-}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
tmp=$(mktemp -d)
trap 'kill -9 $wpid $dpid 2>/dev/null; rm -rf "$tmp"' EXIT

for attempt in 1 2 3 4 5; do
	"$W" --threads 4 --pages 32768 >"$tmp/wl" &
	wpid=$!
	for _ in $(seq 600); do grep -q ready "$tmp/wl" && break; sleep 0.1; done
	rm -rf "$tmp/pause" && mkdir "$tmp/pause"
	pause=
	[ -z "$MODE" ] || pause=round:$tmp/pause
	UFFSNAPD_TEST_PAUSE=$pause "$D" --pid $wpid --output - $MODE >"$tmp/img" 2>"$tmp/err" &
	dpid=$!
	if [ -n "$MODE" ]; then
		stop_in_rounds $dpid "$tmp/pause" || { echo "FAIL: uffsnapd never paused after its first round: $(cat "$tmp/err")"; exit 1; }
	elif ! stop_mid_snapshot $dpid "$tmp/img"; then
		echo "attempt $attempt: the snapshot finished first; again"
		kill -9 $wpid; wait $wpid 2>/dev/null
		continue
	fi
	kill -9 $wpid
	wait $wpid 2>/dev/null
	kill -CONT $dpid
	touch "$tmp/pause/go"
	wait $dpid
	rc=$?
	fail=0
	[ $rc -eq 1 ] || { echo "FAIL: uffsnapd exited $rc, want 1"; fail=1; }
	grep -q "exited during the snapshot" "$tmp/err" || { echo "FAIL: message: $(cat "$tmp/err")"; fail=1; }
	"$C" image verify "$tmp/img" >"$tmp/v" 2>&1
	vrc=$?
	[ $vrc -eq 1 ] && grep -qi incomplete "$tmp/v" || { echo "FAIL: verify exit $vrc: $(cat "$tmp/v")"; fail=1; }
	echo "uffsnapd: $(cat "$tmp/err")"
	echo "verify: $(cat "$tmp/v")"
	[ $fail -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
	exit $fail
done
echo "SKIP: the snapshot always finished before the target could be killed"
exit 77
