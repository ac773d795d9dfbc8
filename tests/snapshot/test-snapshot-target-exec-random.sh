#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Issue 19: the target calls exec at a random moment of a snapshot, and the new program's bytes
# never reach the image. test-snapshot-target-exec.sh execs at one chosen moment; here each
# iteration execs after a random delay from uffsnapd's start, from 0 to 1.5 times a snapshot's
# duration (measured first, on a target that does not exec), so that the execs land before
# uffsnapd has opened the target, before the instant, during the copy (the rounds, with
# --precopy) and after the end. One random point in each of N equal slices of [0, 1), squared
# (denser near 0, where the first phases are a few ms long), from a seed printed so that a
# failure can be replayed.
#
# The old program (perl) holds 256 MiB of token A; on SIGUSR1 it execs the new one (perl too,
# through a copy of its binary named newprog, so that the image's metadata and the new pid's
# comm tell them apart), which fills 256 MiB with token B and sleeps. B is the upper case of a
# text the old program holds only in lower case: no byte of the old program's memory is B.
# Both run with address randomisation off (setarch -R, inherited across exec), so that B lies
# where A lay: a read of the new memory at an old address would find B, not nothing.
#
# Every iteration, whatever the moment:
# - uffsnapd ends (hang guards only, generous: failing loudly, never timing the snapshot);
# - the image uffsnapd wrote to stdout, complete or not, holds no B; except when the exec came
#   before uffsnapd opened the target: then the new program was its target from the start,
#   and its complete image names newprog and holds no A;
# - exit 0: the image verifies and names perl, and holds all of A; exit 1: it says the target
#   replaced its memory (exec) or went away, and the image does not verify;
# - the old program, if uffsnapd ended before the signal, still runs, neither traced nor
#   stopped; the new program runs, neither traced nor stopped, and has built its B.
# At the end, a control: a snapshot of the last new program holds B (the check can see it).
# usage: test-snapshot-target-exec-random.sh UFFSNAPD UFFSNAPCTL [--precopy] [N [SEED]]
set -u
D=$1 C=$2
MODE=
[ "${3:-}" = --precopy ] && { MODE=--precopy; shift; }
N=${3:-12} SEED=${4:-$RANDOM}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v perl >/dev/null || { echo "SKIP: no perl (the target)"; exit 77; }
command -v setarch >/dev/null || { echo "SKIP: no setarch (to turn address randomisation off)"; exit 77; }
RANDOM=$SEED
echo "seed $SEED (replay: $0 $D $C $MODE $N $SEED)"

# tmpfs when there is one: each image is a few hundred MiB, written and read back each time.
tmp=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
tpid='' dpid=''
trap 'kill -9 $tpid $dpid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
cp "$(command -v perl)" "$tmp/newprog"
A_TOKEN='uffsnap:old:a19' B_TOKEN='UFFSNAP:NEW:B19' # 15 bytes and a newline: one line each
A_COUNT=$((16 << 20))                               # 256 MiB of 16-byte lines
NEW='my $m = uc("uffsnap:new:b19") . "\n"; $m x= 16 << 20;
	open(F, ">", $ARGV[0]) or die; close(F); sleep 1 while 1'
OLD='my ($ready, $prog, $new, $built) = @ARGV;
	$SIG{USR1} = sub { exec {$prog} "newprog", "-e", $new, $built or die "exec: $!" };
	my $m = "uffsnap:old:a19\n"; $m x= 16 << 20;
	open(F, ">", $ready) or die; close(F); sleep 1 while 1'
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

field() { # PID FIELD: a field of /proc/PID/status
	awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null
}

