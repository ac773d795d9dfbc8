#!/bin/sh
# SPDX-License-Identifier: MIT
# End to end: uffsnapctl image info|verify|maps|read|core|flatten on an incremental chain that
# mkimage writes through the real writer (format 1.2: base.img <- mid.img <- top.img, top
# pre-copied), whose instant holds the bytes of `mkimage image`; --parent; and each broken chain
# -- a parent missing, elsewhere, renamed, wrong, corrupt; an incomplete child -- giving one
# line on stderr and exit 1, never other bytes. Exit 0 pass, 1 fail, 77 skip.
# Usage: test-cli-image-chain.sh UFFSNAPCTL MKIMAGE
set -u

U=${1:?usage: test-cli-image-chain.sh UFFSNAPCTL MKIMAGE}
MK=${2:?usage: test-cli-image-chain.sh UFFSNAPCTL MKIMAGE}
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
failures=0

fail() {
	echo "FAIL: $*" >&2
	echo "  stdout: $(head -c 600 "$T/out")" >&2
	echo "  stderr: $(head -c 600 "$T/err")" >&2
	failures=$((failures + 1))
}

run() {
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
}

expect() {
	[ "$rc" -eq "$1" ] || fail "$2: exit status $rc, expected $1"
}

one_line() {
	desc=$1
	shift
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "$desc: stderr is not exactly one line"
	for w in "$@"; do
		grep -qF -- "$w" "$T/err" || fail "$desc: stderr does not mention '$w'"
	done
}

out_has() {
	desc=$1
	shift
	for w in "$@"; do
		grep -qF -- "$w" "$T/out" || fail "$desc: stdout lacks '$w'"
	done
}

