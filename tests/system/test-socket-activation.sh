#!/bin/sh
# SPDX-License-Identifier: MIT
# uffsnapd --service end to end under the real systemd-socket-activate, as uffsnapd.socket
# starts it: the socket arrives as fd 3, the first client gets the greeting on it, READY=1 and
# STATUS= reach a real NOTIFY_SOCKET listener, the running daemon is user nobody with exactly
# the capabilities svc_caps_drop() keeps, and SIGTERM brings STOPPING=1 and a clean exit.
# usage: test-socket-activation.sh UFFSNAPD SYSTEST-TOOL
set -u
uffsnapd=$1 tool=$2
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (the daemon opens /dev/userfaultfd, drops to nobody)"; exit 77; }
command -v systemd-socket-activate >/dev/null ||
	{ echo "SKIP: systemd-socket-activate not installed (apt-get install systemd)"; exit 77; }
if ! "$uffsnapd" --service --help >/dev/null 2>&1; then
	echo "FAIL: '$uffsnapd --service --help' fails: service mode is missing"
	exit 1
fi
tmp=$(mktemp -d /tmp/uffsnap-sockact-XXXXXX)
act= nl=
cleanup() {
	[ -n "$act" ] && kill -KILL "$act" 2>/dev/null
	[ -n "$nl" ] && kill "$nl" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
fail() { echo "FAIL: $*"; echo "--- daemon's stderr:"; cat "$tmp/daemon.err"; echo "--- notifications:"; cat "$tmp/notify.log"; exit 1; }
# Hang guard for things that happen at once (never a measurement): 30 s in 0.1 s steps.
wait_for() { for _ in $(seq 300); do eval "$1" && return 0; sleep 0.1; done; return 1; }

"$tool" notify-listen "$tmp/notify" >"$tmp/notify.log" & nl=$!
wait_for 'grep -q listening "$tmp/notify.log"' || fail "the NOTIFY_SOCKET listener did not start"
# The daemon notifies after becoming nobody: like systemd's /run/systemd/notify, the socket
# must be writable by anyone.
chmod 0755 "$tmp"
chmod 0777 "$tmp/notify"
mkdir "$tmp/snaps"
setpriv --pdeathsig KILL systemd-socket-activate -l "$tmp/control.sock" -E NOTIFY_SOCKET="$tmp/notify" \
	"$uffsnapd" --service --user nobody --snapshot-dir "$tmp/snaps" 2>"$tmp/daemon.err" & act=$!

greeting=$("$tool" connect "$tmp/control.sock") || fail "no greeting on $tmp/control.sock"
case "$greeting" in
'{"uffsnap":'*'"protocol":'*1*) echo "ok greeting: $greeting" ;;
*) fail "unexpected greeting: $greeting" ;;
esac
wait_for 'grep -qx READY=1 "$tmp/notify.log"' || fail "no READY=1 at NOTIFY_SOCKET"
grep -q '^STATUS=' "$tmp/notify.log" || fail "no STATUS= at NOTIFY_SOCKET"
echo "ok READY=1 and $(grep -m1 '^STATUS=' "$tmp/notify.log")"

# systemd-socket-activate execs the daemon in its own process: $act is uffsnapd now.
status=$(cat "/proc/$act/status")
kept=$(printf '%016x' $(( (1 << 0) | (1 << 2) | (1 << 5) | (1 << 19) ))) # chown, dac_read_search, kill, sys_ptrace
[ "$("$tool" caps-kept)" = "cap_sys_ptrace,cap_dac_read_search,cap_kill,cap_chown" ] ||
	fail "svc_caps_kept() changed: update this test's mask"
for f in CapPrm CapEff CapBnd; do
	echo "$status" | grep -q "^$f:	$kept\$" || fail "$f is not $kept: $(echo "$status" | grep "^$f:")"
done
for f in CapInh CapAmb; do
	echo "$status" | grep -q "^$f:	0000000000000000\$" || fail "$f is not empty"
done
nobody=$(id -u nobody)
echo "$status" | grep -q "^Uid:	$nobody	$nobody	$nobody	$nobody\$" || fail "the daemon is not user nobody"
echo "ok the running daemon is nobody with $(echo "$status" | grep ^CapEff:)"

kill -TERM "$act"
wait "$act"; rc=$?; act=
[ "$rc" = 0 ] || fail "uffsnapd exited $rc on SIGTERM"
wait_for 'grep -qx STOPPING=1 "$tmp/notify.log"' || fail "no STOPPING=1 at NOTIFY_SOCKET"
echo "ok SIGTERM: STOPPING=1, exit 0"
echo "1 passed, 0 failed"
