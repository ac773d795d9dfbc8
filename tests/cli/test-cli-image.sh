#!/bin/sh
# SPDX-License-Identifier: MIT
# End to end: uffsnapctl image info|verify|maps|read on an image written by mkimage (the real
# writer), its exit statuses (0 ok, 1 bad input, 2 usage), and bad input of every kind giving one
# line on stderr and never a crash. Exit 0 pass, 1 fail, 77 skip.
# Usage: test-cli-image.sh UFFSNAPCTL MKIMAGE
set -u

U=${1:?usage: test-cli-image.sh UFFSNAPCTL MKIMAGE}
MK=${2:?usage: test-cli-image.sh UFFSNAPCTL MKIMAGE}
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
failures=0

fail() {
	echo "FAIL: $*" >&2
	echo "  stdout: $(head -c 400 "$T/out")" >&2
	echo "  stderr: $(head -c 400 "$T/err")" >&2
	failures=$((failures + 1))
}

# run CMD...: runs it with stdout and stderr captured, sets $rc.
run() {
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
}

# expect RC DESC: the last run exited with RC, and not by a signal.
expect() {
	[ "$rc" -eq "$1" ] || fail "$2: exit status $rc, expected $1"
}

# one_line DESC [WORD...]: stderr is exactly one line and contains every WORD.
one_line() {
	desc=$1
	shift
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "$desc: stderr is not exactly one line"
	for w in "$@"; do
		grep -qF -- "$w" "$T/err" || fail "$desc: stderr does not mention '$w'"
	done
}

# out_has DESC TEXT...: stdout contains every TEXT.
out_has() {
	desc=$1
	shift
	for w in "$@"; do
		grep -qF -- "$w" "$T/out" || fail "$desc: stdout lacks '$w'"
	done
}

