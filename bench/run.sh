#!/usr/bin/env bash
# Benchmarks faciofs against the native filesystem, bindfs and go-fuse's
# loopback example in one run, and writes bench/RESULTS.md (issue 9).
# Run as root (mounts, drop_caches, perf) from anywhere:
#
#   bench/run.sh
#
# Environment (defaults in brackets): RUNS [3] runs per figure; SIZE [512]
# MiB of the sequential file; TREE [/usr/local/go/src] source tree to untar;
# FILES [10000] metadata files; RSS_FILES [100000]; LAT_N [5000] timed
# open+read+close per latency figure; TPUT_MS [2000] per throughput level;
# PROFILE [1] perf-profile missed targets (0: don't); WORK [a new directory
# under /var/tmp] scratch space on the filesystem being measured; KEEP [0]
# keep WORK afterwards.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root (mounts, drop_caches)" >&2; exit 2; }
[ -e /dev/fuse ] || { echo "bench/run.sh: /dev/fuse is missing" >&2; exit 2; }

WORK=${WORK:-$(mktemp -d /var/tmp/faciofs-bench.XXXXXX)}
mkdir -p "$WORK/bin"
WORK=$(cd "$WORK" && pwd)
export WORK

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	# Processes this run started (recorded by pid), then any mount left
	# below WORK, deepest first.
	if [ -f "$WORK/pids" ]; then
		while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$WORK/pids"
		sleep 1
		while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$WORK/pids"
	fi
	awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "bench/run.sh: kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

command -v bindfs >/dev/null || apt-get install -y bindfs >/dev/null
command -v perf >/dev/null || apt-get install -y linux-perf >/dev/null 2>&1 || echo "bench/run.sh: no perf; misses will not be profiled" >&2

start=$(date +%s)
go build -o "$WORK/bin/faciofs" ./cmd/faciofs
go build -o "$WORK/bin/loopback" github.com/hanwen/go-fuse/v2/example/loopback
go build -o "$WORK/bin/readloop" ./bench/readloop
go build -o "$WORK/bin/bench" ./bench

"$WORK/bin/bench" -work "$WORK" -bin "$WORK/bin" -out bench/RESULTS.md -profiles bench/profiles &
bench_pid=$!
echo "$bench_pid" >>"$WORK/pids"
wait "$bench_pid"
echo "bench/run.sh: done in $(( $(date +%s) - start ))s; see bench/RESULTS.md" >&2
