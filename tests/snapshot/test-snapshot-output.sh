#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# uffsnapd --output never loses a user's file: a failed snapshot leaves FILE (or a device) as it
# was and creates nothing; an existing file is replaced only with --force and only by a complete
# image; '-' is stdout, and a reader that goes away (EPIPE) is one line and status 1. Usage
# messages say what was wrong. Exit 0 pass, 1 fail, 77 skip.
# usage: test-snapshot-output.sh UFFSNAPD UFFSNAPCTL
set -u
D=$1 C=$2
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (to snapshot and to make a device node)"; exit 77; }
tmp=$(mktemp -d)
sleep 1000 &
tpid=$!
trap 'kill -9 $tpid 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; echo "  stderr: $(cat "$tmp/err")"; fails=$((fails + 1)); }
# run WANT_RC DESC WORD CMD...: exit status, and one line of stderr containing WORD.
run() {
	local want=$1 desc=$2 word=$3
	shift 3
	"$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	[ $rc -eq "$want" ] || fail "$desc: exit $rc, want $want"
	[ "$(wc -l <"$tmp/err")" -le 1 ] || fail "$desc: more than one line on stderr"
	[ -z "$word" ] || grep -qiE -- "$word" "$tmp/err" || fail "$desc: stderr lacks '$word'"
}
# no pid: the file given with --force keeps its content, and no file is created without it
gone=$(sh -c 'echo $$')
echo keep >"$tmp/good.img"
run 1 "missing pid, --force" "no process" "$D" --pid "$gone" --output "$tmp/good.img" --force
[ "$(cat "$tmp/good.img")" = keep ] || fail "missing pid emptied an existing file"
run 1 "missing pid" "no process" "$D" --pid "$gone" --output "$tmp/new.img"
[ ! -e "$tmp/new.img" ] || fail "a failed snapshot left $tmp/new.img"
# no permission (a target we may not ptrace): checked before the output is touched
if command -v setpriv >/dev/null; then
	run 1 "no permission" "permission denied" setpriv --reuid 65534 --regid 65534 \
		--clear-groups "$D" --pid $tpid --output /tmp/uffsnap-never-$$.img --force
	[ ! -e /tmp/uffsnap-never-$$.img ] || fail "a refused snapshot created its output"
fi
# an existing file needs --force; with it a complete image replaces it
run 1 "exists" "use --force" "$D" --pid $tpid --output "$tmp/good.img"
[ "$(cat "$tmp/good.img")" = keep ] || fail "refused snapshot touched the existing file"
run 0 "--force" "" "$D" --pid $tpid --output "$tmp/good.img" --force -q
"$C" image verify "$tmp/good.img" >/dev/null 2>&1 || fail "--force: the new image does not verify"
[ -z "$(ls -A "$tmp" | grep '\.tmp$')" ] || fail "a temporary was left: $(ls -A "$tmp")"
# a directory is not something --force can fix
run 1 "directory" "is a directory" "$D" --pid $tpid --output "$tmp"
grep -q -- "--force" "$tmp/err" && fail "directory: suggests --force"
# a device that fails mid-way is written in place and never removed
mknod "$tmp/full" c 1 7
run 1 "device full" "no space" "$D" --pid $tpid --output "$tmp/full"
[ -c "$tmp/full" ] || fail "a failed write removed the device node"
# stdout to a reader that exits: one line, status 1, not death by SIGPIPE
"$D" --pid $tpid --output - 2>"$tmp/err" | true
rc=${PIPESTATUS[0]}
[ $rc -eq 1 ] || fail "--output - | true: exit $rc, want 1"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "--output - | true: not one line"
# a target's name and its files' names are the target's choice: printed escaped, as ls -b does
esc=$(printf 'x\033]0;pwned\007y')
cp "$(command -v sleep)" "$tmp/$esc"
"$tmp/$esc" 1000 &
epid=$!
# the name is the comm too (the kernel takes it from the file at exec); wait for the exec
for _ in $(seq 300); do [ "$(cat /proc/$epid/comm 2>/dev/null)" = "$esc" ] && break; sleep 0.01; done
run 0 "escapes: snapshot" "" "$D" --pid $epid --output "$tmp/esc.img" -q
"$C" image info "$tmp/esc.img" >"$tmp/info" 2>&1
"$C" image maps "$tmp/esc.img" >"$tmp/maps" 2>&1
kill $epid
# image read to a reader that goes away: one line, status 1 (the heap is larger than a pipe)
heap=$(awk '/\[heap\]/ {print $1}' "$tmp/maps")
if [ -n "$heap" ]; then
	"$C" image read "$tmp/esc.img" --addr 0x${heap%-*} --length $((0x${heap#*-} - 0x${heap%-*})) \
		--output - 2>"$tmp/err" | true
	rc=${PIPESTATUS[0]}
	[ $rc -eq 1 ] || fail "image read --output - | true: exit $rc, want 1"
	[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -qi "broken pipe" "$tmp/err" ||
		fail "image read --output - | true: not one line about the pipe"
fi
if grep -q "$(printf '\033')" "$tmp/info" "$tmp/maps"; then
	fail "image info/maps print a raw escape byte"
fi
grep -qF '(x\033]0;pwned\007y)' "$tmp/info" || fail "image info: comm not shown escaped: $(cat "$tmp/info")"
grep -qF 'x\033]0;pwned\007y' "$tmp/maps" || fail "image maps: path not shown escaped"
# usage messages
run 2 "both outputs" "not both" "$D" --pid $tpid --output "$tmp/x" --to h:1 --key k
run 2 "mem-limit" "1..1048576" "$D" --pid $tpid --to h:1 --key k --mem-limit 99999999999
run 2 "spool-dir" "go with --to" "$D" --pid $tpid --output "$tmp/x" --spool-dir /tmp
run 2 "copy-threads 0" "1..8" "$D" --pid $tpid --output "$tmp/ct.img" --copy-threads 0
run 2 "copy-threads 9" "1..8" "$D" --pid $tpid --output "$tmp/ct.img" --copy-threads 9
run 2 "copy-threads chain" "not --incremental" "$D" --pid $tpid --incremental --every 1 --dir "$tmp" --copy-threads 2
run 2 "mem-limit chain" "not --incremental" "$D" --pid $tpid --incremental --every 1 --dir "$tmp" --mem-limit 8
run 2 "port range" "port" "$D" --pid $tpid --to 127.0.0.1:65537 --key k
[ $fails -eq 0 ] && echo "all passed" || echo "$fails failed"
exit $((fails > 0))
