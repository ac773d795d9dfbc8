#!/bin/sh
# SPDX-License-Identifier: MIT
# mkinitramfs.sh BUSYBOX GUEST_COUNTER INIT OUTPUT: the test guest's initramfs (newc cpio,
# gzip), made with busybox's own cpio so that no cpio package is needed. BUSYBOX must be static.
set -eu
busybox=$1 counter=$2 init=$3 out=$4
if readelf -l "$busybox" 2>/dev/null | grep -q 'program interpreter'; then
	echo "mkinitramfs: $busybox is dynamically linked: install busybox-static" >&2
	exit 1
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/proc" "$stage/sys" "$stage/dev"
cp "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
cp "$counter" "$stage/bin/guest-counter"
cp "$init" "$stage/init"
chmod 755 "$stage/init" "$stage/bin/busybox" "$stage/bin/guest-counter"
(cd "$stage" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc 2>/dev/null) |
	gzip -6 -n >"$out.tmp"
mv "$out.tmp" "$out"
