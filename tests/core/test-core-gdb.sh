#!/bin/bash
# SPDX-License-Identifier: MIT
# Live core files read by gdb: `uffsnapd --core` and `uffsnapctl image core` of core-target
# (threads parked at known depths with known locals, in read(2), one with known ymm8/ymm9,
# globals and heap with known patterns) give gdb the same threads, stacks, locals, callee-saved
# registers, AVX registers and memory as the program had, and as gdb's own gcore of the same
# program in the same state gives; the program kept running across the snapshot.
# Usage: test-core-gdb.sh UFFSNAPD UFFSNAPCTL CORE-TARGET GDB-SCRIPT
set -u
UFFSNAPD=$1 CTL=$2 TARGET=$3 SCRIPT=$4

command -v gdb >/dev/null || { echo "SKIP: gdb is not installed"; exit 77; }
command -v gcore >/dev/null || { echo "SKIP: gcore (package gdb) is not installed"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (ptrace and /dev/userfaultfd)"; exit 77; }
grep -qw avx /proc/cpuinfo || { echo "SKIP: this CPU has no AVX"; exit 77; }

dir=$(mktemp -d)
tpid=
cleanup() { [ -n "$tpid" ] && kill "$tpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$TARGET" >"$dir/out" &
tpid=$!
until grep -q '^ready' "$dir/out"; do
	kill -0 "$tpid" 2>/dev/null || fail "core-target exited before it was ready"
	sleep 0.05
done
read -r _ pid heap w0 w1 w2 avx prog <"$dir/out"
# Every parked thread inside read(2) (syscall number 0) before the snapshot.
for t in "$w0" "$w1" "$w2" "$avx"; do
	until [ "$(cut -d' ' -f1 "/proc/$pid/task/$t/syscall")" = 0 ]; do sleep 0.05; done
done

"$UFFSNAPD" --pid "$pid" --core "$dir/live.core" --json >"$dir/summary.json" ||
	fail "uffsnapd --core failed"
"$UFFSNAPD" --pid "$pid" --output "$dir/image" -q || fail "uffsnapd --output failed"
"$CTL" image core "$dir/image" --output "$dir/image.core" 2>"$dir/ctl.err" ||
	fail "uffsnapctl image core failed: $(cat "$dir/ctl.err")"
grep -q warning "$dir/ctl.err" && fail "warnings for a fresh image: $(cat "$dir/ctl.err")"
gcore -o "$dir/gcore" "$pid" >/dev/null 2>&1 || fail "gcore failed"

for c in live.core image.core "gcore.$pid"; do
	gdb -batch -nx -x "$SCRIPT" "$TARGET" "$dir/$c" >"$dir/$c.txt" 2>&1 ||
		fail "gdb cannot read $c: $(tail -3 "$dir/$c.txt")"
	grep -Eq 'too small|Cannot access memory|not in executable format' "$dir/$c.txt" &&
		fail "gdb complains about $c: $(grep -E 'too small|Cannot access' "$dir/$c.txt" | head -3)"
done

line() { grep "^$1 $2 " "$dir/$3.txt" | cut -d' ' -f3-; }
for c in live.core image.core; do
	# What the program had at the instant.
	grep -q '^MAGIC 1122334455667788$' "$dir/$c.txt" || fail "$c: g_magic"
	grep -q '^PATTERN uffsnap-core-global$' "$dir/$c.txt" || fail "$c: g_pattern"
	grep -q '^HEAP 5eed000000000000 5eed0000000dfff9$' "$dir/$c.txt" || fail "$c: heap words"
	[ "$(grep -c '^REGS ' "$dir/$c.txt")" = 6 ] || fail "$c: not 6 threads"
	for k in 0 1 2; do
		eval t=\$w$k
		want=$(for ((n = 0; n <= k + 2; n++)); do printf '%x ' $((0xabc000 + k * 16 + n)); done)
		[ "$(line MARKS "$t" "$c") " = "$want" ] ||
			fail "$c: worker $k locals: '$(line MARKS "$t" "$c")', want '$want'"
		[ "$(line STACK "$t" "$c" | grep -o 'level' | wc -l)" = $((k + 3)) ] ||
			fail "$c: worker $k stack: $(line STACK "$t" "$c")"
		line STACK "$t" "$c" | grep -Eq '^(__GI___libc_read|read|__libc_read)' ||
			fail "$c: worker $k is not in read: $(line STACK "$t" "$c")"
	done
	[ "$(line YMM "$avx" "$c")" = "1 2 3 4 1111111111111111 2222222222222222 3333333333333333 4444444444444444" ] ||
		fail "$c: ymm8/ymm9 of the AVX thread: $(line YMM "$avx" "$c")"
	# The same as gdb reads from its own gcore of the program in the same state (the
	# progress thread moves on; rip/rax of threads in read(2) may show the restart).
	for t in "$pid" "$w0" "$w1" "$w2" "$avx"; do
		for what in REGS YMM STACK MARKS; do
			[ "$(line $what "$t" "$c")" = "$(line $what "$t" "gcore.$pid")" ] ||
				fail "$c: $what of thread $t: '$(line $what "$t" "$c")' but gcore: '$(line $what "$t" "gcore.$pid")'"
		done
	done
	# gdb's own commands read the same: `x` on the heap, and `info threads` plus
	# `thread apply all bt` name the same threads (LWPs) as in gcore's core.
	want=$(grep -m1 '0x5eed000000000000' "$dir/gcore.$pid.txt")
	[ -n "$want" ] && [ "$(grep -m1 '0x5eed000000000000' "$dir/$c.txt")" = "$want" ] ||
		fail "$c: x/2gx g_heap: '$(grep -m1 '0x5eed0' "$dir/$c.txt")' but gcore: '$want'"
	lwps() { grep -o 'LWP [0-9]*' "$dir/$1.txt" | sort | uniq -c; }
	[ "$(lwps "$c")" = "$(lwps "gcore.$pid")" ] && [ "$(lwps "$c" | wc -l)" = 6 ] ||
		fail "$c: info threads / thread apply all bt: $(lwps "$c" | tr '\n' ' ') but gcore: $(lwps "gcore.$pid" | tr '\n' ' ')"
done

# The program kept running: its counter moved on between the instant and gcore's stop, and
# the summary says how long it was held (no wall-clock threshold: a loaded machine may vary).
c1=$(grep '^COUNTER ' "$dir/live.core.txt" | cut -d' ' -f2)
c2=$(grep '^COUNTER ' "$dir/gcore.$pid.txt" | cut -d' ' -f2)
[ "$c2" -gt "$c1" ] || fail "the progress counter did not advance ($c1 then $c2)"
grep -q '"held_ns"' "$dir/summary.json" || fail "no hold time in the summary: $(cat "$dir/summary.json")"

# readelf reads the notes as the kernel's.
notes=$(readelf --notes --wide "$dir/live.core" 2>&1)
for n in NT_PRSTATUS NT_PRPSINFO NT_AUXV NT_FILE NT_FPREGSET NT_X86_XSTATE; do
	grep -q "$n" <<<"$notes" || fail "readelf finds no $n"
done
[ "$(grep -c NT_PRSTATUS <<<"$notes")" = 6 ] || fail "readelf: not 6 NT_PRSTATUS notes"
if command -v eu-stack >/dev/null; then
	eu-stack --core "$dir/live.core" --executable "$TARGET" >"$dir/eu.txt" 2>&1 ||
		fail "eu-stack cannot read the core: $(head -3 "$dir/eu.txt")"
	[ "$(grep -c '^TID' "$dir/eu.txt")" = 6 ] || fail "eu-stack: not 6 threads"
	grep -q level "$dir/eu.txt" || fail "eu-stack: no level() frames"
else
	echo "note: eu-stack is not installed (./dev installs elfutils): the core is not checked with it"
fi
# An incomplete image (cut in the middle): a core with what is there, and warnings naming what
# is missing; gdb still has every thread.
head -c $(($(stat -c %s "$dir/image") / 2)) "$dir/image" >"$dir/half"
"$CTL" image core "$dir/half" --output "$dir/half.core" 2>"$dir/half.err" ||
	fail "no core from an incomplete image: $(cat "$dir/half.err")"
grep -q 'warning: the core lacks the end of the image' "$dir/half.err" ||
	fail "no warning about the incomplete image: $(cat "$dir/half.err")"
grep -q 'warning: the core lacks [0-9]* pages' "$dir/half.err" ||
	fail "no warning about the missing pages: $(cat "$dir/half.err")"
gdb -batch -nx -x "$SCRIPT" "$TARGET" "$dir/half.core" >"$dir/half.txt" 2>&1
[ "$(grep -c '^REGS ' "$dir/half.txt")" = 6 ] || fail "gdb: not 6 threads in the incomplete core"
echo "PASS: gdb reads the live cores as it reads gcore's (counter $c1 at the instant, $c2 later)"