# flip FILE OFFSET: xors one byte of FILE with 0xff.
flip() {
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

IMG=$T/t.img
"$MK" image "$IMG" || { echo "mkimage failed" >&2; exit 1; }
"$MK" partial "$T/partial.img" || exit 1

# --- global options and dispatch ----------------------------------------------------------
run "$U" --help; expect 0 "--help"; out_has "--help" "image info" "image verify" "image maps" "image read"
run "$U" --version; expect 0 "--version"; out_has "--version" "uffsnapctl"
run "$U"; expect 2 "no command"; one_line "no command" "--help"
run "$U" frobnicate; expect 2 "unknown command"; one_line "unknown command" "frobnicate" "--help"
run "$U" --frobnicate; expect 2 "unknown option"; one_line "unknown option" "--frobnicate" "--help"
run "$U" image; expect 2 "image without command"; one_line "image without command" "--help"
run "$U" image frob "$IMG"; expect 2 "unknown image command"; one_line "unknown image command" "frob"
run "$U" image --help; expect 0 "image --help"; out_has "image --help" "info" "verify" "maps" "read"
run "$U" image read --help; expect 0 "read --help"; out_has "read --help" "--addr" "--length" "--output"
run "$U" image info; expect 2 "info without FILE"; one_line "info without FILE" "FILE"
run "$U" image info "$IMG" extra; expect 2 "extra operand"; one_line "extra operand" "extra"
run "$U" image info --bogus "$IMG"; expect 2 "unknown info option"; one_line "unknown info option" "--bogus"
run "$U" image verify -x "$IMG"; expect 2 "unknown short option"; one_line "unknown short option" "-x"

# --- a valid image --------------------------------------------------------------------------
run "$U" image info "$IMG"; expect 0 "info"
out_has "info" "complete" "pid 4242" "(testprog)" "/usr/bin/testprog" "2026-11-18T09:46:40" \
	"6.18.0-test x86_64" "page size 4096" "data:       10 pages, 40.0 KiB" \
	"zero:       2 pages" "discarded:  1 page," "frames:     10 " "vmas:       4" "threads:    2"
[ -s "$T/err" ] && fail "info: unexpected stderr"
run "$U" image info --json "$IMG"; expect 0 "info --json"
out_has "info --json" '"status": "complete"' '"pid": 4242' '"data_pages": 10' '"zero_pages": 2' \
	'"discarded_pages": 1' '"page_size": 4096' '"frames": 10' '"vmas": 4' '"threads": 2'
run "$U" image verify "$IMG"; expect 0 "verify"
out_has "verify" "$IMG: ok, 10 frames, 10 data pages, 2 zero pages, 1 discarded pages"
"$U" image verify - <"$IMG" >"$T/out" 2>"$T/err"; rc=$?; expect 0 "verify stdin"
cat "$IMG" | "$U" image verify - >"$T/out" 2>"$T/err"; rc=$?; expect 0 "verify pipe"
out_has "verify pipe" "(stdin): ok, 10 frames"
cat "$IMG" | "$U" image info - >"$T/out" 2>"$T/err"; rc=$?; expect 0 "info pipe"
run "$U" image maps "$IMG"; expect 0 "maps"
[ "$(wc -l <"$T/out")" -eq 4 ] || fail "maps: expected 4 lines"
out_has "maps" "00010000-00018000 rw-p 00000000 00:00 0          anon         tracked   [heap]" \
	"00020000-00022000 rw-s 00002000 fd:01 1234567    file-shared  reference /tmp/data file" \
	"00400000-00401000 r-xp 00000000 00:00 0          text         none      /usr/bin/testprog" \
	"7ffff7ff0000-7ffff7ff3000 rw-p 00000000 00:00 0          stack        copied    [stack]"

# read: hex and decimal, data, zero pages, frame and extent boundaries, --output
read_ok() { # ADDR LEN [ADDR-as-given LEN-as-given]
	"$MK" expect "$1" "$2" >"$T/expect"
	run "$U" image read "$IMG" --addr "${3:-$1}" --length "${4:-$2}"
	expect 0 "read ${3:-$1} ${4:-$2}"
	cmp -s "$T/out" "$T/expect" || fail "read ${3:-$1} ${4:-$2}: wrong bytes"
}
read_ok 0x10000 0x4000
read_ok 0x10000 4096 65536 4096
read_ok 0x10fff 3 69631 0x3
read_ok 0x13f00 0x1100           # data into zero pages
read_ok 0x14000 0x2000           # zero pages only
read_ok 0x15ff0 0x2010           # zero into data
read_ok 0x21000 4096
read_ok 0x7ffff7ff0000 0x3000 140737354072064 12288
run "$U" image read "$IMG" -a 0x16000 -l 8192 -o "$T/o.bin"; expect 0 "read -o"
"$MK" expect 0x16000 8192 | cmp -s - "$T/o.bin" || fail "read -o: wrong bytes"
run "$U" image read --addr=0x16000 --length=0x10 --output="$T/o2.bin" "$IMG"; expect 0 "read --opt="

# read: not in the image, discarded, partly missing; nothing written, one line
run "$U" image read "$IMG" --addr 0x18000 --length 1; expect 1 "read hole"
one_line "read hole" "$IMG" "0x18000" "not in the image"
run "$U" image read "$IMG" --addr 0x17000 --length 0x2000; expect 1 "read into hole"
one_line "read into hole" "0x18000"; [ -s "$T/out" ] && fail "read into hole: wrote output"
run "$U" image read "$IMG" --addr 0x20000 --length 16; expect 1 "read discarded"
one_line "read discarded" "$IMG" "0x20000" "discarded"
run "$U" image read "$IMG" --addr 0x1f000 --length 0x3000; expect 1 "read hole before discarded"
one_line "read hole before discarded" "0x1f000"
run "$U" image read "$IMG" --addr 0x20fff --length 2 -o "$T/no.bin"; expect 1 "read discarded -o"
[ -e "$T/no.bin" ] && fail "read discarded -o: created the output file"
run "$U" image read "$IMG" --addr 0 --length 1; expect 1 "read address 0"; one_line "read 0" "0x0"

# read: argument errors are usage errors
for args in "--addr zz --length 1" "--addr 0x --length 1" "--addr 0x10000 --length -1" \
	"--addr 0x10000 --length 0" "--addr 0x10000 --length 0x0" "--addr 1x10 --length 1" \
	"--addr 0x10000 --length 1k" "--addr 18446744073709551616 --length 1" \
	"--addr 0x10000000000000000 --length 1" "--addr 0xffffffffffffffff --length 2" \
	"--addr 0xfffffffffffff000 --length 0x1000" "--addr 0x10000" "--length 1" \
	"--addr" "--addr 0x10000 --length 1 --bogus" "--addr +5 --length 1"; do
	# shellcheck disable=SC2086 # word splitting intended
	run "$U" image read "$IMG" $args; expect 2 "read $args"; one_line "read $args" "--help"
done
run "$U" image read "$IMG" --addr " 16" --length 1; expect 2 "read leading space"

# read refuses to write binary data to a terminal
if script -qec "true" /dev/null >/dev/null 2>&1; then
	script -qec "'$U' image read '$IMG' --addr 0x10000 --length 16" /dev/null >"$T/out" 2>&1
	grep -q "terminal" "$T/out" || fail "read to a tty: no refusal"
	script -qec "'$U' image read '$IMG' --addr 0x10000 --length 16 -o '$T/tty.bin'" /dev/null \
		>"$T/out" 2>&1
	[ "$(wc -c <"$T/tty.bin")" -eq 16 ] || fail "read -o from a tty: no output file"
else
	echo "note: script(1) cannot make a pty here; terminal refusal not tested"
fi

# --- bad input: one line naming the file, exit 1, never a crash -----------------------------
size=$(wc -c <"$IMG")
head -c 4096 /dev/urandom >"$T/random.bin"
printf 'hello, world\n' >"$T/text.txt"
: >"$T/empty.img"
mkdir "$T/dir.img"
for n in 1 8 63 64 100 112 200 1000 5000 $((size - 80)) $((size - 81)) $((size - 1)); do
	head -c "$n" "$IMG" >"$T/trunc-$n.img"
done
for f in "$T/random.bin" "$T/text.txt" "$T/empty.img" "$T/dir.img" "$T/missing.img" \
	"$T"/trunc-*.img "$T/partial.img"; do
	for c in info verify maps; do
		run "$U" image $c "$f"; expect 1 "$c $(basename "$f")"
		one_line "$c $(basename "$f")" "$f"
	done
	run "$U" image info --json "$f"; expect 1 "info --json $(basename "$f")"
	one_line "info --json $(basename "$f")" "$f"
	run "$U" image read "$f" --addr 0x18000 --length 16
	expect 1 "read $(basename "$f")"; one_line "read $(basename "$f")" "$f"
done
run "$U" image verify "$T/partial.img"; one_line "verify partial" "incomplete at offset"
run "$U" image info "$T/partial.img"; out_has "info partial" "pid 4242" "incomplete"
run "$U" image read "$T/partial.img" --addr 0x21000 --length 16; expect 0 "read partial"
run "$U" image verify "$T/trunc-5000.img"; one_line "verify truncated" "incomplete at offset"
run "$U" image verify "$T/random.bin"; one_line "verify random" "corrupt at offset 0"
head -c 5000 /dev/zero | "$U" image verify - >"$T/out" 2>"$T/err"; rc=$?
expect 1 "verify zeros on a pipe"; one_line "verify zeros on a pipe" "(stdin)"

# --- corruption: a flipped byte is found and located ----------------------------------------
off=$("$MK" offset "$IMG" 0x21000) || { fail "mkimage offset"; off=0; }
cp "$IMG" "$T/bad-payload.img"
flip "$T/bad-payload.img" $((off + 48 + 100))
run "$U" image verify "$T/bad-payload.img"; expect 1 "verify bad payload"
one_line "verify bad payload" "corrupt at offset $off" "checksum"
run "$U" image read "$T/bad-payload.img" --addr 0x21000 --length 16; expect 1 "read bad payload"
one_line "read bad payload" "corrupt at offset $off"
# A corrupt frame elsewhere: the index would reach the good page, but the image is corrupt and
# read says so (as verify does) instead of exiting 0; maps too.
run "$U" image read "$T/bad-payload.img" --addr 0x10000 --length 16; expect 1 "read good page"
one_line "read good page of a corrupt image" "corrupt at offset $off"
run "$U" image maps "$T/bad-payload.img"; expect 1 "maps of a corrupt image"
one_line "maps of a corrupt image" "corrupt at offset $off"
cp "$IMG" "$T/bad-header.img"; flip "$T/bad-header.img" $((off + 20))
run "$U" image verify "$T/bad-header.img"; expect 1 "verify bad frame header"
one_line "verify bad frame header" "corrupt at offset $off"
cp "$IMG" "$T/bad-trailer.img"; flip "$T/bad-trailer.img" $((size - 40))
run "$U" image verify "$T/bad-trailer.img"; expect 1 "verify bad trailer"; one_line "bad trailer" "corrupt"
cp "$IMG" "$T/extra.img"; printf 'x' >>"$T/extra.img"
run "$U" image verify "$T/extra.img"; expect 1 "verify data after trailer"

# --- a QEMU guest's image (format 1.1): info shows the guest, core refuses it --------------
"$MK" guest "$T/guest.img" || { echo "mkimage guest failed" >&2; exit 1; }
run "$U" image info "$T/guest.img"; expect 0 "info guest"
out_has "info guest" "format:     1.2" "QEMU 7.2.22, machine pc-i440fx-7.2" \
	"qemu:       /usr/bin/qemu-system-x86_64, a command line of 7 words (qemu restore --dry-run)" \
	"backend:    ram0 (memory-backend-memfd), 64.0 KiB at 0x7f0000000000" \
	"devstate:   4.9 KiB in 1 frame"
run "$U" image info --json "$T/guest.img"; expect 0 "info --json guest"
out_has "info --json guest" '"machine": "pc-i440fx-7.2"' '"devstate_bytes": 5000' \
	'"devstate_frames": 1' '"id": "ram0"' '"qemu_version": "7.2.22"'
run "$U" image info "$IMG"; expect 0 "info process"
grep -q "guest\|devstate" "$T/out" && fail "info of a process image mentions a guest"
run "$U" image verify "$T/guest.img"; expect 0 "verify guest"
run "$U" image core "$T/guest.img" --output "$T/guest.core"; expect 1 "core of a guest"
one_line "core of a guest" "$T/guest.img is a QEMU guest's image" "uffsnapctl qemu restore"
[ -e "$T/guest.core" ] && fail "core of a guest: a core file was written"

# qemu restore without a QEMU: usage, a process image, the command line it would run.
run "$U" qemu restore --help; expect 0 "qemu restore --help"; out_has "qemu restore --help" "--qmp"
run "$U" qemu restore "$T/guest.img" --qmp "$T/none.sock" --dry-run; expect 2 "--qmp with --dry-run"
one_line "--qmp with --dry-run" "--qmp"
run "$U" qemu restore "$IMG" --dry-run; expect 1 "restore of a process image"
one_line "restore of a process image" "not a QEMU guest's image"
run "$U" qemu restore "$T/guest.img" --dry-run; expect 0 "restore --dry-run"
out_has "restore --dry-run" "-machine pc-i440fx-7.2,memory-backend=ram0" \
	"memory-backend-file,id=ram0,size=65536,mem-path=$T/guest.restore/ram0.ram,share=on" \
	"-incoming defer -qmp unix:$T/guest.restore/qmp.sock,server=on,wait=off"
[ -e "$T/guest.restore" ] && fail "restore --dry-run created its directory"

# --- a pre-copy image (format 1.2): pages rewritten by later rounds, the instant's META --------
"$MK" precopy "$T/pre.img" || { echo "mkimage precopy failed" >&2; exit 1; }
"$MK" precopy-cut "$T/pre-cut.img" || { echo "mkimage precopy-cut failed" >&2; exit 1; }
run "$U" image info "$T/pre.img"; expect 0 "info pre-copy"
out_has "info pre-copy" "format:     1.2" "kind:       pre-copy (pages rewritten by later rounds)" \
	"2026-11-18T09:46:40" "data:       10 pages, 40.0 KiB" "zero:       2 pages" \
	"discarded:  1 page," "unmapped:   2 pages, 8.0 KiB" "superseded: 10 pages, 40.0 KiB" \
	"instant:    reached" "vmas:       4" "threads:    2"
grep -q "09:46:39" "$T/out" && fail "info pre-copy: shows the first META's time"
run "$U" image info --json "$T/pre.img"; expect 0 "info --json pre-copy"
out_has "info --json pre-copy" '"pre-copy"' '"data_pages": 10' '"unmapped_pages": 2' \
	'"superseded_pages": 10' '"metas": 2' '"version": "1.2"'
run "$U" image info --json "$IMG"; out_has "info --json plain" '"flags": []'
grep -q "superseded" "$T/out" && fail "info --json of a plain image: superseded pages"
run "$U" image verify "$T/pre.img"; expect 0 "verify pre-copy"
out_has "verify pre-copy" "10 data pages, 2 zero pages, 1 discarded pages, 2 unmapped pages, 10 superseded pages"
run "$U" image maps "$T/pre.img"; expect 0 "maps pre-copy"
[ "$(wc -l <"$T/out")" -eq 4 ] || fail "maps pre-copy: expected the second META's 4 VMAs"
for r in "0x10000 0x4000" "0x13f00 0x1100" "0x15ff0 0x2010" "0x21000 4096" "0x7ffff7ff0000 0x3000"; do
	# shellcheck disable=SC2086 # word splitting intended
	set -- $r
	"$MK" expect "$1" "$2" >"$T/expect"
	run "$U" image read "$T/pre.img" --addr "$1" --length "$2"; expect 0 "read pre-copy $r"
	cmp -s "$T/out" "$T/expect" || fail "read pre-copy $r: wrong bytes (an earlier round's?)"
done
run "$U" image read "$T/pre.img" --addr 0x18000 --length 16; expect 1 "read unmapped"
one_line "read unmapped" "$T/pre.img" "0x18000" "not mapped at the snapshot instant"
run "$U" image read "$T/pre.img" --addr 0x17000 --length 0x2000; expect 1 "read into unmapped"
one_line "read into unmapped" "0x18000" "not mapped"
# The same instant as $IMG: the same core, byte for byte.
run "$U" image core "$IMG" --output "$T/plain.core"; expect 0 "core plain"
run "$U" image core "$T/pre.img" --output "$T/pre.core"; expect 0 "core pre-copy"
cmp -s "$T/plain.core" "$T/pre.core" || fail "core pre-copy: differs from the plain image's"
# Cut before its second META: no instant, so nothing reads, one line saying so.
run "$U" image verify "$T/pre-cut.img"; expect 1 "verify pre-copy cut"
one_line "verify pre-copy cut" "incomplete" "cut before its instant"
run "$U" image info "$T/pre-cut.img"; expect 1 "info pre-copy cut"
out_has "info pre-copy cut" "instant:    not reached" "started:    2026-11-18T09:46:39"
one_line "info pre-copy cut" "cut before its instant"
run "$U" image read "$T/pre-cut.img" --addr 0x10000 --length 16; expect 1 "read pre-copy cut"
one_line "read pre-copy cut" "$T/pre-cut.img" "cut before its instant"
[ -s "$T/out" ] && fail "read pre-copy cut: wrote bytes"
run "$U" image core "$T/pre-cut.img" --output "$T/cut.core"; expect 1 "core pre-copy cut"
one_line "core pre-copy cut" "cut before its instant"
[ -e "$T/cut.core" ] && fail "core pre-copy cut: a core file was written"

if [ "$failures" -ne 0 ]; then
	echo "$failures check(s) failed" >&2
	exit 1
fi
echo "all uffsnapctl image checks passed"
exit 0