alive() { # PID: exists and is not a zombie
	local s
	s=$(field "$1" State)
	[ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
}

# PID COMM WHAT: PID runs COMM, neither traced nor stopped.
check_free() {
	local comm state tracer
	comm=$(cat "/proc/$1/comm" 2>/dev/null) state=$(field "$1" State) tracer=$(field "$1" TracerPid)
	[ "$comm" = "$2" ] && [ "$tracer" = 0 ] && [ -n "$state" ] && [[ "$state" != [tTZX] ]] ||
		fail "$3: pid $1 comm '$comm' (want $2), state '$state', tracer '$tracer'"
}

# FILE: 0 when FILE (and, with a message, its parent) exists; gives up after 60 s.
wait_file() {
	for _ in $(seq 600); do
		[ -e "$1" ] && return 0
		alive "$tpid" || break
		sleep 0.1
	done
	[ -e "$1" ]
}

start_old() {
	rm -f "$tmp/ready" "$tmp/built"
	setarch "$(uname -m)" -R perl -e "$OLD" "$tmp/ready" "$tmp/newprog" "$NEW" "$tmp/built" &
	tpid=$!
	wait_file "$tmp/ready" || { echo "FAIL: the target (perl) never got ready"; exit 1; }
}

# uffsnapd ends: a hang guard of 120 s (a snapshot here takes about a second), then loudly.
wait_uffsnapd() {
	for _ in $(seq 2400); do
		alive "$dpid" || break
		sleep 0.05
	done
	if alive "$dpid"; then
		echo "FAIL: uffsnapd (pid $dpid) still runs 120 s on; its threads:"
		for t in "/proc/$dpid/task/"*; do
			echo "  $(basename "$t") $(cat "$t/comm") $(awk '/^State:/ {print $2}' "$t/status")" \
			     "$(cat "$t/wchan" 2>/dev/null)"
		done
		echo "the target: $(cat /proc/$tpid/comm 2>/dev/null) state $(field $tpid State)" \
		     "tracer $(field $tpid TracerPid)"
		kill -9 "$dpid"
		exit 1
	fi
	wait "$dpid"
	rc=$?
	dpid=
}

count() { # TOKEN FILE: lines of FILE holding TOKEN
	LC_ALL=C grep -c -a -F -- "$1" "$2"
}

target_of() { # IMG: the comm the image's metadata names, if any
	"$C" image info "$1" 2>/dev/null | awk '/^target:/ {print $4}' | tr -d '()'
}

# A complete image of the old program: verifies, names perl, holds all of A and no B.
check_old_image() {
	local what=$1 na nb
	"$C" image verify "$tmp/img" >"$tmp/v" 2>&1 || fail "$what: verify: $(cat "$tmp/v")"
	[ "$(target_of "$tmp/img")" = perl ] || fail "$what: the image names $(target_of "$tmp/img")"
	na=$(count "$A_TOKEN" "$tmp/img") nb=$(count "$B_TOKEN" "$tmp/img")
	[ "$na" -ge "$A_COUNT" ] || fail "$what: $na lines of A, want $A_COUNT or more"
	[ "$nb" -eq 0 ] || fail "$what: $nb lines of the new program's B"
}

# A snapshot's length without exec, from uffsnapd's start to its end: the median of three of
# one target (the first is often slower), each checked as a snapshot the exec never met.
start_old
for j in 1 2 3; do
	t0=$(date +%s%N)
	"$D" --pid "$tpid" --output - $MODE >"$tmp/img" 2>"$tmp/err" &
	dpid=$!
	wait_uffsnapd
	took[j]=$((($(date +%s%N) - t0) / 1000000))
	[ $rc -eq 0 ] || { echo "FAIL: a snapshot without exec: exit $rc: $(cat "$tmp/err")"; exit 1; }
	check_old_image "snapshot $j without exec"
	check_free "$tpid" perl "the target after snapshot $j without exec"
done
kill -9 "$tpid"; wait "$tpid" 2>/dev/null
span=$(printf '%s\n' "${took[@]}" | sort -n | sed -n 2p)
echo "snapshots without exec took ${took[*]} ms; delays from 0 to $((span * 3 / 2)) ms"
span=$((span * 3 / 2))

before=0 start=0 copy=0 after=0 late=0
for i in $(seq 0 $((N - 1))); do
	# One in each of N slices of [0, 1), squared: denser near 0, where the phases are short.
	u=$((i * 32768 + RANDOM)) # in [0, N * 32768)
	v=$((u * u / (N * 32768))) # its square, in [0, N * 32768)
	delay=$((v * span / (N * 32768)))
	start_old
	"$D" --pid "$tpid" --output - $MODE >"$tmp/img" 2>"$tmp/err" &
	dpid=$!
	[ $delay -eq 0 ] || sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	written=$(stat -c %s "$tmp/img")
	if alive "$dpid"; then
		when="uffsnapd running, $((written >> 10)) KiB written"
	else
		when="uffsnapd ended"
		late=$((late + 1))
		check_free "$tpid" perl "#$i: the old program after uffsnapd ended"
	fi
	kill -USR1 "$tpid"
	wait_uffsnapd
	err=$(cat "$tmp/err")
	# The exec happened, or happens now that uffsnapd let go (a held target takes the signal
	# once released); and the new program is the one running.
	for _ in $(seq 600); do
		[ "$(cat /proc/$tpid/comm 2>/dev/null)" = newprog ] && break
		sleep 0.1
	done
	wait_file "$tmp/built" || fail "#$i: the new program never built its memory"
	check_free "$tpid" newprog "#$i: the new program"
	nb=$(count "$B_TOKEN" "$tmp/img")
	if [ $rc -eq 0 ] && [ "$(target_of "$tmp/img")" = newprog ]; then
		what="before: the new program's image"
		before=$((before + 1))
		"$C" image verify "$tmp/img" >"$tmp/v" 2>&1 || fail "#$i: verify: $(cat "$tmp/v")"
		na=$(count "$A_TOKEN" "$tmp/img")
		[ "$na" -eq 0 ] || fail "#$i: the new program's image holds $na lines of A"
	elif [ $rc -eq 0 ]; then
		what="after: complete"
		after=$((after + 1))
		check_old_image "#$i"
	elif [ $rc -eq 1 ]; then
		if [ "$written" -le 64 ]; then
			what="during: before anything but the header was written"
			start=$((start + 1))
		else
			what="during: copying"
			copy=$((copy + 1))
		fi
		[ "$nb" -eq 0 ] || fail "#$i: the incomplete image holds $nb lines of the new program's B"
		# Whatever call the exec made fail (a read: ESRCH; UFFDIO_REGISTER once the old
		# address space has no users: ENOMEM; PAGEMAP_SCAN: ESRCH), the summary names the
		# exec (engine/snap.c, snap_fail(): the address space opened at the start is gone).
		if [[ "$err" != *"replaced its memory (exec) during the snapshot"* &&
		      "$err" != *"went away"* ]]; then
			fail "#$i: uffsnapd's message: $err"
		fi
		if [ -s "$tmp/img" ] && "$C" image verify "$tmp/img" >"$tmp/v" 2>&1; then
			fail "#$i: a failed snapshot's image verifies: $(cat "$tmp/v")"
		fi
	else
		what="uffsnapd exit $rc"
		fail "#$i: uffsnapd exited $rc: $err"
	fi
	echo "#$i: delay $delay ms ($when) -> $what; $(($(stat -c %s "$tmp/img") >> 20)) MiB," \
	     "$nb lines of B$([ $rc -eq 0 ] || echo "; $err")"
	kill -9 "$tpid"; wait "$tpid" 2>/dev/null
	rm -f "$tmp/img"
done

# The control: a new program, snapshot once it built B, holds B.
start_old
kill -USR1 "$tpid"
for _ in $(seq 600); do
	[ "$(cat /proc/$tpid/comm 2>/dev/null)" = newprog ] && break
	sleep 0.1
done
wait_file "$tmp/built" || fail "the control's new program never built its memory"
"$D" --pid "$tpid" --output - >"$tmp/img" 2>"$tmp/err" &
dpid=$!
wait_uffsnapd
nb=$(count "$B_TOKEN" "$tmp/img")
[ $rc -eq 0 ] && [ "$nb" -ge "$A_COUNT" ] ||
	fail "the control: exit $rc ($(cat "$tmp/err")), $nb lines of B, want $A_COUNT or more"

echo "$N execs ${MODE:-(plain)}: $before before uffsnapd opened the target," \
     "$start before anything but the header was written, $copy while copying," \
     "$after after the end ($late of them signalled after uffsnapd ended)"
[ $fails -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed ($fails checks)"
[ $fails -eq 0 ]