flip() {
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# read_ok IMG ADDR LEN [OPTIONS]: the bytes mkimage says the instant holds.
read_ok() {
	img=$1 addr=$2 len=$3
	shift 3
	"$MK" expect "$addr" "$len" >"$T/expect"
	run "$U" image read "$img" --addr "$addr" --length "$len" "$@"
	expect 0 "read $img $addr $len $*"
	cmp -s "$T/out" "$T/expect" || fail "read $img $addr $len: wrong bytes"
}

C=$T/chain
mkdir "$C" && "$MK" chain "$C" || { echo "mkimage chain failed" >&2; exit 1; }
"$MK" image "$T/plain.img" || exit 1
run "$U" image core "$T/plain.img" --output "$T/plain.core"; expect 0 "core of the plain image"

# --- the chain as it is ----------------------------------------------------------------------
run "$U" image info "$C/top.img"; expect 0 "info top"
out_has "info top" "incremental (what changed since its parent)" "pre-copy" \
	"parent:     " "taken 2026-11-18T09:43:00Z, file mid.img" \
	"chain:      3 images; at the instant 10 data, 2 zero, 1 discarded pages" \
	"link 0:     $C/top.img, taken 2026-11-18T09:46:40.123456789Z, digest " \
	"link 1:     $C/mid.img, taken 2026-11-18T09:43:00Z" \
	"link 2:     $C/base.img, taken 2026-11-18T09:40:00Z"
[ -s "$T/err" ] && fail "info top: unexpected stderr"
run "$U" image info --json "$C/top.img"; expect 0 "info --json top"
out_has "info --json top" '"chain": [' '"incremental"' "\"file\": \"$C/base.img\"" \
	'"time": "2026-11-18T09:40:00Z"' '"chain_data_pages": 10' '"parent": {'
run "$U" image info "$C/base.img"; expect 0 "info base"
grep -q "chain:\|parent:" "$T/out" && fail "info of a full image shows a chain"
run "$U" image verify "$C/top.img"; expect 0 "verify top"
out_has "verify top" "$C/top.img: ok, 10 frames" \
	"$C/top.img: chain ok, 3 images: $C/top.img <- $C/mid.img <- $C/base.img"
run "$U" image maps "$C/top.img"; expect 0 "maps top"
[ "$(wc -l <"$T/out")" -eq 4 ] || fail "maps top: expected 4 VMAs"
for r in "0x10000 0x4000" "0x13f00 0x1100" "0x15ff0 0x2010" "0x21000 4096" \
	"0x7ffff7ff0000 0x3000"; do
	# shellcheck disable=SC2086 # word splitting intended
	read_ok "$C/top.img" $r
done
run "$U" image read "$C/top.img" --addr 0x18000 --length 16; expect 1 "read unmapped"
one_line "read unmapped" "0x18000" "not mapped at the snapshot instant"
run "$U" image read "$C/top.img" --addr 0x20000 --length 16; expect 1 "read discarded"
one_line "read discarded" "0x20000" "discarded"
run "$U" image read "$C/top.img" --addr 0x30000 --length 16; expect 1 "read a hole"
one_line "read a hole" "0x30000" "not in the image nor in its parents"
run "$U" image core "$C/top.img" --output "$T/top.core"; expect 0 "core top"
cmp -s "$T/plain.core" "$T/top.core" || fail "core top: differs from the plain image's"

# --- flatten ---------------------------------------------------------------------------------
run "$U" image flatten "$C/top.img" --output "$T/flat.img"; expect 0 "flatten"
out_has "flatten" "$T/flat.img: a full image of 3 images: 10 data, 2 zero, 1 discarded pages"
run "$U" image verify "$T/flat.img"; expect 0 "verify flat"
out_has "verify flat" "10 data pages, 2 zero pages, 1 discarded pages"
grep -q "chain" "$T/out" && fail "verify flat: a chain"
run "$U" image info --json "$T/flat.img"; expect 0 "info flat"
out_has "info flat" '"flags": []' '"version": "1.2"' '"iso8601": "2026-11-18T09:46:40.123456789Z"'
grep -q '"parent"' "$T/out" && fail "info flat: still names a parent"
read_ok "$T/flat.img" 0x10000 0x8000
read_ok "$T/flat.img" 0x7ffff7ff0000 0x3000
run "$U" image core "$T/flat.img" --output "$T/flat.core"; expect 0 "core flat"
cmp -s "$T/plain.core" "$T/flat.core" || fail "core flat: differs from the plain image's"
run "$U" image flatten "$C/top.img" --output "$T/flat.img"; expect 1 "flatten over FULL"
one_line "flatten over FULL" "$T/flat.img" "exists" "--force"
run "$U" image flatten "$C/top.img" --output "$T/flat.img" --force; expect 0 "flatten --force"
run "$U" image flatten "$C/top.img"; expect 2 "flatten without --output"
run "$U" image flatten --help; expect 0 "flatten --help"; out_has "flatten --help" "--parent" "--force"
run "$U" image read --help; out_has "read --help" "--parent PATH" "incremental"
run "$U" --help; out_has "--help" "image flatten"

# --- an incomplete child: readable alone, not through its chain ------------------------------
ls "$T" >"$T/before"
run "$U" image flatten "$C/cut.img" --output "$T/no.img"; expect 1 "flatten cut"
one_line "flatten cut" "incomplete incremental image"
[ -e "$T/no.img" ] && fail "flatten cut: wrote its output"
ls "$T" | cmp -s - "$T/before" || fail "flatten cut: left a file behind"
run "$U" image read "$C/cut.img" --addr 0x21000 --length 16; expect 1 "read cut"
one_line "read cut" "$C/cut.img" "incomplete incremental image"
[ -s "$T/out" ] && fail "read cut: wrote bytes"
run "$U" image verify "$C/cut.img"; expect 1 "verify cut"; one_line "verify cut" "incomplete"
run "$U" image info "$C/cut.img"; expect 1 "info cut"; one_line "info cut" "incomplete"

# --- from a pipe: the image itself only, said so ---------------------------------------------
"$U" image verify - <"$C/top.img" >"$T/out" 2>"$T/err"; rc=$?; expect 0 "verify from a pipe"
out_has "verify from a pipe" "parents were not checked"
cat "$C/top.img" | "$U" image info - >"$T/out" 2>"$T/err"; rc=$?; expect 0 "info from a pipe"
out_has "info from a pipe" "chain:      not looked up"

# --- the parent renamed: found by its digest -------------------------------------------------
mv "$C/mid.img" "$C/mid-renamed.img"
read_ok "$C/top.img" 0x10000 0x4000
run "$U" image info "$C/top.img"; out_has "info renamed" "link 1:     $C/mid-renamed.img"

# --- the parent elsewhere: not found; --parent finds it, and its parents beside it -----------
mkdir "$T/away"
mv "$C/mid-renamed.img" "$T/away/mid.img"
for c in "info" "verify" "maps" "read --addr 0x10000 --length 16" "core --output $T/x.core" \
	"flatten --output $T/x.img"; do
	# shellcheck disable=SC2086 # word splitting intended
	run "$U" image $c "$C/top.img"
	expect 1 "$c, parent missing"
	one_line "$c, parent missing" "$C/top.img" "of $C/top.img (taken 2026-11-18T09:43:00Z)" \
		"not found beside it; give --parent PATH"
done
[ -e "$T/x.core" ] || [ -e "$T/x.img" ] && fail "a missing parent: an output was written"
run "$U" image read "$C/top.img" --addr 0x10000 --length 16 --parent "$T/away/mid.img"
expect 1 "read --parent, grandparent missing"
one_line "read --parent, grandparent missing" "of $T/away/mid.img (taken 2026-11-18T09:40:00Z)" \
	"not found beside it"
grep -q -- "--parent" "$T/err" && fail "a missing grandparent: --parent would not help"
cp "$C/base.img" "$T/away/"
read_ok "$C/top.img" 0x10000 0x4000 --parent "$T/away/mid.img"
read_ok "$C/top.img" 0x10000 0x4000 -p "$T/away/mid.img"
run "$U" image verify "$C/top.img" --parent "$T/away/mid.img"; expect 0 "verify --parent"
out_has "verify --parent" "$T/away/mid.img <- $T/away/base.img"
run "$U" image core "$C/top.img" --output "$T/p.core" --parent "$T/away/mid.img"
expect 0 "core --parent"
cmp -s "$T/plain.core" "$T/p.core" || fail "core --parent: differs from the plain image's"

# --- the wrong parent: one clear error --------------------------------------------------------
run "$U" image read "$C/top.img" --addr 0x10000 --length 16 --parent "$C/base.img"
expect 1 "read, wrong parent"
one_line "read, wrong parent" "$C/base.img is not the parent of $C/top.img" "the child names"
[ -s "$T/out" ] && fail "read, wrong parent: wrote bytes"
run "$U" image info "$C/top.img" --parent "$T/missing.img"; expect 1 "info, no such parent"
one_line "info, no such parent" "cannot resolve its chain" "$T/missing.img"

# --- a corrupt parent: verify names the link -------------------------------------------------
off=$("$MK" offset "$T/away/mid.img" 0x10000) || { fail "mkimage offset"; off=0; }
flip "$T/away/mid.img" $((off + 48 + 100))
run "$U" image verify "$C/top.img" --parent "$T/away/mid.img"; expect 1 "verify, corrupt parent"
one_line "verify, corrupt parent" "link 1 of its chain, $T/away/mid.img: corrupt at offset $off"

if [ "$failures" -ne 0 ]; then
	echo "$failures check(s) failed" >&2
	exit 1
fi
echo "all uffsnapctl image chain checks passed"
exit 0
