#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: uffsnapctl's service commands against the REAL `uffsnapd --service` and a real
# uffsnap-workload: snapshot to a passed fd (--output) and to the snapshot directory (--file),
# status, jobs, job, cancel of a long job, an interrupted (SIGTERM) snapshot leaving an
# incomplete image, watch, bad pid, refusals; streaming: `receive` (a job of a second daemon
# started with --key) and `snapshot --to` it; every image is checked with `uffsnapctl image
# verify` and uffsnap-check, and the target is checked unharmed at the end; `snapshot --qemu`
# on a firmware-only QEMU guest (when qemu-system-x86_64 is installed).
# Exit 0 pass, 1 fail, 77 skip (not root). A uffsnapd without service mode is a FAILURE.
# usage: test-cli-service.sh UFFSNAPD UFFSNAPCTL WORKLOAD CHECK
set -u
D=$1 C=$2 W=$3 K=$4
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (the daemon attaches to processes)"; exit 77; }
tmp=$(mktemp -d)
dpid= wpid= bpid= watchpid= watchjpid= jobpid= d2pid= rpid= qpid=
cleanup() {
	kill -9 $watchpid $watchjpid $jobpid $rpid 2>/dev/null
	kill $dpid $d2pid 2>/dev/null
	kill -9 $wpid $bpid $qpid 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
fail=0 pass=0
S=$tmp/sock
ok() { echo "ok $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }

# A daemon that died makes every later step fail: stop at once and show why.
daemon_alive() {
	[ -z "$dpid" ] || kill -0 $dpid 2>/dev/null && return 0
	echo "FAIL: uffsnapd --service died; its log:"
	tail -20 "$tmp/daemon.log"
	echo "$pass passed, $((fail + 1)) failed"
	exit 1
}

# run NAME CODE PATTERN -- command...: exit status CODE and PATTERN (ERE) in stdout+stderr.
run() {
	local name=$1 code=$2 pat=$3
	shift 4
	"$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	daemon_alive
	if [ "$rc" -ne "$code" ] || ! cat "$tmp/out" "$tmp/err" | grep -qiE -- "$pat"; then
		bad "$name: exit $rc (want $code, /$pat/); stdout: $(head -c 600 "$tmp/out"); stderr: $(head -c 600 "$tmp/err")"
		return 1
	fi
	ok "$name: $(head -1 "$tmp/err")"
}

# check_image NAME FILE LAYOUT: the image verifies and holds one instant of the workload.
check_image() {
	if "$C" image verify "$2" >"$tmp/v" 2>&1 && "$K" --quiet "$2" "$3" >>"$tmp/v" 2>&1; then
		ok "$1: image verifies and is consistent"
	else
		bad "$1: image: $(cat "$tmp/v")"
	fi
}

# start_workload OUTFILE ARGS...: starts it, waits for "ready"; sets $started.
start_workload() {
	local out=$1
	shift
	"$W" "$@" >"$out" &
	started=$!
	for _ in $(seq 600); do grep -q ready "$out" && break; sleep 0.1; done # hang guard
	head -1 "$out" >"$out.layout"
}

# json_field JSON KEY: the integer value of "KEY" in a one-line JSON object.
json_field() { sed -n "s/.*\"$2\": *\([0-9]*\).*/\1/p" <<<"$1"; }

# wait_state ID STATE: until `job ID` says STATE (hang guard only).
wait_state() {
	for _ in $(seq 600); do
		daemon_alive
		"$C" --socket "$S" job "$1" 2>/dev/null | grep -qE "state: +$2" && return 0
		sleep 0.1
	done
	return 1
}

if ! "$D" --service --help 2>&1 | grep -q -- "--snapshot-dir"; then
	echo "FAIL: 'uffsnapd --service --help' lists no service options: service mode is missing:"
	"$D" --service --help 2>&1 | head -3
	exit 1
fi

mkdir "$tmp/dir"
"$D" --service --control "$S" --snapshot-dir "$tmp/dir" --max-job-mem 8 2>"$tmp/daemon.log" &
dpid=$!
for _ in $(seq 300); do [ -S "$S" ] && break; kill -0 $dpid 2>/dev/null || break; sleep 0.1; done
[ -S "$S" ] || { echo "FAIL: uffsnapd --service did not create $S: $(cat "$tmp/daemon.log")"; exit 1; }

start_workload "$tmp/wl" --threads 2 --pages 256
wpid=$started
L=$tmp/wl.layout

# --- connecting and status
run "no daemon" 1 "cannot connect to $tmp/nosock: no such file \(is uffsnapd --service running\? see --socket\)" \
	-- "$C" --socket "$tmp/nosock" status
run "status" 0 "protocol" -- "$C" --socket "$S" status
run "status via \$UFFSNAP_SOCKET, --socket after the command" 0 "protocol" \
	-- env UFFSNAP_SOCKET=/nonexistent "$C" status --socket "$S"
run "status --json" 0 '^\{.*"protocol"' -- env UFFSNAP_SOCKET="$S" "$C" --json status

# --- snapshot to a file the client creates and passes
run "snapshot --output" 0 "complete" -- "$C" --socket "$S" snapshot --pid $wpid --output "$tmp/x.img"
grep -q "target held" "$tmp/out" && ok "summary printed" || bad "no summary: $(cat "$tmp/out")"
check_image "snapshot --output" "$tmp/x.img" "$L"
run "existing output" 1 "exists \(use --force" -- "$C" --socket "$S" snapshot --pid $wpid --output "$tmp/x.img"
run "snapshot --force" 0 "complete" -- "$C" --socket "$S" snapshot --pid $wpid --output "$tmp/x.img" --force --strict --window 32 --copy-threads 3 --mem-limit 1
check_image "snapshot --force" "$tmp/x.img" "$L"
run "mem-limit above --max-job-mem" 1 "above this daemon's --max-job-mem \(8 MiB\)" -- "$C" --socket "$S" snapshot --pid $wpid --file big.img --mem-limit 9
[ ! -e "$tmp/dir/big.img" ] && ok "refused mem-limit: no file" || bad "refused mem-limit left $tmp/dir/big.img"
run "status shows max-job-mem" 0 '"max-job-mem": *8' -- "$C" --socket "$S" --json status

# --- snapshot to a name in the daemon's directory, --json, --no-wait, jobs, job
run "snapshot --file" 0 "complete" -- "$C" --socket "$S" snapshot --pid $wpid --file one.img
[ -f "$tmp/dir/one.img" ] && check_image "snapshot --file" "$tmp/dir/one.img" "$L" || bad "no $tmp/dir/one.img"
run "snapshot --file again" 1 "exist" -- "$C" --socket "$S" snapshot --pid $wpid --file one.img
run "snapshot --json" 0 '"JOB_COMPLETED"' -- "$C" --socket "$S" --json snapshot --pid $wpid --file two.img
head -1 "$tmp/out" | grep -qE '^\{"id": *[0-9]+\}$' && ok "--json: the reply first" || bad "--json first line: $(head -1 "$tmp/out")"
grep -vqE '^\{' "$tmp/out" && bad "--json: a line that is not JSON: $(cat "$tmp/out")" || ok "--json: one JSON object per line"
# --- pre-copy and chains (tests/service/test-svc-chain.c checks them in depth)
run "snapshot --precopy" 0 "pre-copy +[0-9]+ rounds" -- "$C" --socket "$S" snapshot --pid $wpid \
	--file pre.img --precopy --downtime 100 --max-rounds 5
check_image "snapshot --precopy" "$tmp/dir/pre.img" "$L"
run "usage: --downtime without --precopy" 2 "go with --precopy or --incremental" \
	-- "$C" --socket "$S" snapshot --pid $wpid --file p2.img --downtime 10
run "usage: --every without --incremental" 2 "go with --incremental" \
	-- "$C" --socket "$S" snapshot --pid $wpid --file p2.img --every 1
run "usage: --incremental without --every" 2 "needs --every" \
	-- "$C" --socket "$S" snapshot --pid $wpid --file ch --incremental
run "snapshot --incremental" 0 "chain of pid $wpid complete: 2 images" -- "$C" --socket "$S" \
	snapshot --pid $wpid --file ch --incremental --every 1 --count 2
grep -qE "^job [0-9]+: image 0 ch-0000.img: .*full" "$tmp/out" &&
	grep -qE "^job [0-9]+: image 1 ch-0001.img: .*changes since ch-0000.img" "$tmp/out" &&
	ok "a line per image" || bad "chain lines: $(cat "$tmp/out")"
if "$C" image flatten "$tmp/dir/ch-0001.img" --output "$tmp/ch.flat" >"$tmp/v" 2>&1; then
	check_image "snapshot --incremental, flattened" "$tmp/ch.flat" "$L"
else
	bad "flatten ch-0001.img: $(cat "$tmp/v")"
fi
run "snapshot --incremental --json" 0 '"CHAIN_IMAGE"' -- "$C" --socket "$S" --json \
	snapshot --pid $wpid --file chj --incremental --every 1 --count 1
run "snapshot --no-wait" 0 '^\{"id"' -- "$C" --socket "$S" --json snapshot --pid $wpid --file three.img --no-wait
id=$(json_field "$(head -1 "$tmp/out")" id)
wait_state "$id" completed && ok "job $id completes" || bad "job $id never completed"
check_image "snapshot --no-wait" "$tmp/dir/three.img" "$L"
run "jobs" 0 "^ +$id +$wpid +completed" -- "$C" --socket "$S" jobs
run "jobs --json" 0 "^\[.*\"id\": *$id" -- "$C" --socket "$S" jobs --json
run "job" 0 "statistics" -- "$C" --socket "$S" job "$id"
run "job --json" 0 "\"state\": *\"completed\"" -- "$C" --socket "$S" job "$id" --json
run "job unknown" 1 "." -- "$C" --socket "$S" job 999999
run "job bad id" 2 "invalid job ID" -- "$C" --socket "$S" job x1
run "cancel ended job" 1 "." -- "$C" --socket "$S" cancel "$id"

# --- refusals: the request is refused, the output file is not left behind
run "bad pid" 1 "." -- "$C" --socket "$S" snapshot --pid 4000000 --output "$tmp/nopid.img"
[ -e "$tmp/nopid.img" ] && bad "a refused snapshot left $tmp/nopid.img" || ok "refused: no file left"
echo keep >"$tmp/keep.img"
run "bad pid, --force" 1 "." -- "$C" --socket "$S" snapshot --pid 4000000 --output "$tmp/keep.img" --force
[ "$(cat "$tmp/keep.img")" = keep ] && ok "refused: --force file kept" || bad "a refused --force snapshot changed $tmp/keep.img"
(cd "$tmp" && "$C" --socket "$S" snapshot --pid $wpid --output - >"$tmp/stdout.img" 2>"$tmp/err")
[ ! -e "$tmp/-" ] && "$C" image verify "$tmp/stdout.img" >/dev/null 2>&1 && ok "--output - is stdout" ||
	bad "--output -: $(ls "$tmp"; cat "$tmp/err")"
run "kernel thread" 1 "." -- "$C" --socket "$S" snapshot --pid 2 --file kthread.img
run "bad name" 1 "name" -- "$C" --socket "$S" snapshot --pid $wpid --file ../escape.img
run "name starting with -" 1 "not starting with '.' or '-'" -- "$C" --socket "$S" snapshot --pid $wpid --file=-x.img
run "usage: both outputs" 2 "exactly one" -- "$C" --socket "$S" snapshot --pid $wpid --file a --output b
run "socket not permitted" 1 "cannot connect to $S: permission denied \(.*uffsnap group" \
	-- setpriv --reuid=65534 --regid=65534 --clear-groups "$C" --socket "$S" status
# nobody with the socket's group (root's, here) may connect, but not snapshot root's process.
chmod 0711 "$tmp"
run "snapshot not permitted" 1 "may not snapshot.*\(you may snapshot only a process you could ptrace yourself.*uffsnap group" \
	-- setpriv --reuid=65534 --regid=65534 --groups=0 "$C" --socket "$S" snapshot --pid $wpid --file nobody.img
mkdir "$tmp/nb" && echo keep >"$tmp/nb/keep.img" && chown -R 65534:65534 "$tmp/nb"
run "refused as nobody, --force" 1 "may not snapshot" \
	-- setpriv --reuid=65534 --regid=65534 --groups=0 "$C" --socket "$S" snapshot --pid $wpid --output "$tmp/nb/keep.img" --force
[ "$(cat "$tmp/nb/keep.img")" = keep ] && [ "$(ls -A "$tmp/nb")" = keep.img ] &&
	ok "PermissionDenied: the --force file is kept, nothing created" || bad "PermissionDenied changed $tmp/nb: $(ls -la "$tmp/nb")"
run "jobs of others are not shown" 0 "no jobs" \
	-- setpriv --reuid=65534 --regid=65534 --groups=0 "$C" --socket "$S" jobs
setpriv --reuid=65534 --regid=65534 --clear-groups sleep 1000 &
npid=$!
# setpriv drops root's capabilities only at its exec of sleep: until then the target is root's
# (a flaky refusal once). Waiting for the exec is a hang guard, not a time assertion.
for _ in $(seq 100); do [ "$(cat /proc/$npid/comm 2>/dev/null)" = sleep ] && break; sleep 0.1; done
run "snapshot --file as nobody" 0 "complete" \
	-- setpriv --reuid=65534 --regid=65534 --groups=0 "$C" --socket "$S" snapshot --pid $npid --file by-nobody.img
[ "$(stat -c %u:%g:%a "$tmp/dir/by-nobody.img")" = 65534:65534:600 ] &&
	ok "--file image belongs to its client" || bad "--file image: $(stat -c %u:%g:%a "$tmp/dir/by-nobody.img")"
kill $npid
chmod 0700 "$tmp"

# --- watch, backgrounded and stopped with SIGTERM
"$C" --socket "$S" watch >"$tmp/watch" 2>"$tmp/watch.err" &
watchpid=$!
"$C" --socket "$S" watch --json >"$tmp/watchj" 2>"$tmp/watchj.err" &
watchjpid=$!
# Both are connected once they say so (hang guard only).
for _ in $(seq 100); do grep -q watching "$tmp/watch.err" && grep -q watching "$tmp/watchj.err" && break; sleep 0.1; done
run "snapshot while watched" 0 "complete" -- "$C" --socket "$S" snapshot --pid $wpid --file four.img
for _ in $(seq 100); do grep -q completed "$tmp/watch" && break; sleep 0.1; done
kill -TERM $watchpid $watchjpid
wait $watchpid; wrc=$?
wait $watchjpid; wjrc=$?
watchpid= watchjpid=
if [ $wrc -eq 0 ] && grep -q "created for pid $wpid" "$tmp/watch" && grep -q "completed" "$tmp/watch"; then
	ok "watch: $(tr '\n' '|' <"$tmp/watch" | head -c 200)"
else
	bad "watch exit $wrc: $(cat "$tmp/watch" "$tmp/watch.err")"
fi
if [ $wjrc -eq 0 ] && grep -q '"event": *"JOB_COMPLETED"' "$tmp/watchj" && ! grep -vq '^{"event"' "$tmp/watchj"; then
	ok "watch --json"
else
	bad "watch --json exit $wjrc: $(cat "$tmp/watchj")"
fi

# --- long jobs: `cancel ID`, and SIGTERM while waiting. 4 x 32768 pages = 512 MiB to save.
start_workload "$tmp/big" --threads 4 --pages 32768
bpid=$started
cancelled=0
for attempt in 1 2 3 4 5; do
	# --no-wait cannot name a FILE when the job ends: stdout, a file the shell made, instead
	# (with --output -, the reply goes to stderr)
	out=$("$C" --socket "$S" --json snapshot --pid $bpid --output - --no-wait 2>&1 >"$tmp/c.img")
	id=$(json_field "$out" id)
	# Cancel once the job has written something (its image begins at the instant): one
	# cancelled before its first write leaves an empty output, nothing to call incomplete.
	for _ in $(seq 600); do [ -s "$tmp/c.img" ] && break; sleep 0.05; done
	"$C" --socket "$S" cancel "$id" >"$tmp/out" 2>"$tmp/err"
	if grep -q "cancelled" "$tmp/out"; then cancelled=1; break; fi
	echo "attempt $attempt: job $id ended before the cancel: $(cat "$tmp/out" "$tmp/err")"
	wait_state "$id" "completed|failed|cancelled"
done
if [ $cancelled -eq 1 ]; then
	ok "cancel $id: $(cat "$tmp/out")"
	wait_state "$id" cancelled && ok "job $id: state cancelled" || bad "job $id: $("$C" --socket "$S" job "$id")"
	run "cancelled image is incomplete" 1 "incomplete" -- "$C" image verify "$tmp/c.img"
else
	bad "cancel: every job ended before it could be cancelled"
fi
# a cancelled --file job leaves nothing in the snapshot directory (the image is named when done)
for attempt in 1 2 3 4 5; do
	out=$("$C" --socket "$S" --json snapshot --pid $bpid --file cancelled.img --no-wait)
	id=$(json_field "$out" id)
	# Cancel once the job has written something (its image begins at the instant): one
	# cancelled before its first write leaves an empty output, nothing to call incomplete.
	for _ in $(seq 600); do [ -s "$tmp/c.img" ] && break; sleep 0.05; done
	"$C" --socket "$S" cancel "$id" >"$tmp/out" 2>"$tmp/err"
	wait_state "$id" "completed|failed|cancelled"
	grep -q "cancelled" "$tmp/out" && break
	rm -f "$tmp/dir/cancelled.img"
done
[ ! -e "$tmp/dir/cancelled.img" ] && [ -z "$(ls -A "$tmp/dir" | grep -v '\.img$')" ] &&
	ok "cancelled --file job: nothing left" || bad "cancelled --file job left: $(ls -A "$tmp/dir")"
interrupted=0
for attempt in 1 2 3 4 5; do
	rm -f "$tmp/i.img"
	# stdout, a file the shell owns: an interrupted --output FILE leaves nothing to look at
	"$C" --socket "$S" snapshot --pid $bpid --output - >"$tmp/i.img" 2>"$tmp/ierr" &
	jobpid=$!
	# Past the metadata, so that the incomplete image has frames (hang guard only).
	for _ in $(seq 3000); do
		[ "$(stat -c %s "$tmp/i.img" 2>/dev/null || echo 0)" -gt 1048576 ] && break
		kill -0 $jobpid 2>/dev/null || break
		sleep 0.01
	done
	kill -TERM $jobpid
	wait $jobpid; irc=$?
	jobpid=
	grep -q "cancelled" "$tmp/ierr" && { interrupted=1; break; }
	echo "attempt $attempt: the snapshot ended first (exit $irc): $(cat "$tmp/ierr")"
done
if [ $interrupted -eq 1 ] && [ $irc -eq 1 ] && grep -q "cancelling job" "$tmp/ierr" &&
	grep -q "the image on stdout is incomplete" "$tmp/ierr"; then
	ok "SIGTERM while waiting cancels: $(tr '\n' '|' <"$tmp/ierr" | head -c 300)"
	run "interrupted image is incomplete" 1 "incomplete" -- "$C" image info "$tmp/i.img"
else
	bad "SIGTERM while waiting: exit $irc: $(cat "$tmp/ierr")"
fi

# --- streaming: a second daemon with a key; `receive` in the foreground, `snapshot --to` it
run "snapshot --to without a key" 1 "no stream key.*--key" \
	-- "$C" --socket "$S" snapshot --pid $wpid --to 127.0.0.1:1
run "usage: --to and --file" 2 "exactly one" -- "$C" --socket "$S" snapshot --pid $wpid --file a --to h:1
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/key" && chmod 600 "$tmp/key"
S2=$tmp/sock2
mkdir "$tmp/dir2"
"$D" --service --control "$S2" --snapshot-dir "$tmp/dir2" --key "$tmp/key" 2>"$tmp/daemon2.log" &
d2pid=$!
for _ in $(seq 300); do [ -S "$S2" ] && break; kill -0 $d2pid 2>/dev/null || break; sleep 0.1; done
"$C" --socket "$S2" receive --listen 127.0.0.1:0 >"$tmp/recv" 2>"$tmp/recv.err" &
rpid=$!
for _ in $(seq 300); do grep -q "receiving on" "$tmp/recv.err" && break; sleep 0.1; done # hang guard
addr=$(sed -n 's/.*receiving on \([^ ]*\) into.*/\1/p' "$tmp/recv.err")
rid=$(sed -n 's/^job \([0-9]*\): receiving on.*/\1/p' "$tmp/recv.err")
[ -n "$addr" ] && ok "receive: job $rid on $addr" || bad "receive did not start: $(cat "$tmp/recv.err")"
run "snapshot --to" 0 "complete.*verified and stored by the receiver" \
	-- "$C" --socket "$S2" snapshot --pid $wpid --to "$addr"
grep -q "stream .*MiB sent" "$tmp/out" && ok "stream summary printed" || bad "no stream summary: $(cat "$tmp/out")"
for _ in $(seq 300); do grep -q "^received " "$tmp/recv" && break; sleep 0.1; done # hang guard
grep -q "^received .*verified" "$tmp/recv" && ok "receive printed: $(head -1 "$tmp/recv")" || bad "receive printed no image: $(cat "$tmp/recv" "$tmp/recv.err")"
img=$(ls "$tmp/dir2/received/"*.img 2>/dev/null | head -1)
[ -n "$img" ] && check_image "snapshot --to a receive job" "$img" "$L" || bad "no image in $tmp/dir2/received"
run "jobs shows the receiver" 0 "^ +$rid +- +running +1 img .*receiving on $addr" -- "$C" --socket "$S2" jobs
run "job shows its streams" 0 "images: +1 complete" -- "$C" --socket "$S2" job "$rid"
chmod 0711 "$tmp"
chmod 0666 "$S2"
run "receive not permitted" 1 "only root or the daemon's own user" \
	-- setpriv --reuid=65534 --regid=65534 --clear-groups "$C" --socket "$S2" receive --listen 127.0.0.1:0
chmod 0700 "$tmp"
kill -TERM $rpid
wait $rpid; rrc=$?
rpid=
[ $rrc -eq 0 ] && grep -q "receiver stopped" "$tmp/recv.err" && ok "receive: SIGTERM stops the job" || bad "receive exit $rrc: $(cat "$tmp/recv.err")"
kill -TERM $d2pid
wait $d2pid; d2rc=$?
d2pid=
[ $d2rc -eq 0 ] && ok "second uffsnapd exits 0" || bad "second uffsnapd exit $d2rc: $(tail -5 "$tmp/daemon2.log")"

# --- a QEMU guest (firmware only: no kernel to boot), its QMP socket passed by uffsnapctl
QEMU=/usr/bin/qemu-system-x86_64
if [ -x $QEMU ]; then
	$QEMU -nodefaults -no-user-config -display none -accel tcg \
		-machine pc-i440fx-7.2,memory-backend=ram0 -m 64M \
		-object memory-backend-memfd,id=ram0,size=64M,share=on \
		-qmp unix:"$tmp/qmp.sock",server=on,wait=off >/dev/null 2>&1 &
	qpid=$!
	for _ in $(seq 600); do [ -S "$tmp/qmp.sock" ] && break; sleep 0.1; done # hang guard
	run "snapshot --qemu" 0 "snapshot of the QEMU guest .* complete" -- "$C" --socket "$S" snapshot --qemu "$tmp/qmp.sock" \
		--output "$tmp/guest.img"
	run "snapshot --qemu: the image holds the guest" 0 "^guest: +QEMU" -- \
		"$C" image info "$tmp/guest.img"
	run "snapshot --qemu: no QMP there" 1 "qmp|QMP|connect" -- "$C" --socket "$S" snapshot \
		--qemu "$tmp/nothere.sock" --output "$tmp/guest2.img"
	[ -e "$tmp/guest2.img" ] && bad "a refused guest snapshot left a file" || ok "refused: no file left"
	kill -0 $qpid && ok "QEMU still runs" || bad "QEMU died"
	kill -9 $qpid
	wait $qpid 2>/dev/null
else
	echo "skip: snapshot --qemu: $QEMU is not installed (./dev installs qemu-system-x86)"
fi

# --- the targets are unharmed, the daemon is still serving
for w in "$wpid:$tmp/wl" "$bpid:$tmp/big"; do
	p=${w%%:*} f=${w#*:}
	kill -USR1 $p
	for _ in $(seq 600); do grep -q selfcheck "$f" && break; sleep 0.1; done # hang guard
	grep -q "selfcheck ok" "$f" && kill -0 $p && ok "target $p unharmed" || bad "target $p harmed: $(tail -2 "$f")"
done
run "daemon still serving" 0 "protocol" -- "$C" --socket "$S" status
kill -TERM $dpid
wait $dpid
drc=$?
dpid=
[ $drc -eq 0 ] && ok "uffsnapd exits 0 on SIGTERM" || bad "uffsnapd exit $drc: $(tail -5 "$tmp/daemon.log")"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
