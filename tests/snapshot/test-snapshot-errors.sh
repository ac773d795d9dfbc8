#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# uffsnapd's refusals: each gives one clear line, exit 1 (2 for usage), and harms nothing.
# usage: test-snapshot-errors.sh UFFSNAPD WORKLOAD
set -u
D=$1 W=$2
tmp=$(mktemp -d)
trap 'kill $wpid 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0 pass=0

# expect NAME CODE PATTERN -- command...
expect() {
	local name=$1 code=$2 pat=$3
	shift 4
	"$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	if [ "$rc" -ne "$code" ] || ! grep -qiE "$pat" "$tmp/err" || [ "$(wc -l <"$tmp/err")" -gt 2 ]; then
		echo "FAIL $name: exit $rc (want $code), stderr: $(cat "$tmp/err")"
		fail=$((fail + 1))
	else
		echo "ok $name: $(head -1 "$tmp/err")"
		pass=$((pass + 1))
	fi
}

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
"$W" --threads 2 --pages 64 >"$tmp/wl" &
wpid=$!
for _ in $(seq 100); do grep -q ready "$tmp/wl" && break; sleep 0.1; done

expect "no arguments" 2 "required" -- "$D"
expect "bad pid" 2 "invalid pid" -- "$D" --pid 12abc --output "$tmp/x"
expect "unknown option" 2 "unrecognized|invalid option" -- "$D" --bogus
expect "no such process" 1 "no (such )?process|does not exist" -- "$D" --pid 4000000 --output "$tmp/a"
expect "kernel thread" 1 "kernel thread" -- "$D" --pid 2 --output "$tmp/b"
sleep 30 & zpid=$!  # a zombie: a child of a process that does not reap
bash -c 'sleep 0.1 & exec sleep 5' & zparent=$!
sleep 0.5
zombie=$(ps -o pid=,stat= --ppid $zparent | awk '$2 ~ /Z/ {print $1; exit}')
if [ -n "$zombie" ]; then
	expect "zombie" 1 "zombie" -- "$D" --pid "$zombie" --output "$tmp/c"
else
	echo "SKIP zombie: could not make one"
fi
kill $zpid $zparent 2>/dev/null
expect "itself" 1 "ourselves|itself|own" -- bash -c "exec $D --pid \$\$ --output $tmp/d"
expect "unwritable output" 1 "cannot create" -- "$D" --pid $wpid --output /proc/nonexistent/x
touch "$tmp/exists"
expect "existing output" 1 "force" -- "$D" --pid $wpid --output "$tmp/exists"
expect "not permitted" 1 "not permitted|permission" -- setpriv --reuid=65534 --regid=65534 --clear-groups "$D" --pid $wpid --output /tmp/uffsnap-nobody-$$
rm -f /tmp/uffsnap-nobody-$$
# Full disk: a 64 KiB tmpfs; the target is released first, then the error.
mkdir "$tmp/full" && mount -t tmpfs -o size=64k tmpfs "$tmp/full" && {
	expect "full disk" 1 "no space" -- "$D" --pid $wpid --output "$tmp/full/img"
	umount "$tmp/full"
}
kill -USR1 $wpid
for _ in $(seq 600); do grep -q "selfcheck" "$tmp/wl" && break; sleep 0.1; done # hang guard
if grep -q "selfcheck ok" "$tmp/wl" && kill -0 $wpid; then
	echo "ok target unharmed"; pass=$((pass + 1))
else
	echo "FAIL target harmed: $(tail -2 "$tmp/wl")"; fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
