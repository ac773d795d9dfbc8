#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The live demo (./dev demo): a running multi-threaded workload is snapshotted without being
# stopped; the image is verified, inspected and checked to be exactly one instant's memory,
# and the workload, still running, checks its own memory.
# usage: tests/demo.sh BUILD_DIR
set -euo pipefail
B=$(readlink -f "${1:-build}")
W=$B/tests/workload/uffsnap-workload
D=$B/daemon/uffsnapd
C=$B/client/uffsnapctl
K=$B/tests/workload/uffsnap-check
out=$(mktemp -d /tmp/uffsnap-demo.XXXXXX)
trap 'kill $wpid 2>/dev/null || true' EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting a workload: 4 threads storing as fast as they can into 256 MiB"
"$W" --threads 4 --pages 16384 --events readinto >"$out/workload.out" &
wpid=$!
for _ in $(seq 300); do grep -q ready "$out/workload.out" 2>/dev/null && break; sleep 0.1; done
head -1 "$out/workload.out" >"$out/layout.json"
echo "workload pid $wpid, $(ps -o nlwp= -p $wpid) threads, RSS $(($(ps -o rss= -p $wpid) / 1024)) MiB"

say "uffsnapd --pid $wpid --output $out/demo.img   (the workload keeps running)"
"$D" --pid "$wpid" --output "$out/demo.img"

say "uffsnapctl image verify"
"$C" image verify "$out/demo.img"

say "uffsnapctl image info"
"$C" image info "$out/demo.img"

say "uffsnapctl image maps (first lines)"
"$C" image maps "$out/demo.img" | head -8

say "is the image exactly one instant? (the checker knows every store the workload made)"
"$K" --quiet "$out/demo.img" "$out/layout.json"

say "the workload is still running; its own full self-check:"
kill -USR1 "$wpid"
for _ in $(seq 600); do grep -q selfcheck "$out/workload.out" && break; sleep 0.1; done
grep selfcheck "$out/workload.out" | tail -1
kill -TERM "$wpid"
wait "$wpid" 2>/dev/null || true
echo
echo "image kept in $out/demo.img"
