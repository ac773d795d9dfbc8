#!/bin/sh
# SPDX-License-Identifier: MIT
# The systemd files as `cmake --install` lays them out, checked by systemd's own tools in a
# temporary root: systemd-analyze verify (every directive parses, ExecStart= exists and is
# executable), systemd-sysusers creates group uffsnap and user uffsnapd in it, systemd-tmpfiles
# creates the directories with their modes and owners; the unit's CapabilityBoundingSet= holds
# what svc_caps_drop() keeps.
# usage: test-units.sh CMAKE BUILD-DIR SYSTEST-TOOL
set -u
cmake=$1 build=$2 tool=$3
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (systemd-tmpfiles chowns in the temporary root)"; exit 77; }
for t in systemd-analyze systemd-sysusers systemd-tmpfiles; do
	command -v $t >/dev/null || { echo "SKIP: $t not installed (apt-get install systemd)"; exit 77; }
done
root=$(mktemp -d /tmp/uffsnap-units-XXXXXX)
trap 'rm -rf "$root"' EXIT
trap 'exit 1' INT TERM HUP
fail() { echo "FAIL: $*"; exit 1; }

DESTDIR=$root "$cmake" --install "$build" >"$root.log" 2>&1 || { cat "$root.log"; rm -f "$root.log"; fail "cmake --install"; }
rm -f "$root.log"
unit=$(find "$root" -name uffsnapd.service -path '*/systemd/system/*')
sysusers=$(find "$root" -name uffsnapd.conf -path '*/sysusers.d/*')
tmpfiles=$(find "$root" -name uffsnapd.conf -path '*/tmpfiles.d/*')
[ -n "$unit" ] && [ -f "${unit%.service}.socket" ] || fail "no uffsnapd.service/.socket installed"
[ -n "$sysusers" ] && [ -n "$tmpfiles" ] || fail "no sysusers.d or tmpfiles.d file installed"
echo "installed: ${unit#$root} ${sysusers#$root} ${tmpfiles#$root}"

# verify --root needs the units the ours depend on (sysinit.target, ...): the host's.
mkdir -p "$root/usr/lib/systemd/system"
cp -an /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/"
out=$(cd "$root" && systemd-analyze verify --root="$root" --man=no --generators=no \
	"$unit" "${unit%.service}.socket" 2>&1)
rc=$?
[ "$rc" = 0 ] && [ -z "$out" ] || fail "systemd-analyze verify (exit $rc): $out"
echo "ok systemd-analyze verify"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
case "$exec_start" in
*" --service "*"--user uffsnapd"*) ;;
*) fail "ExecStart= is not service mode as user uffsnapd: $exec_start" ;;
esac
[ -x "$root${exec_start%% *}" ] || fail "ExecStart= names ${exec_start%% *}, not installed"

mkdir -p "$root/etc"
systemd-sysusers --root="$root" "$sysusers" >/dev/null 2>&1 || fail "systemd-sysusers"
gid=$(awk -F: '$1 == "uffsnap" { print $3 }' "$root/etc/group")
ugid=$(awk -F: '$1 == "uffsnapd" { print $4 }' "$root/etc/passwd")
uid=$(awk -F: '$1 == "uffsnapd" { print $3 }' "$root/etc/passwd")
[ -n "$gid" ] && [ "$ugid" = "$gid" ] || fail "user uffsnapd is not in group uffsnap ($ugid vs $gid)"
echo "ok systemd-sysusers: uffsnapd $uid in uffsnap $gid"

systemd-tmpfiles --root="$root" --create "$tmpfiles" >/dev/null 2>&1 || fail "systemd-tmpfiles"
got=$(stat -c '%a %u:%g' "$root/var/lib/uffsnapd")
[ "$got" = "750 $uid:$gid" ] || fail "/var/lib/uffsnapd is $got, expected 750 $uid:$gid"
got=$(stat -c '%a %u:%g' "$root/run/uffsnapd")
[ "$got" = "750 0:$gid" ] || fail "/run/uffsnapd is $got, expected 750 0:$gid"
echo "ok systemd-tmpfiles"

bounding=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z' 'a-z')
for cap in $("$tool" caps-kept | tr ',' ' '); do
	case " $bounding " in *" $cap "*) ;; *) fail "CapabilityBoundingSet= lacks $cap, which svc_caps_drop() keeps" ;; esac
done
echo "ok CapabilityBoundingSet= holds what the daemon keeps"
systemd-analyze security --offline=yes --root="$root" "$unit" 2>/dev/null | tail -n 1
echo "1 passed, 0 failed"
