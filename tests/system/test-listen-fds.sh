#!/bin/sh
# SPDX-License-Identifier: MIT
# svc_listen_fds() and svc_notify() under the real systemd-socket-activate: the probe gets the
# listening socket as fd 3 (made CLOEXEC, the LISTEN_* variables gone) and answers on it; its
# READY=1 reaches a real NOTIFY_SOCKET listener.
# usage: test-listen-fds.sh SYSTEST-TOOL
set -u
tool=$1
command -v systemd-socket-activate >/dev/null ||
	{ echo "SKIP: systemd-socket-activate not installed (apt-get install systemd)"; exit 77; }
tmp=$(mktemp -d /tmp/uffsnap-listen-XXXXXX)
act= nl=
cleanup() {
	[ -n "$act" ] && kill "$act" 2>/dev/null
	[ -n "$nl" ] && kill "$nl" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

"$tool" notify-listen "$tmp/notify" >"$tmp/notify.log" & nl=$!
for _ in $(seq 300); do grep -q listening "$tmp/notify.log" && break; sleep 0.1; done
setpriv --pdeathsig KILL systemd-socket-activate -l "$tmp/sock" -E NOTIFY_SOCKET="$tmp/notify" "$tool" listen-probe \
	2>"$tmp/act.err" & act=$!
line=$("$tool" connect "$tmp/sock") || { echo "FAIL: no answer on $tmp/sock"; cat "$tmp/act.err"; exit 1; }
if [ "$line" != "n=1 cloexec=1 env=unset" ]; then
	echo "FAIL: the probe found: $line (expected n=1 cloexec=1 env=unset)"
	exit 1
fi
wait "$act"; rc=$?; act=
[ "$rc" = 0 ] || { echo "FAIL: the probe exited $rc"; cat "$tmp/act.err"; exit 1; }
for _ in $(seq 300); do grep -qx READY=1 "$tmp/notify.log" && break; sleep 0.1; done
grep -qx READY=1 "$tmp/notify.log" || { echo "FAIL: no READY=1 at NOTIFY_SOCKET"; exit 1; }
echo "ok socket activation: $line, READY=1 received"
echo "1 passed, 0 failed"
