#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Redis: redis-server (Debian's) with DATA_MIB of values under redis-benchmark SET load:
# latency percentiles and throughput while BGSAVE runs vs while uffsnapd snapshots the same
# server (RDB saving otherwise off), in the same run, plus a baseline load with no snapshot.
# Each load is the same number of requests: enough, at the baseline rate, to span the longer
# of the two snapshots (each timed once without load first) plus a second before and after.
# Loopback, a private port, a temporary directory in DIR (on disk); everything stopped at exit.
# Prints one JSON object.
#
# usage: bench-redis.sh UFFSNAPD BENCH_SIZE DATA_MIB DIR PORT
set -euo pipefail

UFFSNAPD=$1 BENCH_SIZE=$2 DATA_MIB=$3 DIR=$4 PORT=$5
VALUE=1024   # bytes per value
CLIENTS=50
KEYS=$((DATA_MIB * 1024 * 1024 / (VALUE + 100)))
TMP=$(mktemp -d "$(readlink -f "$DIR")/bench-redis.XXXXXX")
RPID=
LPID=

cleanup() {
	[ -n "$LPID" ] && kill "$LPID" 2>/dev/null && wait "$LPID" 2>/dev/null
	[ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

cli() { redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }
info() { cli info "$1" | tr -d '\r' | sed -n "s/^$2://p"; }
now_ns() { date +%s%N; }

# load N -> CSV row of redis-benchmark SET: "SET",rps,avg,min,p50,p95,p99,max
load() {
	redis-benchmark -h 127.0.0.1 -p "$PORT" -t set -n "$1" -r "$KEYS" -d "$VALUE" \
		-c "$CLIENTS" --csv | tail -1
}

# csv ROW -> JSON fields
csv_json() {
	IFS=, read -r _ rps avg _ p50 p95 p99 max <<<"$(tr -d '"' <<<"$1")"
	printf '"rps":%s,"avg_ms":%s,"p50_ms":%s,"p95_ms":%s,"p99_ms":%s,"max_ms":%s' \
		"$rps" "$avg" "$p50" "$p95" "$p99" "$max"
}

bgsave() {
	cli bgsave >/dev/null
	while [ "$(info persistence rdb_bgsave_in_progress)" != 0 ]; do sleep 0.05; done
	[ "$(info persistence rdb_last_bgsave_status)" = ok ]
}

uffsnap() {
	"$UFFSNAPD" --pid "$RPID" --output "$TMP/redis.img" --force --json --quiet >"$TMP/uffsnapd.json"
}

# timed METHOD -> nanoseconds it took
timed() {
	local t0
	t0=$(now_ns)
	"$1"
	echo $(($(now_ns) - t0))
}

# under_load METHOD N -> JSON object: the load's figures and the snapshot's
under_load() {
	local method=$1 n=$2 t0 snap_ns row load_ns
	rm -f "$TMP/load.csv"
	t0=$(now_ns)
	load "$n" >"$TMP/load.csv" &
	LPID=$!
	sleep 1
	snap_ns=$(timed "$method")
	snap_end=$(($(now_ns) - t0))
	wait "$LPID"
	LPID=
	load_ns=$(($(now_ns) - t0))
	row=$(cat "$TMP/load.csv")
	printf '{%s,"load_ns":%s,"snapshot_ns":%s,"covered":%s' "$(csv_json "$row")" "$load_ns" \
		"$snap_ns" "$([ "$load_ns" -ge "$snap_end" ] && echo true || echo false)"
}

redis-server --port "$PORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no \
	--daemonize no --logfile "$TMP/redis.log" --protected-mode yes >/dev/null &
RPID=$!
for _ in $(seq 100); do cli ping >/dev/null 2>&1 && break; sleep 0.1; done
cli ping >/dev/null

# Fill: random keys from the same key space the load then overwrites.
redis-benchmark -h 127.0.0.1 -p "$PORT" -t set -n $((KEYS * 2)) -r "$KEYS" -d "$VALUE" \
	-c 8 -P 32 -q >/dev/null
used=$(info memory used_memory)
rss=$(info memory used_memory_rss)

# Durations without load, and the baseline rate.
bgsave_alone=$(timed bgsave)
rm -f "$TMP/dump.rdb"
uffsnap_alone=$(timed uffsnap)
rm -f "$TMP/redis.img"
rps0=$(load 20000 | tr -d '"' | cut -d, -f2)
longest=$((bgsave_alone > uffsnap_alone ? bgsave_alone : uffsnap_alone))
n=$(awk -v r="$rps0" -v ns="$longest" 'BEGIN { printf "%d", r * (ns / 1e9 * 1.5 + 2) }')

baseline=$(load "$n")
bg=$(under_load bgsave "$n")
rdb_bytes=$(stat -c %s "$TMP/dump.rdb")
fork_usec=$(info stats latest_fork_usec)
cow=$(info persistence rdb_last_cow_size)
rm -f "$TMP/dump.rdb"
uf=$(under_load uffsnap "$n")
img_bytes=$(stat -c %s "$TMP/redis.img")
rm -f "$TMP/redis.img"
scan=$("$BENCH_SIZE" --pid "$RPID")

printf '{"bench":"redis","data_mib":%s,"keys":%s,"value_bytes":%s,"clients":%s,"requests":%s,' \
	"$DATA_MIB" "$KEYS" "$VALUE" "$CLIENTS" "$n"
printf '"used_memory":%s,"used_memory_rss":%s,"bgsave_alone_ns":%s,"uffsnapd_alone_ns":%s,' \
	"$used" "$rss" "$bgsave_alone" "$uffsnap_alone"
printf '"baseline":{%s},' "$(csv_json "$baseline")"
printf '"bgsave":%s,"fork_usec":%s,"cow_bytes":%s,"rdb_bytes":%s},' "$bg" "$fork_usec" "$cow" \
	"$rdb_bytes"
printf '"uffsnapd":%s,"image_bytes":%s,"stats":%s},' "$uf" "$img_bytes" \
	"$(cat "$TMP/uffsnapd.json")"
printf '"scan":%s}\n' "$scan"
