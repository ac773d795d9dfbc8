#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The target calls exec in the middle of a snapshot: its old memory is gone, the new program's
# must never be read into the image. uffsnapd exits 1 saying the target replaced its memory,
# the image is incomplete, and the new program runs on, untraced. As test-snapshot-target-exit.sh:
# uffsnapd is paused (SIGSTOP) once it has written more than the metadata, then the target is
# told to exec (SIGUSR1), then uffsnapd continues. The target is perl: 512 MiB in one string,
# exec of `sleep` on SIGUSR1. With a 3rd argument (--precopy) the snapshot is a pre-copy one,
# and UFFSNAPD must be uffsnapd-test: it pauses after its first round (pause point "round",
# stop_in_rounds), before any instant, where the target execs.
# usage: test-snapshot-target-exec.sh UFFSNAPD UFFSNAPCTL [--precopy]
set -u
. "$(dirname "$0")/mid-snapshot.sh"
D=$1 C=$2 MODE=${3:-}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v perl >/dev/null || { echo "SKIP: no perl (the target)"; exit 77; }
tmp=$(mktemp -d)
trap 'kill -9 $tpid $dpid 2>/dev/null; rm -rf "$tmp"' EXIT

for attempt in 1 2 3 4 5; do
	perl -e '$SIG{USR1} = sub { exec "sleep", "600" }; $x = "u" x (512 << 20);
		 open(F, ">", $ARGV[0]); close(F); sleep 1 while 1' "$tmp/ready" &
	tpid=$!
	while [ ! -e "$tmp/ready" ]; do kill -0 $tpid 2>/dev/null || break; sleep 0.1; done
	rm -rf "$tmp/pause" && mkdir "$tmp/pause"
	pause=
	[ -z "$MODE" ] || pause=round:$tmp/pause
	UFFSNAPD_TEST_PAUSE=$pause "$D" --pid $tpid --output - $MODE >"$tmp/img" 2>"$tmp/err" &
	dpid=$!
	if [ -n "$MODE" ]; then
		stop_in_rounds $dpid "$tmp/pause" || { echo "FAIL: uffsnapd never paused after its first round: $(cat "$tmp/err")"; exit 1; }
	elif ! stop_mid_snapshot $dpid "$tmp/img"; then
		echo "attempt $attempt: the snapshot finished first; again"
		kill -9 $tpid; wait $tpid 2>/dev/null
		rm -f "$tmp/ready"
		continue
	fi
	kill -USR1 $tpid
	# exec'd: the same pid now runs sleep. The exec may itself write a page not yet saved,
	# and wait for uffsnapd: then it happens once uffsnapd continues (hang guards only).
	for _ in $(seq 300); do
		[ "$(cat /proc/$tpid/comm 2>/dev/null)" = sleep ] && break
		sleep 0.01
	done
	kill -CONT $dpid
	touch "$tmp/pause/go"
	wait $dpid
	rc=$?
	for _ in $(seq 3000); do
		[ "$(cat /proc/$tpid/comm 2>/dev/null)" = sleep ] && break
		sleep 0.01
	done
	if [ $rc -eq 0 ]; then
		echo "attempt $attempt: the snapshot completed before the exec; again"
		kill -9 $tpid; wait $tpid 2>/dev/null
		rm -f "$tmp/ready"
		continue
	fi
	fail=0
	[ $rc -eq 1 ] || { echo "FAIL: uffsnapd exited $rc, want 1"; fail=1; }
	grep -q "replaced its memory (exec) during the snapshot" "$tmp/err" ||
		{ echo "FAIL: message: $(cat "$tmp/err")"; fail=1; }
	"$C" image verify "$tmp/img" >"$tmp/v" 2>&1
	vrc=$?
	[ $vrc -eq 1 ] && grep -qi incomplete "$tmp/v" || { echo "FAIL: verify exit $vrc: $(cat "$tmp/v")"; fail=1; }
	# The new program runs on, untraced and not stopped.
	st=$(awk '/^State:/ {print $2}' /proc/$tpid/status 2>/dev/null)
	tr=$(awk '/^TracerPid:/ {print $2}' /proc/$tpid/status 2>/dev/null)
	[ "$(cat /proc/$tpid/comm 2>/dev/null)" = sleep ] && [ "$st" = S ] && [ "$tr" = 0 ] ||
		{ echo "FAIL: the exec'd target: comm $(cat /proc/$tpid/comm 2>/dev/null), state $st, tracer $tr"; fail=1; }
	echo "uffsnapd: $(cat "$tmp/err")"
	echo "verify: $(cat "$tmp/v")"
	[ $fail -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
	exit $fail
done
echo "SKIP: the snapshot always finished before the target could exec"
exit 77
